"""Usage errors are exit 2 with click's message, never 'internal error' (70); the
exit-code table lives in reconciler.errors and every command uses it."""

from __future__ import annotations

import socket

import pytest

from reconciler.commands.common import auto_shard
from reconciler.errors import (
    ConfigError,
    ExitCode,
    GitError,
    Problem,
    PromotionRefused,
    PullRequestError,
    ReconcilerError,
    WebhookRejected,
    exit_for,
)
from tests.helpers.configrepo import run_cli


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["once", "--shard", "3/2"], "is not INDEX/COUNT with 0 <= INDEX < COUNT"),
        (["once", "--shard", "x"], "is not INDEX/COUNT"),
        (["run", "--shard", "1/0"], "is not INDEX/COUNT"),
        (["run", "--listen", "localhost"], "is not HOST:PORT"),
        (["run", "--listen", "127.0.0.1:99999"], "is not HOST:PORT"),
        (["run", "--listen", "::1]:80"], "IPv6 host is written in brackets"),
        (["run", "--log-level", "loud"], "'loud' is not one of"),
        (["once", "--log-level", "verbose"], "'verbose' is not one of"),
        (["once", "--log-format", "xml"], "'xml' is not one of"),
        (["plan", "-o", "csv"], "'csv' is not one of"),
    ],
)
def test_bad_option_values_are_usage_errors(args, message, tmp_path):
    proc = run_cli(*args, "--repo", str(tmp_path), timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "internal error" not in proc.stderr


def test_shard_auto_outside_a_statefulset_is_a_usage_error(tmp_path):
    proc = run_cli("once", "--shard", "auto", "--repo", str(tmp_path), env={"POD_NAME": "laptop"})
    assert proc.returncode == 2
    assert "does not end in a StatefulSet ordinal" in proc.stderr


def test_log_level_is_case_insensitive_and_read_from_the_environment(tmp_path):
    # An upper-case level from the environment is accepted; the run then fails on the
    # missing repository (a git error, 4), not on the option.
    proc = run_cli(
        "once", "--repo", str(tmp_path / "none"), "--work-dir", str(tmp_path / "w"),
        env={"RECONCILER_LOG_LEVEL": "DEBUG", "RECONCILER_LOG_FORMAT": "json"},
    )  # fmt: skip
    assert proc.returncode == ExitCode.GIT, proc.stderr


def test_a_port_in_use_is_a_clear_usage_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = run_cli(
            "run", "--repo", str(tmp_path), "--work-dir", str(tmp_path / "w"),
            "--listen", f"127.0.0.1:{port}", timeout=60,
        )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert f"cannot listen on 127.0.0.1:{port}: already in use" in proc.stderr
    assert "internal error" not in proc.stderr


def test_auto_shard_reads_the_pod_ordinal_and_the_count():
    assert auto_shard({"POD_NAME": "reconciler-3", "RECONCILER_SHARD_COUNT": "4"}) == "3/4"
    assert auto_shard({"POD_NAME": "my-app-reconciler-0", "RECONCILER_SHARD_COUNT": "1"}) == "0/1"
    with pytest.raises(ValueError, match="RECONCILER_SHARD_COUNT"):
        auto_shard({"POD_NAME": "reconciler-3"})


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (
            ConfigError([Problem("a.yaml", 3, "name", "bad")]),
            1,
            "config invalid:\na.yaml:3: name: bad",
        ),
        (PromotionRefused("frozen"), 1, "refused: frozen"),
        (GitError("unreachable"), 4, "git error: unreachable"),
        (PullRequestError("github", "403"), 1, "error: github: 403"),
        (WebhookRejected(401, "bad signature"), 1, "error: 401: bad signature"),
    ],
)
def test_one_table_maps_errors_to_exit_codes(error, code, message):
    assert isinstance(error, ReconcilerError)  # the documented tree holds them all
    assert exit_for(error) == (code, message)


def test_cli_and_manual_commands_use_the_one_table():
    import inspect

    from reconciler import cli
    from reconciler.commands import manual

    for module in (cli, manual):
        source = inspect.getsource(module)
        assert "exit_for(" in source
        assert "SystemExit(4)" not in source and "EXIT_GIT" not in source


def test_help_has_no_rst_markup_and_shows_the_environment_variables():
    from click.testing import CliRunner

    from reconciler.cli import COMMANDS, main

    runner = CliRunner()
    top = runner.invoke(main, ["--help"]).output
    assert "Environment variables" in top and "RECONCILER_GIT_PASSWORD" in top
    assert "Exit codes: 0 ok" in top
    for name in COMMANDS:
        text = runner.invoke(main, [name, "--help"]).output
        assert "``" not in text and ":class:" not in text, name
    run_help = " ".join(runner.invoke(main, ["run", "--help"]).output.split())
    for variable in ("RECONCILER_LISTEN", "RECONCILER_REPO", "RECONCILER_LOG_LEVEL"):
        assert f"env var: {variable}" in run_help, variable


def test_run_with_json_logging_writes_only_json_lines(tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "RECONCILER_LOG_FORMAT": "json", "GIT_TERMINAL_PROMPT": "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler.cli", "run", "--repo", str(tmp_path / "none"),
         "--work-dir", str(tmp_path / "w"), "--listen", "127.0.0.1:0", "--interval", "3600"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    lines: list[str] = []
    assert process.stderr is not None
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        if "serving on" in line:
            break
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=60)
    lines += rest.splitlines(keepends=True)
    assert any("serving on" in line for line in lines), lines
    for line in lines:
        record = json.loads(line)  # every line is one JSON object
        assert record["logger"] != "httpx"
