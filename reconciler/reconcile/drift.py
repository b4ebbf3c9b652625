"""What people changed by hand in an environment's files: a deployment of another
known release (adopted, e.g. a merged promotion pull request or a ``git revert``), or
drift, handled by the environment's ``onDrift`` policy (``pin``, ``revert``, ``report``).

``classify`` is the policy as a pure function; ``observe`` reads the files and acts.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

from reconciler import environments, records
from reconciler.gitrepo import WorkTree
from reconciler.model import Deployment, Project, Release
from reconciler.operations import read_pins
from reconciler.reconcile.report import PassResult
from reconciler.reconcile.workstate import Workspace

__all__ = ["Finding", "adopted", "classify", "last_change", "observe", "remember_deployed"]

log = logging.getLogger("reconciler.pass")

Finding = Literal["in-sync", "seed", "adopted", "pinned", "drift"]


def classify(*, matches: bool, current: str | None, adopted: str | None, pinned: bool) -> Finding:
    """What an environment's files mean, given whether they match its recorded release
    (``current``; None before the reconciler deployed there), the known release they
    match instead (``adopted``), and whether a person pinned the environment."""
    if matches and current is not None:
        return "in-sync"
    if current is None and adopted is None:
        return "seed"  # never deployed by us and matching no release: not drift
    if adopted is not None:
        return "adopted"
    if pinned:
        return "pinned"  # a person is in charge of this environment already
    return "drift"


def observe(
    ws: Workspace,
    project: Project,
    state: records.ProjectState,
    now: datetime,
    result: PassResult,
    *,
    write: bool,
) -> bool:
    """Compare each environment's files with its recorded release.

    A file that now matches another known release was promoted by hand (for
    example a merged promotion pull request): record that deployment. Anything
    else is drift, handled by the environment's ``onDrift`` policy. Files whose
    bytes did not change since they last matched are not parsed again.
    """
    root = ws.root
    changed = False
    pins = read_pins(root, project.name)
    observed = ws.local.data.setdefault("observed", {})
    for env_name in sorted(project.environments):
        current = state.current(env_name)
        reference = current or (state.recent[-1].version if state.recent else None)
        release = records.read_release(root, project.name, reference) if reference else None
        if release is None:
            continue
        fingerprint = environments.fingerprint(root, project, env_name, release)
        key = f"{project.name}/{env_name}"
        if observed.get(key) == [current, fingerprint]:
            continue
        seen = environments.observe(root, project, env_name, release)
        in_sync = seen.matches and current is not None
        other = None if in_sync else adopted(ws, project, env_name, state, current)
        finding = classify(
            matches=seen.matches, current=current, adopted=other, pinned=env_name in pins
        )
        if finding in ("in-sync", "seed"):
            observed[key] = [current, fingerprint]
        elif finding == "adopted" and other is not None:
            _adopt(ws, project.name, env_name, other, seen.files, state, now, result)
            changed = True
        elif finding == "drift":
            changed |= _drift(ws, project, env_name, release, seen, now, result, write=write)
    return changed


def remember_deployed(ws: Workspace, project: Project, env_name: str, release: Release) -> None:
    """Note, after a pushed pass deployed ``release`` to an environment, that its files
    say exactly that release, so the first pass after a release skips them as a
    steady pass does (issue 22). Called only once the commit is on the remote: the
    entry is keyed on the files' bytes and the release the state file records, which
    a pass that failed to push would never find again after its sync anyway."""
    root = ws.root
    if not environments.observe(root, project, env_name, release).matches:
        return  # the next pass must look at these files itself (drift, a missing image)
    observed = ws.local.data.setdefault("observed", {})
    fingerprint = environments.fingerprint(root, project, env_name, release)
    observed[f"{project.name}/{env_name}"] = [release.version, fingerprint]


def _adopt(
    ws: Workspace,
    project: str,
    env_name: str,
    version: str,
    files: tuple[str, ...],
    state: records.ProjectState,
    now: datetime,
    result: PassResult,
) -> None:
    """Record a deployment a person (or a merged proposal) made."""
    author, sha = last_change(ws.tree, files)
    proposal = ws.local.data.get("pullRequests", {}).get(f"{project}/{env_name}")
    if proposal and proposal["release"] == version:
        author = f"pull request #{proposal['number']}"
        proposal["state"] = "merged"
    log.info("%s/%s now runs %s (changed by %s in %s)", project, env_name, version, author,
             sha[:10])  # fmt: skip
    state.deploy(Deployment(env_name, version, now, author, automatic=False))
    result.adopted.append((project, env_name, version, author))


def _drift(
    ws: Workspace,
    project: Project,
    env_name: str,
    release: Release,
    seen: environments.Observation,
    now: datetime,
    result: PassResult,
    *,
    write: bool,
) -> bool:
    """Apply the environment's ``onDrift`` policy. True if files changed."""
    author, sha = last_change(ws.tree, seen.files)
    policy = project.environments[env_name].on_drift
    detail = "; ".join(seen.differences)
    result.drift.append((project.name, env_name, policy, f"{author}: {detail}"))
    log.warning("drift in %s/%s (%s, policy %s): %s", project.name, env_name, author, policy,
                detail)  # fmt: skip
    if policy == "report":
        result.waiting.append((project.name, env_name, f"drift: {detail}"))
        return False
    if not write:
        return False
    if policy == "revert":
        result.files_changed.extend(environments.render(ws.root, project, env_name, release))
        return True
    reason = f"drift: changed by {author} in {sha[:10]}: {detail}"
    path = records.pin_path(project.name, env_name)
    text = records.pin_to_text(project.name, env_name, None, reason, "reconciler (drift)", now)
    records.write_if_changed(ws.root, path, text)
    result.files_changed.append(path)
    return True


def last_change(tree: WorkTree, files: tuple[str, ...]) -> tuple[str, str]:
    """Who last changed ``files``, and in which commit."""
    commits = tree.log(paths=list(files), max_count=1)
    if not commits:
        return "unknown", ""
    return f"{commits[0].author} <{commits[0].email}>", commits[0].sha


def adopted(
    ws: Workspace, project: Project, env_name: str, state: records.ProjectState, current: str | None
) -> str | None:
    """A known release (other than ``current``) that the files now say exactly."""
    root = ws.root
    for entry in reversed(state.recent):
        if entry.version == current:
            continue
        other = records.read_release(root, project.name, entry.version)
        if other is not None and environments.observe(root, project, env_name, other).matches:
            return other.version
    return None
