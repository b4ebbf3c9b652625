"""Manual operations on the config repository: promote, rollback, block, pin.

Each operation is a function ``(config, root, now) -> Change | None`` that edits the
work tree; ``publish.apply_change`` syncs, runs it, commits and pushes, and on a
rejected push re-syncs and re-runs it (bounded), with the pass's publish routine. A refusal is
raised as ``PromotionRefused`` with the reason, before anything is written.
"""

from __future__ import annotations

import getpass
import os
from datetime import datetime
from pathlib import Path

from ruamel.yaml.error import YAMLError

from reconciler import environments, records, safepaths, yamlio
from reconciler.commitlines import SUBJECT_PREFIX, deploy_subject, deployment_lines, package_changes
from reconciler.errors import PromotionRefused, ReconcilerError
from reconciler.lifecycle import ReleaseState, check_manual, current_release
from reconciler.model import Config, Deployment, Lifecycle, Project, Release, project_lifecycle
from reconciler.publish import Change, Operation
from reconciler.verdicts import recorded_verifications


def actor() -> str:
    """Who is acting: $RECONCILER_ACTOR, else the login name."""
    name = os.environ.get("RECONCILER_ACTOR")
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _project(config: Config, name: str) -> Project:
    if name not in config.projects:
        raise PromotionRefused(f"unknown project {name!r}")
    return config.projects[name]


def _release(root: Path, project: str, version: str) -> Release:
    release = records.read_release(root, project, version)
    if release is None:
        raise PromotionRefused(f"release {project} {version} does not exist")
    return release


def _no_environment(project: Project, environment: str) -> str:
    tenants = project.tenants.get(environment)
    if tenants:
        return f"{environment} of project {project.name} has tenants: name one of " + ", ".join(
            tenants
        )
    return f"project {project.name} has no environment {environment!r}"


def lifecycle_for(config: Config, project: Project, channel: str) -> tuple[Lifecycle, list[str]]:
    """The lifecycle a channel follows, and every channel that follows it too."""
    name = project.channel(channel).lifecycle or project.lifecycle
    channels = [c.name for c in project.channels if (c.lifecycle or project.lifecycle) == name]
    return project_lifecycle(config.lifecycles[name], project), channels


def release_states(state: records.ProjectState) -> list[ReleaseState]:
    return [
        ReleaseState(r.version, r.channel, r.created, state.blocks.get(r.version))
        for r in state.recent
    ]


def read_pins(root: Path, project: str) -> dict[str, dict[str, str]]:
    """environment -> pin data (release may be absent: hold the current one).

    Pins are edited by hand and by pull request: a file that is not a pin
    (``kind: Pin``) stops the project with an error naming it, rather than pinning
    or being ignored."""
    pins: dict[str, dict[str, str]] = {}
    for name in sorted(safepaths.listdir(root, f"pins/{project}")):
        if not name.endswith(".yaml"):
            continue
        path = f"pins/{project}/{name}"
        try:
            data = yamlio.load_one_fast(safepaths.read_text(root, path)) or {}
        except (OSError, ValueError, YAMLError) as exc:
            raise ReconcilerError(f"{path}: unreadable pin: {exc}") from exc
        kind = data.get("kind") if isinstance(data, dict) else None
        if kind != "Pin":
            raise ReconcilerError(f"{path}: not a pin: kind must be 'Pin', found {kind!r}")
        pins[name.removesuffix(".yaml")] = {
            str(k): str(v) for k, v in data.items() if v is not None
        }
    return pins


def deploy(
    root: Path,
    project: Project,
    environment: str,
    release: Release,
    state: records.ProjectState,
    now: datetime,
    by: str,
    *,
    automatic: bool,
) -> list[str]:
    """Render the release into the environment and record the deployment."""
    changed = environments.render(root, project, environment, release)
    state.deploy(Deployment(environment, release.version, now, by, automatic))
    records.write_if_changed(root, records.state_path(project.name), records.state_to_text(state))
    return changed


def promote(
    project_name: str, version: str, environment: str, *, by: str, override_freeze: bool = False
) -> Operation:
    def run(config: Config, root: Path, now: datetime) -> Change:
        project = _project(config, project_name)
        if environment not in project.environments:
            raise PromotionRefused(_no_environment(project, environment))
        release = _release(root, project_name, version)
        state = records.read_state(root, project_name)
        lifecycle, channels = lifecycle_for(config, project, release.channel)
        pins = {env: p.get("release") for env, p in read_pins(root, project_name).items()}
        reason = check_manual(
            lifecycle,
            release_states(state),
            state.history,
            now,
            release=version,
            environment=environment,
            override_freeze=override_freeze,
            pins=pins,
            channels=channels,
            verification=recorded_verifications(project, state.history),
        )
        if reason is not None:
            raise PromotionRefused(reason)
        previous = current_release(state.history, environment)
        changes = package_changes(root, project_name, previous, release)
        deploy(root, project, environment, release, state, now, by, automatic=False)
        trailers = [
            f"Release: {project_name} {version}",
            f"Environment: {environment}",
            f"Deployed: {project_name} {version} {environment}",
            f"Promoted-By: {by}",
        ]
        if override_freeze:
            trailers.append("Freeze-Override: yes")
        how = f"manual, by {by}"
        return Change(
            SUBJECT_PREFIX + deploy_subject(project_name, version, [environment]),
            "\n".join(deployment_lines(project_name, environment, previous, version, how, changes)),
            tuple(trailers),
        )

    return run


def rollback(project_name: str, environment: str, to: str | None, *, by: str) -> Operation:
    def run(config: Config, root: Path, now: datetime) -> Change:
        project = _project(config, project_name)
        if environment not in project.environments:
            raise PromotionRefused(_no_environment(project, environment))
        state = records.read_state(root, project_name)
        current = current_release(state.history, environment)
        target = to
        if target is None:
            earlier = [
                d.release for d in state.history.get(environment, []) if d.release != current
            ]
            if not earlier:
                raise PromotionRefused(f"{environment} has no earlier release to roll back to")
            target = earlier[-1]
        if target == current:
            raise PromotionRefused(f"{environment} already runs {target}")
        release = _release(root, project_name, target)
        changes = package_changes(root, project_name, current, release)
        deploy(root, project, environment, release, state, now, by, automatic=False)
        how = f"rollback, by {by}"
        return Change(
            f"{SUBJECT_PREFIX}roll back {project_name} {environment} to {target}",
            "\n".join(deployment_lines(project_name, environment, current, target, how, changes)),
            (
                f"Release: {project_name} {target}",
                f"Environment: {environment}",
                f"Deployed: {project_name} {target} {environment}",
                f"Promoted-By: {by}",
                f"Rollback: {project_name} {current} -> {target}",
            ),
        )

    return run


def block(project_name: str, version: str, reason: str | None, *, by: str) -> Operation:
    """Block (reason given) or unblock (reason None) a release."""

    def run(config: Config, root: Path, now: datetime) -> Change | None:
        _project(config, project_name)
        _release(root, project_name, version)
        state = records.read_state(root, project_name)
        if reason is None:
            if version not in state.blocks:
                return None
            del state.blocks[version]
            subject, trailer = f"Unblock {project_name} {version}", "Unblocked"
        else:
            if state.blocks.get(version) == reason:
                return None
            state.blocks[version] = reason
            subject, trailer = f"Block {project_name} {version}: {reason}", "Blocked"
        records.write_if_changed(
            root, records.state_path(project_name), records.state_to_text(state)
        )
        del now
        return Change(
            subject, f"by {by}", (f"{trailer}: {project_name} {version}", f"Promoted-By: {by}")
        )

    return run


def pin(
    project_name: str, environment: str, version: str | None, reason: str | None, *, by: str
) -> Operation:
    """Pin (reason given) or unpin (reason None) an environment."""

    def run(config: Config, root: Path, now: datetime) -> Change | None:
        project = _project(config, project_name)
        if environment not in project.environments:
            raise PromotionRefused(_no_environment(project, environment))
        path = records.pin_path(project_name, environment)
        if reason is None:
            if not safepaths.is_file(root, path):
                return None
            safepaths.unlink(root, path)
            return Change(
                f"Unpin {project_name} {environment}",
                f"by {by}",
                (f"Unpinned: {project_name} {environment}", f"Promoted-By: {by}"),
            )
        state = records.read_state(root, project_name)
        trailers = [f"Pinned: {project_name} {environment}", f"Promoted-By: {by}"]
        if version is not None and version != current_release(state.history, environment):
            release = _release(root, project_name, version)
            deploy(root, project, environment, release, state, now, by, automatic=False)
            trailers += [
                f"Release: {project_name} {version}",
                f"Environment: {environment}",
                f"Deployed: {project_name} {version} {environment}",
            ]
        text = records.pin_to_text(project_name, environment, version, reason, by, now)
        records.write_if_changed(root, path, text)
        return Change(
            f"Pin {project_name} {environment}" + (f" to {version}" if version else ""),
            f"reason: {reason}\nby {by}",
            tuple(trailers),
        )

    return run
