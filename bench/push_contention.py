#!/usr/bin/env python3
"""Push contention: N sharded sidecars (`reconciler run --shard i/N`) pushing to one branch.

A real docker-registry holds REPOS x TAGS tags; a bare Git remote served over smart HTTP
(as a Git host serves it; a file:// remote would let each sidecar watch the others'
pushes and start extra passes) holds the fleet's config repo (PROJECTS projects, 2 images
each, dev -> staging automatic). N sidecars, each with its own work dir, own the projects
of their shard and push to the same `main`.

Each round, new images arrive in a random FRACTION of the repositories, then every
sidecar is started on the same instant (a Git webhook to each, as a push notification
fanned out to all replicas does): the worst case, since with the interval's jitter
passes rarely coincide. Every pass's push retries come from the sidecar itself:
`reconciler_git_push_retries_total` (/metrics) and its log lines, which tell a rebase
over unrelated commits from a re-plan after the remote moved under the pass's files.

At the end the remote must hold exactly the releases the shards reported, none twice,
and every project's newest release must carry the newest tag of each of its images.

The floor for a round's wall time is one replica doing the same work alone
(`--shards 1` runs only that).

Usage: python3 bench/push_contention.py [--shards 4] [--rounds 6] [--repos 200 --tags 100]
The last line printed is machine-readable; JSON goes to bench/results/.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import (
    PassSample,
    Sidecar,
    fleet_tags,
    git,
    log,
    make_fleet,
    median_of,
    newest_stable,
    open_registry,
    precompile,
    push_image,
    remove_registry_storage,
    seed_fleet,
    table,
    write_json_result,
)

from reconciler import records, yamlio
from tests.helpers.gitserver import GitHttpServer


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=6, help="rounds of new tags")
    parser.add_argument("--repos", type=int, default=200)
    parser.add_argument("--tags", type=int, default=100)
    parser.add_argument("--projects", type=int, default=None, help="projects (repos / 2)")
    parser.add_argument(
        "--fraction", type=float, default=0.2, help="share of repositories with a new tag"
    )
    parser.add_argument("--no-json", action="store_true")
    args = parser.parse_args(argv)
    args.projects = args.projects or max(1, args.repos // 2)
    return args


def remote_releases(remote: Path) -> list[tuple[str, str, dict[str, str]]]:
    """(project, version, {package: version}) of every release record on main."""
    listing = git("--git-dir", str(remote), "ls-tree", "-r", "--name-only", "main", "releases/")
    found = []
    for path in listing.split():
        data = yamlio.load_one(git("--git-dir", str(remote), "show", f"main:{path}"))
        release = records.release_from_data(data)
        found.append(
            (release.project, release.version, {p.name: p.version for p in release.packages})
        )
    return found


class Contention:
    """``shards`` sidecars on a fleet of their own (own repositories, own remote)."""

    def __init__(
        self, args: argparse.Namespace, scratch: Path, shards: int, git_server: GitHttpServer
    ) -> None:
        self.args = args
        self.scratch = scratch
        self.shards = shards
        self.git_server = git_server

    def run(self, registry: Any) -> list[dict[str, Any]]:
        """Cold start, the rounds, a settling pass; returns every round's passes."""
        args = self.args
        label = f"s{self.shards}"
        repos = {f"{label}/r{i:03d}": fleet_tags(i, args.tags) for i in range(args.repos)}
        seed_fleet(registry, repos)
        self.fleet = make_fleet(registry.url, list(repos), args.projects)
        bare = self.git_server.create_repo(label, seed=self.fleet.files())
        remote = bare.path
        credentials = {
            "RECONCILER_GIT_USERNAME": self.git_server.username,
            "RECONCILER_GIT_PASSWORD": self.git_server.password,
        }
        extra = (lambda i: ["--shard", f"{i}/{self.shards}"]) if self.shards > 1 else lambda i: []
        sidecars = []
        for i in range(self.shards):
            work, log_path = self.scratch / f"{label}-work{i}", self.scratch / f"{label}-{i}.log"
            sidecars.append(Sidecar(bare.url, work, log_path, *extra(i), env=credentials))
        rng = random.Random(22)
        tags = {repo: list(t) for repo, t in repos.items()}  # this run's view of the registry
        rounds: list[dict[str, Any]] = []
        try:
            # The start-up passes: every shard's cold releases, pushed at about the same time.
            rounds.append(self._round(sidecars, "cold", started=None))
            for n in range(args.rounds):
                chosen = rng.sample(sorted(repos), max(1, int(len(repos) * args.fraction)))
                tag = f"2.{n}.0"
                with ThreadPoolExecutor(8) as pool:
                    list(
                        pool.map(push_image, [registry] * len(chosen), chosen, [tag] * len(chosen))
                    )
                for repo in chosen:
                    tags[repo].append(tag)
                rounds.append(self._round(sidecars, f"round {n + 1}", started=time.perf_counter()))
            # settle: the last round's staging promotions
            rounds.append(self._round(sidecars, "settle", started=time.perf_counter()))
        finally:
            for sidecar in sidecars:
                sidecar.stop()
        self._check(remote, tags, rounds)
        return rounds

    def _round(self, sidecars: list[Sidecar], name: str, started: float | None) -> dict[str, Any]:
        """Start a pass in every sidecar at once (or take the start-up passes); wait for all."""
        samples: list[PassSample | None] = [None] * len(sidecars)
        wall_start = time.perf_counter()

        def one(i: int) -> None:
            if started is not None:
                sidecars[i].trigger()
            samples[i] = sidecars[i].wait_pass()

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(sidecars))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - wall_start
        done = [s for s in samples if s is not None]
        if len(done) != len(sidecars):
            raise RuntimeError(f"{name}: a sidecar did not report its pass")
        return {
            "name": name,
            "wall": wall,
            "passes": [s.__dict__ for s in done],
        }

    def _check(
        self, remote: Path, tags: dict[str, list[str]], rounds: list[dict[str, Any]]
    ) -> None:
        """Exactly the reported releases are on the remote, none twice, each one newest."""
        found = remote_releases(remote)
        reported = sum(p["releases"] for r in rounds for p in r["passes"])
        keys = [(project, version) for project, version, _ in found]
        assert len(keys) == len(set(keys)), "a release was written twice"
        assert len(found) == reported, f"{len(found)} release records, {reported} reported"
        fleet = self.fleet
        newest: dict[str, tuple[str, dict[str, str]]] = {}
        for project, version, packages in found:
            key = tuple(int(x) for x in version.split("."))
            if project not in newest or key > tuple(int(x) for x in newest[project][0].split(".")):
                newest[project] = (version, packages)
        for project in fleet.projects:
            assert project in newest, f"{project} has no release"
            for package, version in newest[project][1].items():
                expected = newest_stable(tags[fleet.repository_of(project, package)])
                assert version == expected, (project, package, version, expected)


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    passes = [p for r in rounds for p in r["passes"]]
    pushing = [p for p in passes if p["releases"] or p["promotions"]]
    retries = [p["push_retries"] for p in pushing]
    return {
        "passes": len(passes),
        "pushing_passes": len(pushing),
        "retries_per_pushing_pass": sum(retries) / len(pushing) if pushing else 0.0,
        "max_retries": max(retries, default=0),
        "passes_with_retries": sum(1 for r in retries if r),
        "rebases": sum(p["rebases"] for p in passes),
        "replans": sum(p["replans"] for p in passes),
        "failed_passes": sum(1 for p in passes if p["outcome"] != "ok"),
        "round_wall_median": median_of([r["wall"] for r in rounds[1:-1]]),
        "pass_median": median_of([p["seconds"] for r in rounds[1:-1] for p in r["passes"]]),
        "cold_wall": rounds[0]["wall"],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    precompile()
    scratch = Path(tempfile.mkdtemp(prefix="push-contention-"))
    registry = open_registry(scratch / "registry", 2 * args.repos * args.tags)
    (scratch / "git").mkdir()
    git_server = GitHttpServer(scratch / "git")
    results: dict[int, dict[str, Any]] = {}
    raw: dict[int, list[dict[str, Any]]] = {}
    try:
        for count in sorted({1, args.shards}):
            log(f"{count} replica(s): {args.rounds} rounds")
            raw[count] = Contention(args, scratch, count, git_server).run(registry)
            results[count] = summarise(raw[count])
    finally:
        git_server.close()
        registry.stop()
        remove_registry_storage(registry)
        shutil.rmtree(scratch, ignore_errors=True)

    rows = [["figure", *(f"{n} replica(s)" for n in results)]]
    for key in results[min(results)]:
        values = [results[n][key] for n in results]
        rows.append([key, *(f"{v:.2f}" if isinstance(v, float) else str(v) for v in values)])
    print(table(rows))
    many = results[max(results)]
    one = results[min(results)]
    slowdown = many["round_wall_median"] / one["round_wall_median"]
    print(
        f"a round with {max(results)} shards takes {slowdown:.2f}x one replica's; "
        f"{many['retries_per_pushing_pass']:.2f} push retries per pushing pass "
        f"({many['rebases']} rebases, {many['replans']} re-plans), "
        f"{many['failed_passes']} failed passes"
    )
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not args.no_json:
        write_json_result("push-contention", {"args": vars(args), "summary": results, "raw": raw})
    print(
        f"shards={max(results)} retries_per_pass={many['retries_per_pushing_pass']:.2f} "
        f"max_retries={many['max_retries']:.0f} replans={many['replans']} "
        f"failed={many['failed_passes']} round_vs_one_replica={slowdown:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
