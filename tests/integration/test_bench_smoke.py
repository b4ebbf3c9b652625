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


def test_fleet_benchmark_runs_on_a_tiny_fleet() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "fleet.py"),
            "--repos",
            "6",
            "--tags",
            "30",
            "--projects",
            "3",
            "--history",
            "30",
            "--warm-runs",
            "1",
            "--shards",
            "2",
            "--no-json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert LAST_LINE.match(lines[-1]), lines[-1]
    assert "releases EQUAL" in proc.stdout
    assert "3 releases" in proc.stdout and "1 release(s)" in proc.stdout
    assert "a new tag in all 6 repositories: 3 releases" in proc.stdout
    assert "run: steady warm pass" in proc.stdout


def test_push_contention_benchmark_runs_on_a_tiny_fleet() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "push_contention.py"),
            "--repos",
            "4",
            "--tags",
            "10",
            "--rounds",
            "1",
            "--shards",
            "2",
            "--no-json",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert re.match(r"^shards=2 retries_per_pass=\d+\.\d\d max_retries=\d+ ", last), last
