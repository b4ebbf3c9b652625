"""Issue 14 item 5: user regexes cannot make a pass hang (catastrophic backtracking).

Each end-to-end case pushes a near-miss tag that a backtracking engine needs
2^30 and more steps to refuse, then runs ``reconciler once`` as a whole process
against the real registry and a real Git remote. On a backtracking engine the
process is still running at the (generous) subprocess timeout, so the test fails
with ``TimeoutExpired``; no timing is asserted. The structural tests check that
every rule pattern is compiled by RE2, and that ``validate`` refuses what RE2
does not support, naming the file, line, key and construct.
"""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from reconciler.model import VersionRule
from reconciler.selection import select, validate_rule
from reconciler.userregex import ENGINE, UnsupportedRegex, compile_user_regex
from tests.helpers.configrepo import DEV_ONLY, AppSpec, config_files, result_json, run_cli
from tests.helpers.gitserver import write_files

EVIL_A = "a" * 36 + "-x"
"""``^(a+)+$`` backtracks through every split of the a's before refusing the ``-x``."""

EVIL_DIGITS = "1" * 30 + "-rc"
"""``^v?(\\d+\\.?)+$`` backtracks through every split of 30 digits."""

CASES = {
    "allow": (
        "- strategy: regex\n  allow: '^(a+)+$'\n  order: alphabetical\n",
        ["a", "aaa", EVIL_A],
        "aaa",
    ),
    "ignore": ("- ignore: ['^(a+)+$']\n", ["1.0.0", "1.1.0", EVIL_A], "1.1.0"),
    "prerelease": (
        "- prerelease: '^(a+)+$'\n",
        ["1.0.0", "1.0.0-aa", "1.0.0-" + EVIL_A.replace("-", ".")],
        "1.0.0-aa",
    ),
    "allow-digits": ("- allow: '^v?(\\d+\\.?)+$'\n", ["1.2.3", "1.2.4", EVIL_DIGITS], "1.2.4"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_catastrophic_pattern_and_a_near_miss_tag_do_not_hang_the_pass(
    case: str, registry: Any, bare_remote: Any, tmp_path: Path
) -> None:
    rules, tags, expected = CASES[case]
    app = AppSpec("api", f"rx{uuid.uuid4().hex[:8]}/api", "example.com/shop/api")
    for tag in tags:
        registry.push(app.repository, tag)
    files = config_files(
        registry.url,
        [app],
        rules=textwrap.indent(rules, "      "),
        lifecycle=DEV_ONLY,
        envs=("dev",),
    )
    remote = bare_remote(seed=files)
    proc = run_cli(
        "once", "--repo", remote.url, "--work-dir", str(tmp_path / "w"), "--json", timeout=90
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    releases = result_json(proc)["releases"]
    assert [r["packages"]["api"]["version"] for r in releases] == [expected]


def test_every_rule_pattern_is_compiled_by_the_linear_time_engine() -> None:
    assert ENGINE == "re2"
    for pattern in ("^(a+)+$", r"^v?(\d+\.?)+$", "(?<ts>[0-9]+)"):
        assert compile_user_regex(pattern).engine == "re2"
    # The selection itself goes through the same module: an RE2-only spelling works.
    rule = VersionRule(strategy="regex", allow=r"^build-(?P<n>[0-9]+)\z", extract="$n")
    assert select(rule, ["build-9", "build-10", "build-10x"]).chosen == "build-10"


@pytest.mark.parametrize(
    ("pattern", "construct"),
    [
        (r"^(a)\1$", "backreferences are not supported"),
        (r"^(?P<x>a)(?P=x)$", "backreferences are not supported"),
        (r"^(?=v)v[0-9]+$", "lookahead and lookbehind are not supported"),
        (r"^(?<!x)[0-9]+$", "lookahead and lookbehind are not supported"),
        (r"^(?>a+)$", "atomic groups are not supported"),
        (r"^a++$", "possessive quantifiers are not supported"),
        (r"^(a{100}){100}$", "repetition counts above 1000"),
    ],
)
def test_unsupported_constructs_are_refused_with_the_construct_named(
    pattern: str, construct: str
) -> None:
    with pytest.raises(UnsupportedRegex, match=construct):
        compile_user_regex(pattern)
    for rule in (
        VersionRule(allow=pattern),
        VersionRule(ignore=("ok", pattern)),
        VersionRule(prerelease=pattern),
    ):
        assert any(construct in problem for problem in validate_rule(rule))


def test_validate_names_file_line_and_key_of_an_unsupported_pattern(tmp_path: Path) -> None:
    app = AppSpec("api", "x/api", "example.com/shop/api")
    files = config_files(
        "http://127.0.0.1:9", [app], rules="      - allow: '^(v)\\1'\n", envs=("dev",)
    )
    write_files(tmp_path, files)
    proc = run_cli("validate", str(tmp_path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    output = proc.stdout + proc.stderr
    line = next(x for x in output.splitlines() if "backreferences" in x)
    text = files["projects/shop/project.yaml"]
    allow_line = 1 + text[: text.index("allow:")].count("\n")
    assert line.startswith(f"projects/shop/project.yaml:{allow_line}: "), line
    assert "channels[0].rules[0]" in line and "allow" in line, line
