"""Apply a pass's plan to the work tree: write release records, state files and the
environments' files for releases and lifecycle promotions (verdicts on deployments of
environments with ``verify`` included).

Each project is planned and written on its own: a project whose files are broken is
undone exactly (the write journal) and skipped with its reason, and the others go on.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from reconciler import environments, records, safepaths
from reconciler.errors import GitError, ReconcilerError
from reconciler.lifecycle import MANUAL_APPROVAL_PENDING, Decision, current_release, decide
from reconciler.model import (
    Config,
    Deployment,
    Project,
    Release,
    ReleasedPackage,
    project_lifecycle,
)
from reconciler.operations import read_pins, release_states
from reconciler.planning import PackageChoice, plan_release
from reconciler.reconcile import drift
from reconciler.reconcile.memo import ProjectMemo
from reconciler.reconcile.report import (
    AutomaticDeployment,
    PassResult,
    earliest,
    package_changes,
)
from reconciler.reconcile.workstate import Workspace
from reconciler.verdicts import NO_VERIFICATION, Verifications
from reconciler.verify.runner import Verifier
from reconciler.verify.stage import Concluded, verify_project

__all__ = [
    "apply_all",
    "apply_project",
    "previous_release",
    "promote",
    "replaced_digests",
    "unseen_change",
    "verify",
]

log = logging.getLogger("reconciler.pass")


def apply_all(
    ws: Workspace,
    config: Config,
    projects: list[Project],
    choices: Mapping[tuple[str, str], dict[str, PackageChoice]],
    now: datetime,
    result: PassResult,
    *,
    write: bool,
    promoting: bool = True,
    verifier: Callable[[], Verifier] | None = None,
    memo: ProjectMemo | None = None,
) -> bool:
    """Plan releases and promotions on the current tree; write files. True if changed.
    ``promoting``: run lifecycle promotions after creating releases; ``verifier``:
    gives the verifier of environments with ``verify`` (made when first needed);
    ``memo``: the sidecar's memory of projects with nothing to do (reconcile/memo.py),
    whose unchanged ones are replayed instead of decided again."""
    changed = False
    if memo is not None:
        memo.begin()
    with records.journal() as journal:
        for project in projects:
            inputs = None
            if memo is not None:
                inputs = memo.inputs(ws, config, project, choices, promoting=promoting)
                if memo.replay(inputs, now, result):
                    continue
                memo.forget(project.name)
            mark, written = result.mark(), journal.mark()
            wake_before, result.wake_at = result.wake_at, None
            try:
                project_changed = apply_project(
                    ws,
                    config,
                    project,
                    choices,
                    now,
                    result,
                    write=write,
                    promoting=promoting,
                    verifier=verifier,
                )
                changed |= project_changed
                if memo is not None and not project_changed:
                    memo.note(inputs, result, mark, result.wake_at)
            except GitError:
                raise  # the repository, not the project: the whole pass fails
            except ReconcilerError as error:
                # One project's bad file (overlay, pin, state) must not stop the
                # others: undo exactly what it wrote in this pass and go on.
                journal.undo(written)
                result.rewind(mark)
                result.ok = False
                result.project_errors[project.name] = str(error)
                log.error("project %s skipped: %s", project.name, error,
                          extra={"project": project.name})  # fmt: skip
            finally:
                result.wake_at = earliest(wake_before, result.wake_at)
    return changed


def apply_project(
    ws: Workspace,
    config: Config,
    project: Project,
    choices: Mapping[tuple[str, str], dict[str, PackageChoice]],
    now: datetime,
    result: PassResult,
    *,
    write: bool,
    promoting: bool = True,
    verifier: Callable[[], Verifier] | None = None,
) -> bool:
    """Plan and write one project's releases and promotions. True if changed."""
    root = ws.root
    changed = False
    state = records.read_state(root, project.name)
    changed |= drift.observe(ws, project, state, now, result, write=write)
    existing = set(records.release_versions(root, project.name))
    new_releases: dict[str, Release] = {}
    for trigger in sorted(
        (t for t in config.triggers.values() if t.project == project.name),
        key=lambda t: t.name,
    ):
        per_package = choices.get((project.name, trigger.channel))
        if per_package is None:
            continue
        previous = previous_release(root, project, trigger.channel, state, new_releases)
        decision = plan_release(
            project,
            trigger,
            previous,
            per_package,
            existing,
            now,
            settle_state=ws.local.settle(trigger.name),
            replaced=replaced_digests(root, project.name, state, previous, per_package),
        )
        result.decisions.append(decision)
        release = decision.release
        if release is None:
            continue
        log.info(
            "release %s %s: %s",
            project.name,
            release.version,
            decision.reason,
            extra={"project": project.name, "release": release.version},
        )
        new_releases[release.version] = release
        existing.add(release.version)
        state.channels[release.channel] = release.version
        state.remember(release)
        result.releases.append(release)
        if write:
            path = records.release_path(project.name, release.version)
            if safepaths.is_file(root, path):  # never overwrite an immutable record
                raise ReconcilerError(f"{path}: release record already exists")
            records.write_if_changed(root, path, records.release_to_text(release))
            result.files_changed.append(path)
        changed = True
    if promoting:
        changed |= promote(
            ws, config, project, state, new_releases, now, result, write=write, verifier=verifier
        )
    if write and changed:
        text = records.state_to_text(state)
        if records.write_if_changed(root, records.state_path(project.name), text):
            result.files_changed.append(records.state_path(project.name))
    return changed


def promote(
    ws: Workspace,
    config: Config,
    project: Project,
    state: records.ProjectState,
    new_releases: dict[str, Release],
    now: datetime,
    result: PassResult,
    *,
    write: bool,
    verifier: Callable[[], Verifier] | None = None,
) -> bool:
    """Lifecycle promotions of one project (and verdicts on its deployments)."""
    verification, concluded = verify(ws, project, state, now, verifier)
    result.verifications.extend(concluded)
    changed = bool(concluded)  # a verdict is recorded in the state file
    lifecycles: dict[str, list[str]] = {}
    for channel in project.channels:
        lifecycles.setdefault(channel.lifecycle or project.lifecycle, []).append(channel.name)
    pins = {env: p.get("release") for env, p in read_pins(ws.root, project.name).items()}
    releases = release_states(state)
    for lc_name, channels in sorted(lifecycles.items()):
        if not any(r.channel in channels for r in releases):
            continue
        lifecycle = project_lifecycle(config.lifecycles[lc_name], project)
        # state.history is the very dict deployments below are recorded in, so a second
        # call sees them.
        decide_now = functools.partial(
            decide,
            lifecycle,
            releases,
            state.history,
            now,
            pins=pins,
            channels=channels,
            verification=verification,
        )
        decision: Decision = decide_now()
        result.wake_at = earliest(result.wake_at, decision.wake_at)
        promoted = False
        for wait in decision.waiting:
            pr_mode = project.environments[wait.environment].promotion == "pull-request"
            if pr_mode and wait.reason == MANUAL_APPROVAL_PENDING and wait.release:
                result.proposals.append((project.name, wait.environment, wait.release))
                continue
            if wait.reason == MANUAL_APPROVAL_PENDING and wait.release:
                result.manual.append((project.name, wait.environment, wait.release))
            result.waiting.append((project.name, wait.environment, wait.reason))
        for promotion in decision.promotions:
            if project.environments[promotion.environment].promotion == "pull-request":
                result.proposals.append((project.name, promotion.environment, promotion.release))
                continue
            release = new_releases.get(promotion.release) or records.read_release(
                ws.root, project.name, promotion.release
            )
            if release is None:
                log.error(
                    "release %s %s has no record; not promoting",
                    project.name,
                    promotion.release,
                )
                continue
            env = project.environments[promotion.environment]
            before = current_release(state.history, env.name)
            unseen = unseen_change(ws.root, project, before, release)
            if unseen:
                # Recording it would claim a deployment that never reaches the cluster.
                result.waiting.append((project.name, env.name, unseen))
                continue
            # What the files said, not only the record: a hand edit kept by
            # onDrift: report is what this deployment overwrites.
            held = environments.held_versions(ws.root, project, env.name, release)
            if write:
                written = environments.render(ws.root, project, env.name, release)
                result.files_changed.extend(written)
            by = "reconciler (rollback)" if promotion.rollback else "reconciler"
            state.deploy(Deployment(env.name, release.version, now, by, True, promotion.phase))
            if promotion.rollback:
                result.rollbacks.append((project.name, env.name, before or "", release.version))
            result.promotions.append((project.name, env.name, release.version))
            result.deployments.append(
                AutomaticDeployment(
                    project.name,
                    env.name,
                    before,
                    release.version,
                    promotion.phase,
                    package_changes(ws.root, project.name, before, release, held),
                )
            )
            changed = True
            promoted = True
        if promoted:
            # A deployment recorded just now may complete its phase (no soak, no
            # verification) and so open the next one: the sidecar runs again at once.
            again = decide_now()
            planned = {(p.environment, p.release) for p in decision.promotions}
            if any((p.environment, p.release) not in planned for p in again.promotions):
                result.follow_up = True
    return changed


def verify(
    ws: Workspace,
    project: Project,
    state: records.ProjectState,
    now: datetime,
    verifier: Callable[[], Verifier] | None,
) -> tuple[Verifications, list[Concluded]]:
    """Verification of the project's current deployments (reconciler.verify.stage)."""
    if verifier is None or not any(env.verify for env in project.environments.values()):
        return NO_VERIFICATION, []
    return verify_project(project, state.history, tree=ws.tree, verify=verifier().verify, now=now)


def previous_release(
    root: Path,
    project: Project,
    channel: str,
    state: records.ProjectState,
    new: Mapping[str, Release] | None = None,
) -> Release | None:
    version = state.channels.get(channel)
    if version is None:
        return None
    if new and version in new:
        return new[version]
    return records.read_release(root, project.name, version)


def unseen_change(root: Path, project: Project, before: str | None, release: Release) -> str:
    """Why deploying ``release`` over ``before`` would change nothing the environment
    pulls ("" when it would): new content under the very same tags, while the overlay
    names images by tag only (no ``renderDigest``)."""
    if before is None or project.render_digest:
        return ""
    old = records.read_release(root, project.name, before)
    if old is None:
        return ""
    was = {(p.name, p.version): p.digest for p in old.packages}
    moved = [p.name for p in release.packages if (p.name, p.version) in was]
    news = [
        p.name
        for p in release.packages
        if (p.name, p.version) not in was or was[(p.name, p.version)] != p.digest
    ]
    if not news or any(name not in moved for name in news):
        return ""  # a tag changes: rendering it changes what is pulled
    return (
        f"{release.version}: not deployed: {', '.join(news)} changed content but not tag"
        f" since {before}, and the overlay names images by tag (nothing would roll);"
        " set renderDigest: true on the project to deploy by digest"
    )


def replaced_digests(
    root: Path,
    project: str,
    state: records.ProjectState,
    previous: Release | None,
    choices: Mapping[str, PackageChoice],
) -> dict[str, frozenset[str]]:
    """Per package whose chosen tag is the previous release's with another digest:
    the digests earlier releases held for that tag (all replaced since, by the
    previous release's). Records are read only in that rare case."""
    if previous is None:
        return {}
    moved: dict[str, ReleasedPackage] = {}
    for name, choice in choices.items():
        prev = previous.package(name)
        if prev and prev.digest and choice.tag == prev.version and choice.digest != prev.digest:
            moved[name] = prev
    if not moved:
        return {}
    found: dict[str, set[str]] = {name: set() for name in moved}
    for entry in state.recent:
        if entry.version == previous.version or entry.channel != previous.channel:
            continue
        older = records.read_release(root, project, entry.version)
        for name, prev in moved.items():
            held = older.package(name) if older is not None else None
            if held and held.version == prev.version and held.digest and held.digest != prev.digest:
                found[name].add(held.digest)
    return {name: frozenset(digests) for name, digests in found.items() if digests}
