#!/usr/bin/env python3
"""The first "nothing new" pass after a release against a steady warm pass (issue 22,
item 1), in-process (no interpreter start), on a small fleet: a real docker-registry,
a bare Git remote, PROJECTS projects x 2 images over REPOS repositories of TAGS tags,
dev -> staging automatic. Every repository gets a new tag, one pass releases all of
them, the next promotes them to staging, then come the first pass with nothing new to
do and three steady passes. Printed per pass: time,
selections computed and overlay files parsed (counted, the reason for the ratio), and
a cProfile of that first quiet pass. The floor is the steady pass itself
(median of the steady passes, same run). Also measures the releasing pass per overlay.

Usage: python3 bench/pass_after_release.py [--projects 40 --repos 40 --tags 300]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    fleet_tags,
    make_fleet,
    make_remote,
    open_registry,
    remove_registry_storage,
    seed_fleet,
)

from reconciler import rendering
from reconciler.reconcile import PassOptions, PassSettings, Reconciler, selectioncache

COUNTS = {"selections": 0, "overlays": 0}


def _count() -> None:
    real_select, real_read = selectioncache.select, rendering.current_versions

    def select(*args: Any, **kwargs: Any) -> Any:
        COUNTS["selections"] += 1
        return real_select(*args, **kwargs)

    def read(*args: Any, **kwargs: Any) -> Any:
        COUNTS["overlays"] += 1
        return real_read(*args, **kwargs)

    selectioncache.select = select  # type: ignore[assignment]
    rendering.current_versions = read  # type: ignore[assignment]


def run_pass(url: str, work: Path, profile: cProfile.Profile | None = None) -> dict[str, Any]:
    """One ``once``-style pass (a new Reconciler on the same work dir)."""
    COUNTS.update(selections=0, overlays=0)
    reconciler = Reconciler(PassOptions(PassSettings(repo_url=url, work_dir=work)))
    started = time.perf_counter()
    try:
        if profile is not None:
            profile.enable()
        result = reconciler.run_pass()
        if profile is not None:
            profile.disable()
    finally:
        reconciler.close()
    assert result.ok, result
    return {
        "s": time.perf_counter() - started,
        "releases": len(result.releases),
        "promotions": len(result.promotions),
        **COUNTS,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--projects", type=int, default=40)
    parser.add_argument("--repos", type=int, default=40)
    parser.add_argument("--tags", type=int, default=300)
    parser.add_argument("--dump", action="store_true")
    args = parser.parse_args()
    _count()
    scratch = Path(tempfile.mkdtemp(prefix="bench-after-release-"))
    registry = open_registry(scratch / "registry", args.repos * args.tags)
    try:
        repos = {f"fleet/r{i:03d}": fleet_tags(i, args.tags) for i in range(args.repos)}
        seed_fleet(registry, repos)
        fleet = make_fleet(registry.url, list(repos), args.projects)
        url = make_remote(scratch / "remote.git", fleet.files(), scratch)
        work = scratch / "work"
        rows = [("cold", run_pass(url, work))]
        rows += [("settle", run_pass(url, work)) for _ in range(2)]  # dev -> staging
        rows.append(("steady", run_pass(url, work)))
        for repo in repos:
            registry.push(repo, "1.999.0")
        rows.append(("releasing", run_pass(url, work)))
        while True:  # dev -> staging is automatic: that pass promotes, then all is quiet
            profile = cProfile.Profile()
            row = run_pass(url, work, profile)
            if row["promotions"] == 0:
                rows.append(("first after release", row))
                break
            rows.append(("promoting", row))
        rows += [("steady", run_pass(url, work)) for _ in range(2)]
        steady_profile = cProfile.Profile()
        rows.append(("steady", run_pass(url, work, steady_profile)))
    finally:
        registry.stop()
        remove_registry_storage(registry)
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{'pass':22} {'time s':>8} {'releases':>9} {'promotions':>11} "
          f"{'selections':>11} {'overlays parsed':>16}")  # fmt: skip
    for name, row in rows:
        print(f"{name:22} {row['s']:8.3f} {row['releases']:9d} {row['promotions']:11d} "
              f"{row['selections']:11d} {row['overlays']:16d}")  # fmt: skip
    steady = statistics.median(row["s"] for name, row in rows[-3:])
    after = dict(rows)["first after release"]["s"]
    releasing = dict(rows)["releasing"]
    if len(sys.argv) > 1 and sys.argv[-1] == "--dump":
        profile.dump_stats("/tmp/first.prof")
        steady_profile.dump_stats("/tmp/steady.prof")
    for title, measured in (("the first quiet pass", profile), ("a steady pass", steady_profile)):
        out = io.StringIO()
        pstats.Stats(measured, stream=out).sort_stats("tottime").print_stats(12)
        print(f"\ncProfile of {title} (own time):")
        print("\n".join([line for line in out.getvalue().splitlines() if line.strip()][3:20]))
    per_overlay = releasing["s"] / max(1, releasing["promotions"]) * 1000
    print(f"RESULT after_release_over_steady={after / steady:.2f} steady_s={steady:.3f} "
          f"releasing_ms_per_promoted_overlay={per_overlay:.1f}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
