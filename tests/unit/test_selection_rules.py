"""Issue 15: no rule that silently does nothing, and tags read the way users mean them."""

from __future__ import annotations

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
