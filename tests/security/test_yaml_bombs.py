"""Issue 14 item 4: a YAML alias bomb under the alias-count cap.

Nine nested levels of nine aliases each (81 aliases, under the cap of 100) stand for
about 4 * 10**9 nodes. Before the expanded-size bound, ``validate`` walked them all
(gigabytes, minutes) and its schema message printed the expanded value.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import yamlio
from reconciler.config import brief, load_config
from reconciler.errors import ConfigError
from tests.helpers.configrepo import AppSpec, config_files, run_cli, write_files

HEADER = "apiVersion: reconciler.dev/v1\nkind: Trigger\nname: bomb\nproject: shop\n"


def _bomb(levels: int = 9, width: int = 9) -> str:
    """``levels`` anchored lists of ``width`` aliases each, the last one as sources."""
    lines = ["x0: &a0 [" + ", ".join(["x"] * width) + "]"]
    lines += [f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    lines.append("sources: [" + ", ".join([f"*a{levels - 1}"] * width) + "]")
    return HEADER + "\n".join(lines) + "\n"


def _repo(tmp_path: Path, **extra: str) -> Path:
    files = config_files("https://r.example.com", [AppSpec("api", "acme/api", "r/api")])
    files.update(extra)
    return write_files(tmp_path, files)


def _problems(root: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(root)
    return [str(p) for p in info.value.problems]


def test_the_bomb_uses_fewer_aliases_than_the_count_cap():
    assert _bomb().count("*") == 81 < yamlio.MAX_ALIASES


@pytest.mark.timeout(60)
def test_alias_bomb_under_the_alias_cap_fails_fast_with_file_and_line(tmp_path):
    root = _repo(tmp_path, **{"triggers/bomb.yaml": _bomb()})
    # x6 (line 11) is the first level whose expansion passes the bound
    assert _problems(root) == [
        "triggers/bomb.yaml:11: YAML aliases expand this document beyond 2000000 nodes "
        "and characters: refusing a possible alias bomb"
    ]


@pytest.mark.timeout(120)
def test_validate_command_refuses_the_bomb(tmp_path):
    root = _repo(tmp_path, **{"triggers/bomb.yaml": _bomb()})
    proc = run_cli("validate", str(root), timeout=100)
    assert proc.returncode == 1
    assert "triggers/bomb.yaml:11: YAML aliases expand this document beyond" in proc.stderr
    assert len(proc.stderr) < 1000


def test_the_bound_is_per_document_and_counts_scalar_text():
    big = "y" * 100_000
    # 30 aliases of a 100,000-character scalar: 3 MB once expanded
    text = f"a: &a {big}\nb: [" + ", ".join(["*a"] * 30) + "]\n"
    line, message = yamlio.limit_problem(text) or (0, "")
    assert (line, message.split(":")[0]) == (
        2,
        "YAML aliases expand this document beyond 2000000 nodes and characters",
    )
    # the same aliases split over documents stay within the bound of each
    split = "".join(f"a: &a {big}\nb: [*a, *a, *a, *a, *a]\n---\n" for _ in range(6))
    assert yamlio.limit_problem(split) is None


def test_schema_errors_show_a_short_rendering_never_the_expanded_value(tmp_path):
    # under the bound, but the value is still thousands of characters once expanded
    levels = "".join(f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 5) + "]\n" for i in range(1, 4))
    trigger = HEADER + "x0: &a0 [a, b, c, d, e]\n" + levels + "sources: [api]\nenabled: *a3\n"
    root = _repo(tmp_path, **{"triggers/t.yaml": trigger})
    problems = _problems(root)
    assert problems == [
        "triggers/t.yaml:5: x0: unknown field 'x0'",
        "triggers/t.yaml:10: enabled: [[[['a', 'b', 'c', 'd', 'e'], ['a', 'b',... "
        "is not of type 'boolean'",
    ]


def test_unknown_kind_given_as_a_structure_is_reported_briefly(tmp_path):
    text = (
        "x: &a ["
        + ", ".join(["long-value"] * 20)
        + "]\napiVersion: reconciler.dev/v1\nkind: [*a, *a]\n"
    )
    problems = _problems(_repo(tmp_path, **{"feeds/odd.yaml": text}))
    assert problems == [
        "feeds/odd.yaml:3: kind: unknown kind [['long-value', 'long-value', 'long-valu...; "
        "expected one of Feed, Lifecycle, Project, Settings, Trigger"
    ]


def test_brief_never_renders_more_than_its_limit():
    value: list[object] = ["x"] * 9
    for _ in range(12):  # 9**13 leaves if it were expanded
        value = [value] * 9
    assert brief(value) == "[[[[[[[[[[[[['x', 'x', 'x', 'x', 'x', 'x..."
