"""Tag selection for every strategy (reconciler.selection)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.model import VersionRule
from reconciler.selection import Candidate, is_newer, select, validate_rule


def reasons(rule: VersionRule, tags: list[str], **kwargs: object) -> dict[str, str]:
    return {c.tag: c.reason for c in select(rule, tags, **kwargs).rejected}  # type: ignore[arg-type]


# -------------------------------------------------------------------- semver


@pytest.mark.parametrize(
    ("rule", "tags", "chosen"),
    [
        (VersionRule(prerelease="^rc"), ["1.0.0-rc.9", "1.0.0-rc.10", "1.0.0-rc.2"], "1.0.0-rc.10"),
        (VersionRule(prerelease=".*"), ["1.0.0-rc.1", "1.0.0"], "1.0.0"),
        (VersionRule(), ["latest", "main", "0.0.1"], "0.0.1"),
        (VersionRule(), ["latest", "main"], None),
        (VersionRule(), ["v1.2", "1.2.0"], "1.2.0"),  # equal: the more precise tag wins
        (VersionRule(), ["v1.3", "1.2.9"], "v1.3"),  # the original string is returned
        (VersionRule(), ["1.2.3.4", "1.2.3.10", "1.2.3"], "1.2.3.10"),
        (VersionRule(), ["18.04", "18.10", "18.4.1"], "18.10"),
        (VersionRule(), ["3f2a1c0", "123456789", "2.0"], "2.0"),
        (VersionRule(), ["1.2.3_build.1", "1.2.2"], "1.2.2"),  # `_` is not `+` in images
        (VersionRule(prerelease="^rc"), ["1.0.0-rc_9", "1.0.0-rc_10"], "1.0.0-rc_10"),
        (VersionRule(), ["1.2.3+build.1", "1.2.2"], "1.2.2"),  # `+` is no OCI tag
        (VersionRule(range="^1.0"), ["0.9.0", "1.4.0", "2.0.0"], "1.4.0"),
        (VersionRule(range=">=1.0 <2.0"), ["1.5.0-rc.1", "1.4.0"], "1.4.0"),
        (VersionRule(range=">=1.5.0-rc.1 <2.0"), ["1.5.0-rc.2", "1.4.0"], "1.5.0-rc.2"),
        (VersionRule(range="[1.0,2.0)", prerelease="^$"), ["1.9", "2.0"], "1.9"),
        (VersionRule(range="[1.0,2.0)", prerelease="^rc"), ["1.9", "1.9.1-rc.1"], "1.9.1-rc.1"),
        (VersionRule(strict=True), ["v2.0.0", "1.10", "1.2.3"], "1.2.3"),
        (VersionRule(allow=r"^v"), ["v1.0", "2.0"], "v1.0"),
        (VersionRule(ignore=(r"^2\.",)), ["1.0", "2.0"], "1.0"),
    ],
)
def test_semver(rule: VersionRule, tags: list[str], chosen: str | None) -> None:
    assert select(rule, tags).chosen == chosen


def test_semver_accepted_is_best_first() -> None:
    selection = select(VersionRule(), ["1.0", "3.0", "2.0", "latest"])
    assert selection.accepted == ("3.0", "2.0", "1.0")


def test_semver_reasons() -> None:
    rule = VersionRule(range=">=1.0 <2.0", prerelease="^$")
    got = reasons(rule, ["1.5.0-rc.1", "latest", "2.0.0", "3f2a1c0", "1.0.0"])
    assert got == {
        "1.5.0-rc.1": "pre-release 'rc.1' does not match ^$",
        "latest": "not a version",
        "2.0.0": "outside range >=1.0 <2.0",
        "3f2a1c0": "not a version (looks like a commit hash)",
    }
    assert str(Candidate("2.0.0", "outside range >=1.0 <2.0")) == "2.0.0: outside range >=1.0 <2.0"


def test_semver_prerelease_reasons_without_regex() -> None:
    assert reasons(VersionRule(range="^1"), ["1.5.0-rc.1"]) == {
        "1.5.0-rc.1": "pre-release excluded: range ^1 names none of it"
    }
    assert reasons(VersionRule(), ["1.5.0-rc.1"]) == {
        "1.5.0-rc.1": "pre-release excluded: no prerelease pattern admits it"
    }
    assert reasons(VersionRule(prerelease="^rc"), ["1.5.0"]) == {
        "1.5.0": "stable version does not match ^rc"
    }
    assert reasons(VersionRule(strict=True), ["v1.0.0"]) == {
        "v1.0.0": "not a strict SemVer 2.0 version"
    }


@pytest.mark.parametrize(
    "hostile",
    [
        "1.0.0\n",
        "9.9.9\nrm -rf /",
        "9.9.9'",
        '9.9.9"',
        "9.9.9 #x",
        "9.9.9: x",
        "9" * 10 + "." + "9" * 300,
        ".9.9.9",
        "-9.9.9",
        "9.9.9/x",
        "",
    ],
)
def test_hostile_tags_are_rejected_not_selected(hostile: str) -> None:
    selection = select(VersionRule(prerelease=".*"), [hostile, "1.0.0"])
    assert selection.chosen == "1.0.0"
    assert [c.tag for c in selection.rejected] == [hostile]
    assert selection.rejected[0].reason == "not a valid tag name"
    assert "\n" not in str(selection.rejected[0])
    assert len(str(selection.rejected[0])) < 120


# -------------------------------------------------------------------- suffix


FAMILY = ["1.2-alpine", "1.3-alpine", "1.3", "1.4", "1.3.1-alpine", "2.0-slim", "latest"]


@pytest.mark.parametrize(
    ("rule", "current", "chosen"),
    [
        (VersionRule(strategy="suffix"), "1.2-alpine", "1.3.1-alpine"),
        (VersionRule(strategy="suffix", same_precision=True), "1.2-alpine", "1.3-alpine"),
        (VersionRule(strategy="suffix"), "1.2", "1.4"),
        (VersionRule(strategy="suffix"), None, "1.4"),
        (VersionRule(strategy="suffix", suffix="slim"), None, "2.0-slim"),
        (VersionRule(strategy="suffix", suffix="-alpine"), "1.4", "1.3.1-alpine"),
        (VersionRule(strategy="suffix", range="~1.2"), "1.2-alpine", "1.2-alpine"),
    ],
)
def test_suffix(rule: VersionRule, current: str | None, chosen: str) -> None:
    assert select(rule, FAMILY, current=current).chosen == chosen


def test_suffix_reasons() -> None:
    rule = VersionRule(strategy="suffix", same_precision=True)
    got = reasons(rule, FAMILY, current="1.2-alpine")
    assert got["1.3"] == "suffix '' is not the wanted suffix ('alpine')"
    assert got["1.3.1-alpine"] == "has 3 numeric parts, not 2"
    assert got["latest"] == "not a version"


def test_suffix_handles_v_prefix_and_leading_zeros() -> None:
    rule = VersionRule(strategy="suffix")
    assert (
        select(rule, ["v18.04-focal", "18.10-focal", "18.4.1-jammy"], current="18.04-focal").chosen
        == "18.10-focal"
    )


# --------------------------------------------------------------------- regex


TIMESTAMPS = [
    "main-3f2a1c-1700000000",
    "main-9b8c7d-1700000500",
    "main-aa11bb-1699999999",
    "pr-1-1800000000",
]


@pytest.mark.parametrize(
    ("rule", "chosen"),
    [
        (
            VersionRule(strategy="regex", allow=r"^main-[a-f0-9]+-(?P<ts>[0-9]+)$", extract="$ts"),
            "main-9b8c7d-1700000500",
        ),
        (
            VersionRule(strategy="regex", allow=r"^main-[a-f0-9]+-(?<ts>[0-9]+)$", extract="$ts"),
            "main-9b8c7d-1700000500",
        ),
        (
            VersionRule(strategy="regex", allow=r"^main-[a-f0-9]+-([0-9]+)$", extract="$1"),
            "main-9b8c7d-1700000500",
        ),
        (
            VersionRule(
                strategy="regex",
                allow=r"^main-[a-f0-9]+-(?P<ts>[0-9]+)$",
                extract="${ts}",
                pick="lowest",
            ),
            "main-aa11bb-1699999999",
        ),
        (
            VersionRule(
                strategy="regex",
                allow=r"^main-(?P<sha>[a-f0-9]+)-",
                extract="$sha",
                order="alphabetical",
            ),
            "main-aa11bb-1699999999",
        ),
        (VersionRule(strategy="regex", allow=r"^main-"), None),  # whole tags are not numbers
        (
            VersionRule(strategy="regex", allow=r"^main-", order="alphabetical"),
            "main-aa11bb-1699999999",
        ),
    ],
)
def test_regex(rule: VersionRule, chosen: str | None) -> None:
    assert select(rule, TIMESTAMPS).chosen == chosen


def test_regex_numerical_skips_non_numbers() -> None:
    rule = VersionRule(strategy="regex", allow=r"^build-(?P<n>.+)$", extract="$n")
    selection = select(rule, ["build-9", "build-10", "build-x1", "build-123456789012345678901234"])
    assert selection.chosen == "build-123456789012345678901234"
    assert selection.accepted[-2:] == ("build-10", "build-9")
    assert reasons(rule, ["build-x1", "other"]) == {
        "build-x1": "extracted value 'x1' is not a number",
        "other": r"does not match allow ^build-(?P<n>.+)$",
    }


# -------------------------------------------------------------- newest-build


T0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_newest_build_picks_newest_known_and_asks_for_the_rest() -> None:
    rule = VersionRule(strategy="newest-build", scan_limit=2, ignore=("^latest$",))
    tags = ["abc", "1.0", "2.0", "zzz", "latest", "0.5"]
    created = {"abc": T0 + timedelta(hours=2), "1.0": T0}
    selection = select(rule, tags, created=created)
    assert selection.chosen == "abc"
    assert selection.accepted == ("abc", "1.0")
    assert selection.needs_metadata == ("2.0", "0.5")  # versions first, highest first
    got = reasons(rule, tags, created=created)
    assert got["2.0"] == "creation time not known yet (metadata requested)"
    assert got["zzz"] == "creation time not known (beyond scan_limit 2)"
    assert got["latest"] == "matches ignore ^latest$"


def test_newest_build_ties_break_by_tag_order() -> None:
    rule = VersionRule(strategy="newest-build")
    assert (
        select(rule, ["1.9", "1.10", "b"], created=dict.fromkeys(["1.9", "1.10", "b"], T0)).chosen
        == "1.10"
    )


def test_newest_build_without_metadata_chooses_nothing() -> None:
    selection = select(VersionRule(strategy="newest-build"), ["a", "b"])
    assert selection.chosen is None
    assert selection.needs_metadata == ("b", "a")


# -------------------------------------------------------------------- digest


def test_digest_follows_the_tag() -> None:
    rule = VersionRule(strategy="digest", tag="stable")
    assert select(rule, ["stable", "latest", "1.0"]).chosen == "stable"
    assert select(rule, ["latest"]).chosen is None
    assert reasons(rule, ["latest"]) == {"latest": "not the followed tag stable"}


# ------------------------------------------------------------------- is_newer


@pytest.mark.parametrize(
    ("rule", "candidate", "previous", "newer"),
    [
        (VersionRule(), "1.2.1", "1.2.0", True),
        (VersionRule(), "1.2.0", "v1.2", False),  # equal versions are not newer
        (VersionRule(), "1.1.0", "1.2.0", False),
        (VersionRule(), "1.0.0", "latest", True),  # an unrankable previous tag is older
        (VersionRule(), "1.0.0", None, True),
        (VersionRule(), "latest", "1.0.0", False),
        (VersionRule(strategy="suffix"), "1.3-alpine", "1.2-alpine", True),
        (VersionRule(strategy="regex", allow=r"-(?P<ts>\d+)$", extract="$ts"), "a-20", "b-3", True),
        (
            VersionRule(strategy="regex", allow=r"-(?P<ts>\d+)$", extract="$ts", pick="lowest"),
            "a-20",
            "b-3",
            False,
        ),
        (
            VersionRule(strategy="regex", allow=r"-(?P<ts>\d+)$", extract="$ts", pick="lowest"),
            "a-2",
            "b-3",
            True,
        ),
    ],
)
def test_is_newer_follows_selection_order(
    rule: VersionRule, candidate: str, previous: str | None, newer: bool
) -> None:
    assert is_newer(rule, candidate, previous) is newer


def test_is_newer_newest_build() -> None:
    rule = VersionRule(strategy="newest-build")
    created = {"a": T0, "b": T0 + timedelta(seconds=1)}
    assert is_newer(rule, "b", "a", created=created)
    assert not is_newer(rule, "a", "b", created=created)
    assert is_newer(rule, "c", "a", created=created)  # unknown time, different tag
    assert not is_newer(rule, "a", "a", created=created)


def test_is_newer_digest() -> None:
    rule = VersionRule(strategy="digest", tag="stable")
    old, new = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    assert is_newer(rule, "stable", "stable", candidate_digest=new, previous_digest=old)
    assert not is_newer(rule, "stable", "stable", candidate_digest=old, previous_digest=old)
    assert not is_newer(rule, "stable", "stable", candidate_digest=None, previous_digest=old)
    assert is_newer(rule, "stable", "stable", candidate_digest=new, previous_digest=None)
    assert is_newer(rule, "stable", None)


# --------------------------------------------------------------- validate_rule


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        (VersionRule(allow="("), "allow: invalid regular expression '('"),
        (VersionRule(ignore=("ok", "[")), "ignore: invalid regular expression '['"),
        (VersionRule(prerelease="*"), "prerelease: invalid regular expression '*'"),
        (VersionRule(range=">=1.0 <<2"), "range: invalid range '>=1.0 <<2'"),
        (VersionRule(strategy="regex"), "the regex strategy needs an allow pattern"),
        (
            VersionRule(strategy="regex", allow="(?P<ts>1)", extract="$tss"),
            "extract: '$tss' names no group",
        ),
        (VersionRule(strategy="regex", allow="(1)", extract="$2"), "extract: '$2' names no group"),
        (
            VersionRule(strategy="regex", allow="(1)", extract="ts"),
            "extract: 'ts' must name a group like $name",
        ),
        (VersionRule(strategy="digest"), "the digest strategy needs the tag to follow"),
        (VersionRule(strategy="bogus"), "unknown strategy 'bogus'"),  # type: ignore[arg-type]
        (VersionRule(scan_limit=0), "scan_limit must be at least 1"),
    ],
)
def test_validate_rule(rule: VersionRule, problem: str) -> None:
    problems = validate_rule(rule)
    assert len(problems) == 1, problems
    assert problems[0].startswith(problem)


@pytest.mark.parametrize(
    "rule",
    [
        VersionRule(),
        VersionRule(range="[1.0,2.0)", prerelease="^$", allow="^v", ignore=("-debug$",)),
        VersionRule(strategy="regex", allow=r"^main-(?<ts>\d+)$", extract="$ts"),
        VersionRule(strategy="digest", tag="latest"),
    ],
)
def test_valid_rules_have_no_problems(rule: VersionRule) -> None:
    assert validate_rule(rule) == []


# ----------------------------------------------------------------- properties


_TAG_POOL = [
    "1.0.0",
    "v1.0.0",
    "1.0",
    "1.0.0-rc.1",
    "1.0.0-rc.10",
    "2.0.0-beta",
    "1.2-alpine",
    "1.3-alpine",
    "1.3",
    "latest",
    "main-3f2a1c-1700000000",
    "main-9b8c7d-1700000500",
    "18.04",
    "18.4",
    "1.2.3.4",
    "3f2a1c0",
    "1.2.3_build.1",
    "bad tag",
    "0.9",
]
_RULES = [
    VersionRule(),
    VersionRule(prerelease=".*"),
    VersionRule(range="^1.0", prerelease="^rc"),
    VersionRule(strategy="suffix"),
    VersionRule(strategy="regex", allow=r"^main-[a-f0-9]+-(?P<ts>\d+)$", extract="$ts"),
    VersionRule(strategy="regex", allow=r".", order="alphabetical", pick="lowest"),
    VersionRule(strategy="newest-build", scan_limit=3),
    VersionRule(strategy="digest", tag="latest"),
]


@given(
    st.lists(st.sampled_from(_TAG_POOL), unique=True),
    st.sampled_from(_RULES),
    st.randoms(use_true_random=False),
)
def test_selection_is_independent_of_tag_order(
    tags: list[str], rule: VersionRule, rng: random.Random
) -> None:
    created = {t: T0 + timedelta(minutes=len(t) % 3) for t in tags[::2]}
    shuffled = tags[:]
    rng.shuffle(shuffled)
    first = select(rule, tags, current="1.2-alpine", created=created)
    second = select(rule, shuffled + tags[:1], current="1.2-alpine", created=created)
    assert first == second


@given(st.lists(st.text(max_size=140), max_size=20), st.sampled_from(_RULES))
def test_arbitrary_tags_never_break_selection(tags: list[str], rule: VersionRule) -> None:
    selection = select(rule, tags)
    if selection.chosen is not None:
        assert selection.chosen in tags
        assert "\n" not in selection.chosen and " " not in selection.chosen
    assert len(selection.accepted) + len(selection.rejected) == len(set(tags))
