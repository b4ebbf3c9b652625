"""Every environment variable that the shipped manifests (deploy/, the Helm chart, the
Dockerfile, action.yml) and the docs name is read by the code: following an example
must never set a variable that nothing reads (RECONCILER_GIT_USERNAME_FILE once was)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\b(RECONCILER_[A-Z0-9_]*[A-Z0-9]_?|DOCKER_CONFIG|NO_COLOR|POD_NAME)\b")

# Variables for the test suite and benchmarks, documented in docs/reliability.md.
TEST_SWITCHES = {"RECONCILER_SOAK", "RECONCILER_TEST_HOOK", "RECONCILER_TEST_HUMAN_PAUSE"}


def _names(paths: list[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in paths:
        for name in NAME.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, path)
    return found


def _shipped() -> list[Path]:
    files = [p for p in (ROOT / "deploy").rglob("*") if p.is_file()]
    files += [p for p in (ROOT / "charts").rglob("*") if p.is_file() and p.suffix != ".tgz"]
    files += [ROOT / "Dockerfile", ROOT / "action.yml", ROOT / ".pre-commit-hooks.yaml"]
    return [p for p in files if p.is_file()]


def _docs() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _read_by_code(name: str, code: str) -> bool:
    """The name is spelled in the code, or built there from a prefix (``f"PREFIX_{x}"``)."""
    if re.search(rf"\b{re.escape(name)}\b", code):
        return True
    if name.endswith("_") and f'"{name.rstrip("_")}"' in code:  # a documented prefix
        return True
    parts = name.rstrip("_").split("_")
    for cut in range(len(parts) - 1, 1, -1):
        prefix = "_".join(parts[:cut]) + "_"
        if f'"{prefix}{{' in code or f"'{prefix}{{" in code or f'"{prefix}"' in code:
            return True
    return False


def _code() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "reconciler").rglob("*.py"))


def test_every_variable_in_the_shipped_manifests_is_read_by_the_code():
    code = _code()
    names = _names(_shipped())
    assert "RECONCILER_GIT_USERNAME_FILE" in names  # the example that once misled
    unread = {n: str(p.relative_to(ROOT)) for n, p in names.items() if not _read_by_code(n, code)}
    assert unread == {}


def test_every_variable_in_the_docs_is_read_by_the_code():
    code = _code()
    names = _names(_docs())
    unread = {
        n: str(p.relative_to(ROOT))
        for n, p in names.items()
        if n not in TEST_SWITCHES and not _read_by_code(n, code)
    }
    assert unread == {}


def test_the_test_switches_are_read_by_the_tests():
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("*.py") if p != Path(__file__))
    tests += (ROOT / "reconciler" / "publish.py").read_text()  # the crash-test hook
    for name in TEST_SWITCHES:
        assert re.search(rf'"{name}"', tests), name


def test_a_variable_nothing_reads_is_caught():
    assert not _read_by_code("RECONCILER_GIT_USERNAME_FIEL", "x = 'RECONCILER_GIT_USERNAME'")
    assert _read_by_code("RECONCILER_WEBHOOK_SECRET_GITHUB", 'f"RECONCILER_WEBHOOK_SECRET_{e}"')
