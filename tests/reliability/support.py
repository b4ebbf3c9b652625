"""Shared pieces of the reliability suite: measured CLI runs and repository invariants.

``run_measured`` runs ``reconciler`` as its own process group (so a SIGKILL takes its
git children too, like a pod dying) and samples its peak RSS (``VmHWM``) from /proc
while it runs. (``wait4``'s ``ru_maxrss`` would include the RSS of the forked pytest
worker it was exec'd from, which hides what the reconciler itself used.)
``remote_violations`` checks the invariants every reliability test relies on,
reading the bare remote only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler import yamlio
from tests.helpers.configrepo import AppSpec
from tests.helpers.gitserver import BareRemote, run_git

SOAK = os.environ.get("RECONCILER_SOAK") == "1"


def scaled(ci: int, soak: int) -> int:
    """``ci`` normally; ``soak`` when RECONCILER_SOAK=1."""
    return soak if SOAK else ci


@dataclass
class Run:
    returncode: int  # negative: killed by that signal
    stdout: str
    stderr: str
    peak_rss_mb: float
    duration: float
    killed: bool  # killed by us (kill_after elapsed before it finished)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_measured(
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    kill_after: float | None = None,
) -> Run:
    """Run ``python -m reconciler.cli *args``; SIGKILL its process group after ``kill_after``."""
    full_env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli", *args],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=full_env,
            start_new_session=True,
        )
        killed = False
        peak_kb = 0
        while True:
            peak_kb = max(peak_kb, _vm_hwm_kb(proc.pid))
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            elapsed = time.monotonic() - started
            if (kill_after is not None and elapsed >= kill_after and not killed) or (
                elapsed >= timeout
            ):
                killed = killed or elapsed < timeout
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                if elapsed >= timeout:
                    _, status, _ = os.wait4(proc.pid, 0)
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    raise AssertionError(f"reconciler {' '.join(args)} hung for {timeout}s")
            time.sleep(0.005)
        proc.returncode = os.waitstatus_to_exitcode(status)
        duration = time.monotonic() - started
        if killed:
            # git grandchildren may still be exiting: make sure none survives us.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        out.seek(0)
        err.seek(0)
        return Run(
            returncode=proc.returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            peak_rss_mb=peak_kb / 1024,
            duration=duration,
            killed=killed,
        )


def _vm_hwm_kb(pid: int) -> int:
    """Peak resident set of a running process in KiB; 0 once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def once(remote_url: str, work: Path, *extra: str, **kwargs: object) -> Run:
    return run_measured(
        "once",
        "--repo",
        remote_url,
        "--work-dir",
        str(work),
        *extra,
        **kwargs,  # type: ignore[arg-type]
    )


# -- invariants --------------------------------------------------------------------------


def _git(remote: BareRemote, *args: str) -> str:
    return run_git("--git-dir", str(remote.path), *args)


def release_trailers(remote: BareRemote) -> Counter[str]:
    """``"<project> <version>"`` -> how many commits on main carry that Release trailer."""
    out = _git(remote, "log", "--format=%(trailers:key=Release,valueonly,unfold)", "main")
    return Counter(line.strip() for line in out.splitlines() if line.strip())


def remote_violations(remote: BareRemote, project: str, apps: Sequence[AppSpec]) -> list[str]:
    """Every broken invariant of ``project`` on the remote's main branch, as text.

    - each release version has one record, added by exactly one commit, never modified;
    - each release commit is made once (one ``Release:`` trailer per version) and every
      record has its trailer;
    - no two records hold the same package versions and digests (a release made twice under two
      version numbers);
    - every environment the state file says runs a release has exactly that release's
      package versions in its overlay;
    - the state's channel heads name existing records.
    """
    problems: list[str] = []
    if remote.head() is None:
        return ["remote has no main branch"]
    prefix = f"releases/{project}/"
    records = [f for f in remote.files() if f.startswith(prefix)]
    versions = {f[len(prefix) : -len(".yaml")] for f in records}

    trailers = release_trailers(remote)
    for key, count in trailers.items():
        if key.startswith(f"{project} ") and count != 1:
            problems.append(f"Release trailer {key!r} appears {count} times")
    trailer_versions = {k.split(" ", 1)[1] for k in trailers if k.startswith(f"{project} ")}
    if trailer_versions != versions:
        problems.append(
            f"records {sorted(versions)} != release trailers {sorted(trailer_versions)}"
        )

    history = _git(remote, "log", "--format=", "--name-status", "main", "--", prefix)
    changes = Counter(tuple(line.split("\t", 1)) for line in history.splitlines() if line)
    for (status, path), count in changes.items():
        if status != "A":
            problems.append(f"{path}: immutable record changed ({status} x{count})")
        elif count != 1:
            problems.append(f"{path}: added by {count} commits")

    package_sets: dict[tuple[tuple[str, str], ...], str] = {}
    releases: dict[str, dict[str, str]] = {}
    for version in sorted(versions):
        data = yamlio.load_one(remote.show(f"{prefix}{version}.yaml"))
        packages = {str(k): str(v["version"]) for k, v in data["packages"].items()}
        releases[version] = packages
        # A re-pushed tag is new content under the same version: the digest tells.
        key = tuple(
            sorted(
                (str(k), f"{v['version']}@{v.get('digest')}") for k, v in data["packages"].items()
            )
        )
        if key in package_sets:
            problems.append(f"releases {package_sets[key]} and {version} hold the same packages")
        package_sets[key] = version

    state_file = f"state/{project}.yaml"
    if state_file not in remote.files():
        return problems
    state = yamlio.load_one(remote.show(state_file)) or {}
    for channel, version in (state.get("channels") or {}).items():
        if str(version) not in versions:
            problems.append(f"state channel {channel} -> {version}: no such record")
    manifest = {a.package: a.manifest_name for a in apps}
    for env, deployments in (state.get("environments") or {}).items():
        if not deployments:
            continue
        current = str(deployments[-1]["release"])
        if current not in releases:
            problems.append(f"{env} runs {current}: no such record")
            continue
        overlay = f"deploy/{project}/overlays/{env}/kustomization.yaml"
        images = {
            str(i["name"]): str(i.get("newTag"))
            for i in (yamlio.load_one(remote.show(overlay)).get("images") or [])
        }
        for package, version in releases[current].items():
            found = images.get(manifest[package])
            if found != version:
                problems.append(
                    f"{env} runs {current} but its overlay has {package}={found} (want {version})"
                )
    return problems
