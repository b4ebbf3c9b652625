"""The sidecar's memory of projects whose last pass found nothing to do (issue 22).

A warm pass in ``reconciler run`` mostly re-derives, project by project, what the pass
before it concluded: read the state file and the previous releases, compare the
overlays with them, decide the lifecycle, and find again "no newer version" and the
same waiting reasons. This memo keeps, per project, what such a pass appended to the
``PassResult`` and replays it while every input of the project is provably the same:

- its files: the work tree's commit is the one the project was decided on, or every
  path that changed since (``git diff``) belongs to *other* projects' records, state,
  pins or environment files (``affected``); any other path (config, a base, a file
  nobody claims) forgets every project;
- its config: the ``Project``, its triggers and lifecycles compare equal;
- its polls: each package's chosen tag, digest, creation time and refusals are equal,
  and none failed;
- the work dir's settle windows of its triggers are equal;
- time: ``now`` is before the earliest moment the decision said time alone changes it
  (soak or freeze end: ``wake_at``).

Polling also takes from here each project's previous releases (what it read from the
state file and records at a commit whose diff since does not touch the project).

Only a project that was handled completely, without error, and changed nothing is
remembered. Never remembered (so always decided afresh): a project with an open
settle window (its reason counts seconds), with environments that ``verify`` (a
verification poll asks the cluster), with drift (each pass logs and reports it), or
whose pass did not finish (a Git error, a rejected push, a dry run). A process that
starts holds nothing: ``once`` and the first pass of ``run`` decide every project.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconciler.environments import KUSTOMIZATION_NAMES
from reconciler.model import Config, Lifecycle, Project, Release, Trigger
from reconciler.planning import PackageChoice
from reconciler.reconcile.report import PassResult, earliest
from reconciler.reconcile.workstate import Workspace

__all__ = ["ProjectMemo", "affected", "project_files"]

_ALL = "*"  # ``affected``: every project


@dataclass(frozen=True)
class Inputs:
    """What a project's decision depends on besides its files and the clock."""

    project: Project
    triggers: tuple[Trigger, ...]
    lifecycles: tuple[Lifecycle | None, ...]
    polls: tuple[Any, ...]
    settle: tuple[Any, ...]
    promoting: bool


@dataclass
class _Entry:
    head: str  # the commit whose files the project was decided on
    inputs: Inputs
    wake_at: datetime | None
    appended: dict[str, list[Any]]  # PassResult list -> what the project appended


def project_files(project: Project) -> set[str]:
    """The environment files of ``project`` that a pass reads (normalised paths)."""
    files: set[str] = set()
    for env in project.environments.values():
        if env.targets:
            files.update(posixpath.normpath(t.file) for t in env.targets)
        else:
            files.update(posixpath.normpath(f"{env.overlay}/{n}") for n in KUSTOMIZATION_NAMES)
    return files


def affected(paths: Iterable[str], projects: Iterable[Project]) -> set[str]:
    """The names of the projects whose inputs ``paths`` may touch; ``{"*"}`` for all.

    A path is a project's when it is its release record, state file or pin
    (``releases/<p>/``, ``state/<p>.yaml``, ``pins/<p>/``) or one of its environment
    files; a path that is nobody's (config, a kustomize base, anything else) may be
    read by any project."""
    owners: dict[str, set[str]] = {}
    for project in projects:
        for file in project_files(project):
            owners.setdefault(file, set()).add(project.name)
    names: set[str] = set()
    for path in paths:
        parts = path.split("/")
        owned = owners.get(path, set())
        if len(parts) >= 3 and parts[0] in ("releases", "pins"):
            owned = owned | {parts[1]}
        elif len(parts) == 2 and parts[0] == "state" and parts[1].endswith(".yaml"):
            owned = owned | {parts[1][: -len(".yaml")]}
        if not owned:
            return {_ALL}
        names |= owned
    return names


class ProjectMemo:
    """Per project, the last complete no-change decision and what it reported."""

    LISTS = PassResult._PER_PROJECT

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        # project -> (commit, channel -> its previous release), what polling read from
        # the state file and records; valid while the project's files are (``advance``)
        self._previous: dict[str, tuple[str, dict[str, Release | None]]] = {}
        self._pending: dict[str, _Entry] = {}
        self._head = ""
        self.replayed = 0  # projects replayed by the last ``apply_all`` (tests, benchmarks)
        self._by_project: tuple[Config | None, dict[str, tuple[Trigger, ...]]] = (None, {})

    def advance(
        self,
        head: str,
        config: Config,
        changed_paths: Callable[[str, str], list[str] | None],
    ) -> None:
        """The work tree is now at ``head``: forget each project whose files may differ
        from the commit it was decided on."""
        self._head = head
        heads = {e.head for e in self._entries.values()} | {h for h, _ in self._previous.values()}
        heads.discard(head)
        if not heads:
            return
        projects = list(config.projects.values())
        projects += [e.inputs.project for e in self._entries.values()]
        hits = {}
        for old in heads:
            paths = changed_paths(old, head)
            hits[old] = {_ALL} if paths is None else affected(paths, projects)
        for name, entry in list(self._entries.items()):
            if entry.head == head:
                continue
            if _ALL in hits[entry.head] or name in hits[entry.head]:
                del self._entries[name]
            else:
                entry.head = head  # the same files at ``head``
        for name, (at, previous) in list(self._previous.items()):
            if at == head:
                continue
            if _ALL in hits[at] or name in hits[at]:
                del self._previous[name]
            else:
                self._previous[name] = (head, previous)

    def previous(self, project: str, channels: Collection[str]) -> dict[str, Release | None] | None:
        """The previous release of each of ``channels`` read at the current commit (or
        at one whose diff since does not touch the project), or None."""
        at, previous = self._previous.get(project, ("", {}))
        if not at or at != self._head or previous.keys() != set(channels):
            return None
        return previous

    def keep_previous(self, project: str, previous: dict[str, Release | None]) -> None:
        """What polling read for ``project`` at the current commit (before any write)."""
        if self._head:
            self._previous[project] = (self._head, previous)

    def begin(self) -> None:
        """A plan starts: what an earlier plan of this pass noted is void."""
        self._pending = {}
        self.replayed = 0

    def inputs(
        self,
        ws: Workspace,
        config: Config,
        project: Project,
        choices: Mapping[tuple[str, str], Mapping[str, PackageChoice]],
        *,
        promoting: bool,
    ) -> Inputs | None:
        """The project's inputs, or None when it must never be remembered."""
        if not self._head or any(env.verify for env in project.environments.values()):
            return None
        triggers = self._triggers(config).get(project.name, ())
        polls: list[Any] = []
        for trigger in triggers:
            per_package = choices.get((project.name, trigger.channel))
            if per_package is None:
                polls.append((trigger.channel, None))
                continue
            for name, c in sorted(per_package.items()):
                if c.error is not None:
                    return None
                polls.append((trigger.channel, name, c.tag, c.digest, c.built, c.refused))
        names = {c.lifecycle or project.lifecycle for c in project.channels}
        settle = ws.local.data.get("settle", {})
        return Inputs(
            project,
            triggers,
            tuple(config.lifecycles.get(n) for n in sorted(names)),
            tuple(polls),
            tuple(settle.get(t.name) for t in triggers),
            promoting,
        )

    def _triggers(self, config: Config) -> dict[str, tuple[Trigger, ...]]:
        """Project -> its triggers by name, once per config (not once per project)."""
        if self._by_project[0] is not config:
            by_project: dict[str, list[Trigger]] = {}
            for trigger in sorted(config.triggers.values(), key=lambda t: t.name):
                by_project.setdefault(trigger.project, []).append(trigger)
            self._by_project = (config, {k: tuple(v) for k, v in by_project.items()})
        return self._by_project[1]

    def replay(self, inputs: Inputs | None, now: datetime, result: PassResult) -> bool:
        """Append what the project reported last time, if nothing it depends on moved."""
        if inputs is None:
            return False
        entry = self._entries.get(inputs.project.name)
        if entry is None or entry.head != self._head or entry.inputs != inputs:
            return False
        if entry.wake_at is not None and now >= entry.wake_at:
            return False
        for name, items in entry.appended.items():
            getattr(result, name).extend(items)
        result.wake_at = earliest(result.wake_at, entry.wake_at)
        self.replayed += 1
        return True

    def note(
        self,
        inputs: Inputs | None,
        result: PassResult,
        mark: Mapping[str, int],
        wake_at: datetime | None,
    ) -> None:
        """Remember a project decided completely without a change (see the module
        docstring for what is never remembered)."""
        if inputs is None:
            return
        appended = {name: list(getattr(result, name)[mark[name] :]) for name in self.LISTS}
        unchanged = not any(
            appended[name]
            for name in ("releases", "promotions", "files_changed", "adopted", "drift",
                         "deployments", "verifications", "rollbacks")
        )  # fmt: skip
        settling = any(d.settle is not None for d in appended["decisions"])
        if unchanged and not settling:
            entry = _Entry(self._head, inputs, wake_at, appended)
            self._pending[inputs.project.name] = entry

    def commit(self) -> None:
        """The pass finished: what it noted holds for the commit it planned on."""
        self._entries.update(self._pending)
        self._pending = {}

    def forget(self, project: str) -> None:
        self._entries.pop(project, None)
