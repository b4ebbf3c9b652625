"""Progress of long scans: a bar on a terminal, periodic one-line records elsewhere."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from reconciler.commands.common import PassProgress, pass_progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_is_drawn_on_a_terminal_for_long_scans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    show = pass_progress()
    assert show.tty
    show(1, 5)  # a short scan: nothing to watch
    show(100, 200)
    show(200, 200)
    assert terminal.getvalue() == (
        "\rpolling repositories [" + "#" * 15 + "-" * 15 + "] 100/200"
        "\rpolling repositories [" + "#" * 30 + "] 200/200\n"
    )


@pytest.mark.parametrize("where", ["pipe", "ci"])
def test_no_bar_in_containers_or_ci(monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    stream = Terminal() if where == "ci" else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    if where == "ci":
        monkeypatch.setenv("CI", "true")
    else:
        monkeypatch.delenv("CI", raising=False)
    show = pass_progress()
    show(100, 200)
    assert not show.tty and stream.getvalue() == ""


def test_off_a_terminal_a_long_scan_logs_a_line_every_period(caplog) -> None:
    now = [0.0]
    show = PassProgress(tty=False, clock=lambda: now[0], every=10.0)
    caplog.set_level(logging.INFO, logger="reconciler.progress")
    for done in range(1, 1001):
        now[0] = done * 0.1  # 1,000 repositories in 100 s
        show(done, 1000)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 10  # one every 10 s (the last falls on a period)
    assert lines[0] == "polled 100 of 1000 repositories"
    assert lines[-1] == "polled 1000 of 1000 repositories"


def test_off_a_terminal_the_end_of_a_long_scan_is_logged(caplog) -> None:
    now = [0.0]
    show = PassProgress(tty=False, clock=lambda: now[0], every=10.0)
    caplog.set_level(logging.INFO, logger="reconciler.progress")
    now[0] = 12.0
    show(40, 50)
    now[0] = 13.0
    show(50, 50)
    assert [r.getMessage() for r in caplog.records] == [
        "polled 40 of 50 repositories",
        "polled 50 of 50 repositories",
    ]


def test_off_a_terminal_a_short_pass_logs_nothing(caplog) -> None:
    show = PassProgress(tty=False, clock=lambda: 0.0)
    caplog.set_level(logging.INFO, logger="reconciler.progress")
    for done in range(1, 4):
        show(done, 3)
    assert caplog.records == []
