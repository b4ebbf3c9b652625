"""Issue 15: no rule that silently does nothing, and tags read the way users mean them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.config import load_config
from reconciler.errors import ConfigError
from reconciler.model import VersionRule
from reconciler.selection import is_newer, select, validate_rule
from reconciler.versions import parse_version
from tests.helpers.configrepo import AppSpec, config_files
from tests.helpers.gitserver import write_files


def _config_problems(tmp_path: Path, rules: str) -> list[str]:
    files = config_files(
        "https://r.example.com", [AppSpec("api", "acme/api", "r/api")], rules=rules
    )
    write_files(tmp_path, files)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    return [str(p) for p in info.value.problems]


# ------------------------------------------------------------- item 7: `_` in images


def test_an_underscore_in_an_image_pre_release_is_not_build_metadata() -> None:
    rule = VersionRule(prerelease="^rc")
    assert select(rule, ["1.0.0-rc_9", "1.0.0-rc_10", "1.0.0-rc_2"]).chosen == "1.0.0-rc_10"
    assert is_newer(rule, "1.0.0-rc_10", "1.0.0-rc_9")
    assert not is_newer(rule, "1.0.0-rc_9", "1.0.0-rc_10")
    version = parse_version("1.0.0-rc_10")
    assert version is not None and (version.prerelease_label, version.build) == ("rc_10", "")
    # `1.2.3_build.1` is no Helm chart here (the Helm OCI feed maps `_` for charts).
    assert parse_version("1.2.3_build.1") is None


# ---------------------------------------------------- item 8: huge numbers in ranges


@pytest.mark.parametrize(
    "written", [">=" + "9" * 5000, "[1.0," + "9" * 5000 + ")", "^1." + "7" * 5000]
)
def test_a_range_bound_of_5000_digits_is_a_clear_config_error(tmp_path: Path, written: str) -> None:
    assert validate_rule(VersionRule(range=written)) == [
        "range: invalid range: a number has 5000 digits (at most 64)"
    ]
    problems = _config_problems(tmp_path, f'      - range: "{written}"\n')
    assert len(problems) == 1
    assert problems[0].startswith("projects/shop/project.yaml:")
    assert problems[0].endswith("range: invalid range: a number has 5000 digits (at most 64)")
    assert "Exceeds the limit" not in problems[0]


# ------------------------------------------- item 2: newest-build never picks `latest`

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_newest_build_never_picks_a_moving_tag_and_ties_go_to_the_build() -> None:
    rule = VersionRule(strategy="newest-build")
    tags = ["3f2a1c0", "latest", "main"]
    same_build = select(rule, tags, created=dict.fromkeys(tags, T0))
    assert same_build.chosen == "3f2a1c0"
    reasons = {c.tag: c.reason for c in same_build.rejected}
    assert reasons["latest"] == "a moving tag, not a build (follow it with strategy: digest)"
    # Even when `latest` looks newer (re-pushed since, or a stale cached time elsewhere).
    later = {"3f2a1c0": T0, "latest": T0 + timedelta(hours=1)}
    assert select(rule, tags, created=later).chosen == "3f2a1c0"
    # Not asked about either: no metadata request is spent on a moving tag.
    assert select(rule, tags).needs_metadata == ("3f2a1c0",)


def test_newest_build_ties_between_builds_are_deterministic_whatever_the_input() -> None:
    rule = VersionRule(strategy="newest-build")
    tags = ["b0c1d2e", "1.4.0", "a9b8c7d"]
    created = dict.fromkeys(tags, T0)
    assert {select(rule, order, created=created).chosen for order in (tags, tags[::-1])} == {
        "1.4.0"
    }


# ------------------------------------------------ item 4: fields a strategy ignores


def test_newest_build_honours_range_and_prerelease_as_filters() -> None:
    rule = VersionRule(strategy="newest-build", range="<2", prerelease="^$")
    created = {"2.0.0-rc.1": T0 + timedelta(hours=2), "1.5.0": T0, "1.4.0": T0 - timedelta(1)}
    selection = select(rule, list(created), created=created)
    assert selection.chosen == "1.5.0"
    reasons = {c.tag: c.reason for c in selection.rejected}
    assert reasons["2.0.0-rc.1"] == "pre-release 'rc.1' does not match ^$"


@pytest.mark.parametrize(
    ("rule", "field", "message"),
    [
        (
            "{strategy: regex, allow: '^b', range: '<2'}",
            "range",
            "range is not used by the regex strategy (only by semver, suffix, newest-build)",
        ),
        (
            "{strategy: semver, extract: $1}",
            "extract",
            "extract is not used by the semver strategy (only by regex)",
        ),
        (
            "{range: '^1', order: alphabetical}",
            "order",
            "order is not used by the semver strategy (only by regex)",
        ),
        ("{pick: lowest}", "pick", "pick is not used by the semver strategy (only by regex)"),
        (
            "{suffix: alpine}",
            "suffix",
            "suffix is not used by the semver strategy (only by suffix)",
        ),
        ("{tag: stable}", "tag", "tag is not used by the semver strategy (only by digest)"),
        (
            "{strategy: digest, tag: stable, prerelease: '^$'}",
            "prerelease",
            "prerelease is not used by the digest strategy (only by semver, newest-build)",
        ),
        (
            "{strategy: suffix, scanLimit: 5}",
            "scanLimit",
            "scanLimit is not used by the suffix strategy (only by newest-build)",
        ),
    ],
)
def test_a_field_the_strategy_ignores_is_a_config_error_at_its_key(
    tmp_path: Path, rule: str, field: str, message: str
) -> None:
    problems = _config_problems(tmp_path, f"      - {rule}\n")
    assert [p.split(": ", 1)[1] for p in problems] == [f"channels[0].rules[0].{field}: {message}"]


def test_scan_limit_with_a_platform_is_used_by_every_strategy(tmp_path: Path) -> None:
    files = config_files(
        "https://r.example.com",
        [AppSpec("api", "acme/api", "r/api")],
        rules="      - {range: '^1', platform: linux/arm64, scanLimit: 5}\n",
    )
    write_files(tmp_path, files)
    load_config(tmp_path)


# ------------------------------------------------- item 6: regex orders whole tags


def test_regex_without_extract_orders_by_the_whole_tag() -> None:
    rule = VersionRule(strategy="regex", allow="[a-z]+", order="alphabetical")
    assert select(rule, ["1-zzz", "9-aaa"]).chosen == "9-aaa"
    assert is_newer(rule, "9-aaa", "1-zzz")
    numeric = VersionRule(strategy="regex", allow="^[0-9]+$")
    assert select(numeric, ["10", "9", "x"]).chosen == "10"
