"""The documents say one thing where users read a rule in two places (issue 15, item 14):
soak counts from the moment the phase's minimum was reached (lifecycle.py), not from
the time a release has spent in the phase."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOAK = (
    "soak counts from the moment the phase's minimum was reached, "
    "whether or not the release still runs there"
)


def _text(path: str) -> str:
    return " ".join((ROOT / path).read_text(encoding="utf-8").split())


def test_soak_is_defined_alike_in_the_readme_and_the_config_reference() -> None:
    for path in ("README.md", "docs/config-reference.md"):
        text = _text(path)
        assert SOAK in text, path
        assert "spent in the phase" not in text, path
        assert "once it has run there for" not in text, path
    assert "since the moment that minimum was reached" in _text("reconciler/lifecycle.py")
