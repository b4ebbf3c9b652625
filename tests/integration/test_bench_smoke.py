"""The fleet benchmark runs end to end on a tiny fleet (no timing assertions).

It checks what the benchmark itself asserts along the way: the cold pass releases
every project with the newest stable tags, warm passes push nothing (also with
release history), one new tag makes exactly one release, two shards produce the
single replica's releases, and the sidecar (`reconciler run`) releases a wave of new
tags once and then passes with nothing new. The last line must stay machine-readable.
The push-contention benchmark must find every release on the remote exactly once.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAST_LINE = re.compile(
    r"^cold_ratio=\d+\.\d\d warm_ratio=\d+\.\d\d change_ratio=\d+\.\d\d "
    r"history_ratio=\d+\.\d\d rss_mb=\d+ run_warm_ratio=\d+\.\d\d first_quiet_ratio=\d+\.\d\d$"
)


def run_bench(script: str, *args: str) -> str:
    """Run bench/``script`` with ``args``; its stdout (it must exit 0)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args, "--no-json"],
        capture_output=True,
        text=True,
        timeout=300,  # a hang, not a speed check: CI machines are shared and slow
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    return proc.stdout


def test_fleet_benchmark_runs_on_a_tiny_fleet() -> None:
    out = run_bench(
        "fleet.py",
        *("--repos", "6", "--tags", "30", "--projects", "3", "--history", "30"),
        *("--warm-runs", "1", "--shards", "2"),
    )
    last = out.strip().splitlines()[-1]
    assert LAST_LINE.match(last), last
    assert "releases EQUAL" in out
    assert "3 releases" in out and "1 release(s)" in out
    assert "a new tag in all 6 repositories: 3 releases" in out
    assert "run: steady warm pass" in out


def test_push_contention_benchmark_runs_on_a_tiny_fleet() -> None:
    out = run_bench(
        "push_contention.py",
        *("--repos", "4", "--tags", "10", "--rounds", "1", "--shards", "2"),
    )
    last = out.strip().splitlines()[-1]
    assert re.match(r"^shards=2 retries_per_pass=\d+\.\d\d max_retries=\d+ ", last), last
