"""The first-scan progress line: on a terminal only, and only for long scans."""

from __future__ import annotations

import io
import sys

import pytest

from reconciler.commands.common import tty_progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_shown_on_a_terminal_for_long_scans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    show = tty_progress()
    assert show is not None
    show(1, 5)  # a short scan: nothing to watch
    show(10, 200)
    show(200, 200)
    assert terminal.getvalue() == "\rpolling repositories: 10/200\rpolling repositories: 200/200\n"


@pytest.mark.parametrize("where", ["pipe", "ci"])
def test_no_progress_in_containers_or_ci(monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    if where == "ci":
        monkeypatch.setattr(sys, "stderr", Terminal())
        monkeypatch.setenv("CI", "true")
    else:
        monkeypatch.setattr(sys, "stderr", io.StringIO())
        monkeypatch.delenv("CI", raising=False)
    assert tty_progress() is None
