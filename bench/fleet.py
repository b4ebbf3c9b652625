#!/usr/bin/env python3
"""Fleet benchmark: `reconciler once` against the floor, at 100,000 tags.

A real docker-registry on loopback holds REPOS x TAGS tags; a bare Git remote holds a
config repo of PROJECTS projects (2 images each, dev -> staging automatic, prod manual).
Each pass is the reconciler as a whole process (`python -m reconciler.cli once`).

The floor is the work no implementation can skip, done with plain tools:
  * start-up: a bare `python -c pass` (the reconciler is a Python CLI too, so
    ratios compare like with like: both sides pay one interpreter start);
  * feeds: every repository's tags/list with plain httpx at the feed's
    `limits.concurrency`, plus one manifest HEAD per selected tag (cold/change only:
    a warm pass may reuse digests it already knows);
  * git: cold = `git clone` + one `git commit` + `git push` of the very files the
    cold pass changed; warm = `git fetch` of an up-to-date clone (a pass must look at
    the remote to be correct); change = fetch + commit + push of that pass's files.
Ratios: cold = cold pass / cold floor, warm = warm pass / warm floor, change = change
pass / change floor, history = warm pass with HISTORY extra release records / warm.

Then `reconciler run` (the sidecar) on the same fleet, passes started by a Git webhook
and timed by the process's own /metrics: a release wave (a new newest tag in every
repository), its promotions, the first pass with nothing new, and steady warm passes,
each steady pass followed by the floor: one tags/list sweep of every repository with
plain httpx at the same concurrency. run_warm = steady pass / sweep, first_quiet =
first pass with nothing new after the wave / steady pass.

`--size 10x` (2,000 repositories x 500 tags = 1M tags, 1,000 projects) runs the sidecar
part alone, its first pass being the cold one, and prints per-project and per-tag costs
and the sidecar's peak RSS.

Usage: python3 bench/fleet.py [--quick | --size 10x] [--repos N --tags N --projects N]
       [--shards 2] [--run-only]
The last line printed is machine-readable; JSON goes to bench/results/fleet-<time>.json.
"""

from __future__ import annotations

import argparse
import io
import os
import pstats
import re
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import (
    REPO_ROOT,
    Fleet,
    PassSample,
    Run,
    Sidecar,
    commit_to_remote,
    fleet_tags,
    git,
    head_manifests,
    list_all_tags,
    log,
    make_fleet,
    make_remote,
    median_of,
    newest_stable,
    open_registry,
    precompile,
    push_image,
    python_startup,
    reconciler_cli,
    remote_head,
    remove_registry_storage,
    run_process,
    seed_fleet,
    table,
    timed,
    write_json_result,
)

from reconciler import records, yamlio
from reconciler.model import Release, ReleasedPackage

TARGETS = {
    "cold_ratio": 1.5,
    "warm_ratio": 1.2,
    "history_ratio": 1.2,
    "rss_mb": 150.0,
    "run_warm_ratio": 1.05,
    "first_quiet_ratio": 1.1,
}
TARGETS_10X = {"run_warm_ratio": 1.2, "rss_mb": 250.0}
WAVE_TAG = "2.0.0"  # newer than any seeded tag (1.x) and the one-change pass's 1.999.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 x 100 tags, 25 projects")
    parser.add_argument(
        "--size", choices=["1x", "10x"], default="1x", help="10x: 2000 x 500 tags, run mode only"
    )
    parser.add_argument("--run-only", action="store_true", help="only the `reconciler run` part")
    parser.add_argument("--repos", type=int, default=None, help="repositories (default 200)")
    parser.add_argument("--tags", type=int, default=None, help="tags per repository (500)")
    parser.add_argument("--projects", type=int, default=None, help="projects (repos / 2)")
    parser.add_argument("--history", type=int, default=None, help="extra release records")
    parser.add_argument("--warm-runs", type=int, default=None, help="warm pass repetitions")
    parser.add_argument("--concurrency", type=int, default=8, help="feed limits.concurrency")
    parser.add_argument("--shards", type=int, default=2, help="shard count to compare (0: off)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile a cold and a warm `once` (10x: a warm)"
    )
    parser.add_argument("--no-json", action="store_true", help="do not write bench/results")
    args = parser.parse_args(argv)
    quick = args.quick
    if args.size == "10x":
        if quick:
            parser.error("--size 10x and --quick exclude each other")
        args.repos = args.repos or 2000
        args.run_only = True
    args.repos = args.repos or (50 if quick else 200)
    args.tags = args.tags or (100 if quick else 500)
    args.projects = args.projects or max(1, args.repos // 2)
    args.history = args.history if args.history is not None else (1000 if quick else 10_000)
    args.warm_runs = args.warm_runs or (3 if quick else 5)
    return args


class Bench:
    def __init__(self, args: argparse.Namespace, scratch: Path) -> None:
        self.args = args
        self.scratch = scratch
        self.rows: list[list[str]] = [["measurement", "seconds", "in-pass", "rss MB", "note"]]
        self.figures: dict[str, Any] = {}
        self.rss: list[float] = []

    # -- helpers -----------------------------------------------------------------

    def once(self, remote_url: str, work: Path, *extra: str) -> tuple[Run, Any]:
        run = run_process(
            reconciler_cli(
                "once",
                "--repo",
                remote_url,
                "--work-dir",
                str(work),
                "--json",
                "--log-level",
                "warning",
                *extra,
            )
        )
        if run.returncode != 0:
            raise RuntimeError(
                f"reconciler once failed ({run.returncode}):\n"
                f"{run.stderr[-3000:]}\n{run.stdout[-2000:]}"
            )
        self.rss.append(run.maxrss_mb)
        return run, run.json()

    def row(
        self,
        name: str,
        seconds: float,
        result: Any = None,
        rss: float | None = None,
        note: str = "",
    ) -> None:
        in_pass = f"{result['durationSeconds']:.3f}" if result else ""
        self.rows.append(
            [name, f"{seconds:.3f}", in_pass, f"{rss:.0f}" if rss is not None else "", note]
        )

    # -- the benchmark -------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        registry = open_registry(self.scratch / "registry", self.args.repos * self.args.tags)
        try:
            return self._run(registry)
        finally:
            registry.stop()
            remove_registry_storage(registry)

    def _run(self, registry: Any) -> dict[str, Any]:
        args = self.args
        repos = {f"fleet/r{i:03d}": fleet_tags(i, args.tags) for i in range(args.repos)}
        started = time.perf_counter()
        seed_fleet(registry, repos)
        total_tags = sum(len(t) for t in repos.values())
        log(
            f"seeded {total_tags} tags in {len(repos)} repositories "
            f"({time.perf_counter() - started:.1f} s)"
        )
        fleet = make_fleet(registry.url, list(repos), args.projects, concurrency=args.concurrency)
        remote = self.scratch / "remote.git"
        url = make_remote(remote, fleet.files(), self.scratch)
        pristine = self.scratch / "pristine.git"
        shutil.copytree(remote, pristine)
        work = self.scratch / "work"
        self.figures.update(
            repositories=len(repos),
            tags=total_tags,
            projects=args.projects,
            concurrency=args.concurrency,
        )
        if args.run_only:
            run_figures = self._run_mode(registry, url, work, fleet, repos)
            self.figures.update(run=run_figures)
            if args.profile:  # a warm pass of the sidecar's work dir, as a whole process
                self.figures["profiles"] = {"warm": self._profile_once("warm", url, work)}
            return {
                "run_warm_ratio": run_figures["run_warm_ratio"],
                "first_quiet_ratio": run_figures["first_quiet_ratio"],
                "rss_mb": run_figures["peak_rss_mb"],
            }

        startup = python_startup()
        self.row("python -c pass (start-up)", startup)

        # ---- cold pass: everything new, one commit
        head = remote_head(remote)
        cold, cold_json = self.once(url, work)
        assert len(cold_json["releases"]) == args.projects, cold_json["releases"][:3]
        assert cold_json["pushed"] and remote_head(remote) != head
        self.row(
            "cold pass",
            cold.seconds,
            cold_json,
            cold.maxrss_mb,
            f"{len(cold_json['releases'])} releases, "
            f"{len(cold_json['filesChanged'])} files, 1 commit",
        )
        self._check_selection(fleet, repos, cold_json)

        # ---- the floor for it
        tags_s, _ = timed(lambda: list_all_tags(registry.url, list(repos), args.concurrency), 3)
        refs = sorted(
            {
                (fleet.repository_of(r["project"], name), p["version"])
                for r in cold_json["releases"]
                for name, p in r["packages"].items()
            }
        )
        heads_s, _ = timed(lambda: head_manifests(registry.url, refs, args.concurrency), 3)
        floor_git = self.scratch / "floor.git"
        shutil.copytree(pristine, floor_git)
        floor_clone = self.scratch / "floor-clone"
        changed = {
            path: git("--git-dir", str(remote), "show", f"main:{path}")
            for path in cold_json["filesChanged"]
        }
        git_cold_s = _git_floor(floor_git, floor_clone, changed, clone_it=True)
        floor_cold = startup + tags_s + heads_s + git_cold_s
        self.row("floor: tags/list of all repositories", tags_s, note=f"{len(repos)} GETs")
        self.row("floor: manifest HEADs", heads_s, note=f"{len(refs)} HEADs")
        self.row("floor: git clone + commit + push", git_cold_s, note=f"{len(changed)} files")
        self.row("floor: cold total", floor_cold, note="start-up + tags + HEADs + git")

        # ---- sharded replicas do the same cold pass (before the registry changes)
        shard_figures = self._shards(pristine, cold, cold_json) if self.args.shards > 1 else {}

        # ---- settle: the staging promotions of the cold releases
        settle, settle_json = self.once(url, work)
        self.row(
            "settle pass (staging)",
            settle.seconds,
            settle_json,
            settle.maxrss_mb,
            f"{len(settle_json['promotions'])} promotions",
        )

        # ---- warm passes: nothing new, nothing pushed
        warm_s, warm_json = self._warm(url, work, remote, "warm pass")
        fetch_s, _ = timed(lambda: git("fetch", "--quiet", "origin", cwd=floor_clone), 3)
        floor_warm = startup + tags_s + fetch_s
        self.row("floor: git fetch (up to date)", fetch_s)
        self.row("floor: warm total", floor_warm, note="start-up + tags + fetch")

        # ---- one change: one new tag -> one release
        target = next(iter(repos))
        registry.push(target, "1.999.0")
        change, change_json = self.once(url, work)
        users = sum(1 for apps in fleet.projects.values() for a in apps if a.repository == target)
        assert len(change_json["releases"]) == users, change_json["releases"]
        changed = {
            path: git("--git-dir", str(remote), "show", f"main:{path}")
            for path in change_json["filesChanged"]
        }
        head_s, _ = timed(lambda: head_manifests(registry.url, [(target, "1.999.0")], 1), 3)
        git_change_s = _git_floor(floor_git, floor_clone, changed, clone_it=False)
        floor_change = startup + tags_s + head_s + git_change_s
        self.row(
            "one-change pass",
            change.seconds,
            change_json,
            change.maxrss_mb,
            f"{len(change_json['releases'])} release(s)",
        )
        self.row(
            "floor: one-change total",
            floor_change,
            note="start-up + tags + 1 HEAD + fetch/commit/push",
        )
        self.once(url, work)  # settle its staging promotion

        # ---- history: many release records must not slow a pass down
        history_s = float("nan")
        if self.args.history:
            self._add_history(remote, fleet)
            first, first_json = self.once(url, work)
            self.row(
                "first pass after history commit",
                first.seconds,
                first_json,
                first.maxrss_mb,
                f"syncs {self.args.history} new files",
            )
            history_s, _ = self._warm(url, work, remote, "warm pass with history")

        cli_figures = self._cli_costs()
        if args.profile:
            self.figures["profiles"] = self._profiles(pristine, url, work)
        run_figures = self._run_mode(registry, url, work, fleet, repos)

        ratios = {
            "cold_ratio": cold.seconds / floor_cold,
            "warm_ratio": warm_s / floor_warm,
            "change_ratio": change.seconds / floor_change,
            "history_ratio": history_s / warm_s,
            "rss_mb": max(*self.rss, run_figures["peak_rss_mb"]),
            "run_warm_ratio": run_figures["run_warm_ratio"],
            "first_quiet_ratio": run_figures["first_quiet_ratio"],
        }
        per_project_warm = (warm_json["durationSeconds"]) / args.projects
        self.figures.update(
            startup=startup,
            cold=cold.seconds,
            cold_in_pass=cold_json["durationSeconds"],
            floor_cold=floor_cold,
            floor_tags=tags_s,
            floor_heads=heads_s,
            floor_git_cold=git_cold_s,
            floor_fetch=fetch_s,
            floor_warm=floor_warm,
            settle=settle.seconds,
            warm=warm_s,
            warm_in_pass=warm_json["durationSeconds"],
            change=change.seconds,
            floor_change=floor_change,
            history=history_s,
            history_records=self.args.history,
            warm_in_pass_per_project_ms=per_project_warm * 1000,
            warm_in_pass_per_tag_us=warm_json["durationSeconds"] / total_tags * 1e6,
            cold_in_pass_per_project_ms=cold_json["durationSeconds"] / args.projects * 1000,
            shards=shard_figures,
            cli=cli_figures,
            run=run_figures,
            ratios=ratios,
            targets=TARGETS,
        )
        return ratios

    def _profiles(self, pristine: Path, url: str, work: Path) -> dict[str, str]:
        """cProfile's top cumulative entries of a cold `once` (a fresh copy of the seed
        remote, a new work dir) and a warm one (the benchmark's work dir)."""
        remote = self.scratch / "profile.git"
        shutil.copytree(pristine, remote)
        return {
            "cold": self._profile_once("cold", remote.resolve().as_uri(), self.scratch / "pw"),
            "warm": self._profile_once("warm", url, work),
        }

    def _profile_once(self, name: str, repo: str, work_dir: Path) -> str:
        out = self.scratch / f"{name}.prof"
        once = ["once", "--repo", repo, "--work-dir", str(work_dir), "--json"]
        profiler = [sys.executable, "-m", "cProfile", "-o", str(out)]
        run = run_process([*profiler, *reconciler_cli(*once)[1:], "--log-level", "warning"])
        if run.returncode != 0:
            raise RuntimeError(f"profiled {name} pass failed:\n{run.stderr[-3000:]}")
        text = io.StringIO()
        pstats.Stats(str(out), stream=text).sort_stats("cumulative").print_stats(30)
        print(f"--- cProfile, {name} `once` ({run.seconds:.2f} s under the profiler)")
        print(text.getvalue().split("\n\n", 1)[-1].strip())
        return text.getvalue()

    def _run_mode(
        self,
        registry: Any,
        url: str,
        work: Path,
        fleet: Fleet,
        repos: dict[str, list[str]],
    ) -> dict[str, Any]:
        """`reconciler run` on the fleet; every figure from inside the long-running process."""
        args = self.args
        total_tags = sum(len(t) for t in repos.values()) + len(repos)  # + the wave's tag
        sidecar = Sidecar(url, work, self.scratch / "sidecar.log")
        try:
            first = sidecar.wait_pass()  # the start-up pass (cold when ``work`` is new)
            cold = first.releases == len(fleet.projects)
            self.row(
                "run: first pass" + (" (cold)" if cold else ""),
                first.seconds,
                note=f"{first.releases} releases, {first.promotions} promotions",
            )
            settle = [first]
            while settle[-1].releases or settle[-1].promotions:
                if len(settle) > 4:
                    raise RuntimeError(f"the sidecar never settled: {settle}")
                settle.append(self._quiet_check(sidecar.run_pass(), expect_quiet=False))
            # A new image (not another name for the current one: same digest, no release).
            started = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda repo: push_image(registry, repo, WAVE_TAG), repos))
            log(
                f"wave: pushed {WAVE_TAG} to {len(repos)} repositories "
                f"({time.perf_counter() - started:.1f} s)"
            )
            wave = self._quiet_check(sidecar.run_pass(), expect_quiet=False)
            assert wave.releases == len(fleet.projects), wave
            self.row(
                "run: release wave",
                wave.seconds,
                note=f"a new tag in all {len(repos)} repositories: {wave.releases} releases",
            )
            promoted = self._quiet_check(sidecar.run_pass(), expect_quiet=False)
            self.row("run: its promotions", promoted.seconds, note=f"{promoted.promotions}")
            first_quiet = self._quiet_check(sidecar.run_pass())
            steady, sweeps = [], []
            names = list(repos)
            for _ in range(args.warm_runs):
                steady.append(self._quiet_check(sidecar.run_pass()).seconds)
                sweeps.append(
                    timed(lambda: list_all_tags(registry.url, names, args.concurrency))[0]
                )
            peak_rss = sidecar.peak_rss_mb()
        finally:
            sidecar.stop()
        steady_s, sweep_s = median_of(steady), median_of(sweeps)
        self.row(
            "run: first pass with nothing new",
            first_quiet.seconds,
            note=f"{first_quiet.seconds / steady_s:.2f}x of steady",
        )
        self.row(
            "run: steady warm pass",
            steady_s,
            rss=peak_rss,
            note=f"median of {len(steady)}: " + " ".join(f"{x:.2f}" for x in steady),
        )
        self.row(
            "floor: tags/list sweep (between passes)",
            sweep_s,
            note=f"median of {len(sweeps)}: " + " ".join(f"{x:.2f}" for x in sweeps),
        )
        figures: dict[str, Any] = {
            "first_pass": first.seconds,
            "first_pass_cold": cold,
            "wave": wave.seconds,
            "wave_promotions": promoted.seconds,
            "first_quiet": first_quiet.seconds,
            "steady": steady,
            "sweeps": sweeps,
            "steady_median": steady_s,
            "sweep_median": sweep_s,
            "run_warm_ratio": steady_s / sweep_s,
            "first_quiet_ratio": first_quiet.seconds / steady_s,
            "peak_rss_mb": peak_rss,
            "per_project_ms": {
                "wave": wave.seconds / len(fleet.projects) * 1000,
                "steady": steady_s / len(fleet.projects) * 1000,
            },
            "per_tag_us": {
                "wave": wave.seconds / total_tags * 1e6,
                "steady": steady_s / total_tags * 1e6,
                "sweep": sweep_s / total_tags * 1e6,
            },
        }
        if cold:
            figures["per_project_ms"]["cold"] = first.seconds / len(fleet.projects) * 1000
            figures["per_tag_us"]["cold"] = first.seconds / total_tags * 1e6
        log(
            "run: per project "
            + ", ".join(f"{k} {v:.2f} ms" for k, v in figures["per_project_ms"].items())
            + "; per tag "
            + ", ".join(f"{k} {v:.2f} us" for k, v in figures["per_tag_us"].items())
        )
        return figures

    @staticmethod
    def _quiet_check(sample: PassSample, *, expect_quiet: bool = True) -> PassSample:
        """A pass must succeed; a quiet one must have released and promoted nothing."""
        if sample.outcome != "ok":
            raise RuntimeError(f"sidecar pass {sample.outcome}: {sample}")
        if expect_quiet and (sample.releases or sample.promotions):
            raise RuntimeError(f"a pass with nothing new changed something: {sample}")
        return sample

    def _check_selection(self, fleet: Fleet, repos: dict[str, list[str]], result: Any) -> None:
        """Every release holds the newest stable tag of each of its repositories."""
        for release in result["releases"]:
            for name, package in release["packages"].items():
                repo = fleet.repository_of(release["project"], name)
                expected = newest_stable(repos[repo])
                assert package["version"] == expected, (release["project"], name, package)

    def _warm(self, url: str, work: Path, remote: Path, name: str) -> tuple[float, Any]:
        samples = []
        result: Any = None
        for _ in range(self.args.warm_runs):
            head = remote_head(remote)
            run, result = self.once(url, work)
            assert result["commit"] is None and not result["releases"], result
            assert remote_head(remote) == head, "a warm pass pushed something"
            samples.append(run.seconds)
        seconds = median_of(samples)
        self.row(
            name,
            seconds,
            result,
            max(self.rss[-len(samples) :]),
            f"median of {len(samples)}: " + " ".join(f"{s:.2f}" for s in samples),
        )
        return seconds, result

    def _add_history(self, remote: Path, fleet: Fleet) -> None:
        """HISTORY old release records (0.0.N, older than any real one) in one commit."""
        per_project = max(1, self.args.history // len(fleet.projects))
        created = datetime(2020, 1, 1, tzinfo=UTC)
        files = {}
        for project, apps in fleet.projects.items():
            for n in range(per_project):
                version = f"0.0.{n}"
                release = Release(
                    project,
                    version,
                    "stable",
                    f"{project}-images",
                    created,
                    tuple(
                        ReleasedPackage(a.package, "image", a.manifest_name, "0.9.0") for a in apps
                    ),
                )
                files[records.release_path(project, version)] = records.release_to_text(release)
        started = time.perf_counter()
        commit_to_remote(remote, files, "import release history", self.scratch)
        log(
            f"history: {len(files)} release records committed "
            f"({time.perf_counter() - started:.1f} s)"
        )

    def _shards(self, pristine: Path, cold: Run, cold_json: Any) -> dict[str, Any]:
        """N concurrent `once --shard i/N` replicas on a fresh copy of the seed remote."""
        count = self.args.shards
        remote = self.scratch / "shards.git"
        shutil.copytree(pristine, remote)
        shard_url = remote.resolve().as_uri()
        runs: list[Run | None] = [None] * count

        def replica(i: int) -> None:
            runs[i] = run_process(
                reconciler_cli(
                    "once",
                    "--repo",
                    shard_url,
                    "--work-dir",
                    str(self.scratch / f"shard{i}"),
                    "--json",
                    "--log-level",
                    "warning",
                    "--shard",
                    f"{i}/{count}",
                )
            )

        started = time.perf_counter()
        threads = [threading.Thread(target=replica, args=(i,)) for i in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        for i, run in enumerate(runs):
            assert run is not None
            if run.returncode != 0:
                raise RuntimeError(f"shard {i} failed:\n{run.stderr[-3000:]}")
            self.rss.append(run.maxrss_mb)
        attempts = [r.json()["pushAttempts"] for r in runs if r]
        sharded = _remote_releases(remote)
        single = {
            (r["project"], r["version"]): {n: p["version"] for n, p in r["packages"].items()}
            for r in cold_json["releases"]
        }
        equal = sharded == single
        speedup = cold.seconds / wall
        self.row(
            f"{count} shards, concurrent (cold)",
            wall,
            note=(
                f"speed-up {speedup:.2f}x, push attempts {attempts}, "
                f"releases {'EQUAL' if equal else 'DIFFER'}"
            ),
        )
        assert equal, (
            f"sharded releases differ from the single replica's: {len(sharded)} vs {len(single)}"
        )
        return {
            "count": count,
            "wall": wall,
            "speedup": speedup,
            "equal": equal,
            "push_attempts": attempts,
        }

    def _cli_costs(self) -> dict[str, Any]:
        """Start-up costs users feel: import time, --help, validate."""
        imp = run_process([sys.executable, "-X", "importtime", "-c", "import reconciler.cli"])
        cumulative = 0
        for line in imp.stderr.splitlines():
            match = re.match(r"import time:\s+\d+\s+\|\s+(\d+)\s+\|\s*(\S+)$", line)
            if match and match.group(2) == "reconciler.cli":
                cumulative = int(match.group(1))
        help_s = median_of([run_process(reconciler_cli("--help")).seconds for _ in range(5)])
        validate = [
            run_process(reconciler_cli("validate", str(REPO_ROOT / "reconciler" / "sample")))
            for _ in range(5)
        ]
        assert all(v.returncode == 0 for v in validate), validate[0].stderr
        validate_s = median_of([v.seconds for v in validate])
        self.row("import reconciler.cli (importtime)", cumulative / 1e6)
        self.row("reconciler --help", help_s)
        self.row("reconciler validate reconciler/sample", validate_s)
        return {"import_cli_s": cumulative / 1e6, "help_s": help_s, "validate_s": validate_s}


def _git_floor(bare: Path, clone: Path, files: dict[str, str], *, clone_it: bool) -> float:
    """clone (cold only) + write the files + add + commit + push, with the git CLI."""
    started = time.perf_counter()
    if clone_it:
        git("clone", "--quiet", str(bare), str(clone))
    else:
        git("fetch", "--quiet", "origin", cwd=clone)
    for rel, text in files.items():
        path = clone / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git("add", "--", *files, cwd=clone)
    git("commit", "--quiet", "-m", "floor", cwd=clone)
    git("push", "--quiet", "origin", "HEAD:main", cwd=clone)
    return time.perf_counter() - started


def _remote_releases(remote: Path) -> dict[tuple[str, str], dict[str, str]]:
    """(project, version) -> {package: version} of every release record on main."""
    listing = git("--git-dir", str(remote), "ls-tree", "-r", "--name-only", "main", "releases/")
    found = {}
    for path in listing.split():
        data = yamlio.load_one(git("--git-dir", str(remote), "show", f"main:{path}"))
        release = records.release_from_data(data)
        found[(release.project, release.version)] = {p.name: p.version for p in release.packages}
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    precompile()
    scratch = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    bench = Bench(args, scratch)
    try:
        ratios = bench.run()
    finally:
        if args.keep:
            log(f"scratch kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print(table(bench.rows))
    targets = TARGETS_10X if args.size == "10x" else TARGETS
    misses = [k for k, limit in targets.items() if k in ratios and ratios[k] > limit]
    verdict = f"; MISSED: {', '.join(misses)}" if misses else "; all met"
    if args.quick:  # ratios at smoke-test size are noise: judged at full size only
        verdict = " (judged at full size only; this was a --quick smoke run)"
    print("targets: " + ", ".join(f"{k} <= {v}" for k, v in targets.items()) + verdict)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not args.no_json:
        load = os.getloadavg()
        path = write_json_result(
            "fleet", {"args": vars(args), "load_average": load, **bench.figures}
        )
        print(f"results: {path.relative_to(REPO_ROOT)}")
    print(" ".join(f"{k}={v:.2f}" if k != "rss_mb" else f"{k}={v:.0f}" for k, v in ratios.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
