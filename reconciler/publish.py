"""Publish a change to the config repository: commit once, push without force, and when
the push is rejected, rebase or re-plan. Used by the pass and the manual operations.

``publish`` takes a plan callback that writes the change on the current head and
returns the commit message (None: nothing to commit). When the remote moved on only in
files no pass depends on (docs, CI), the commit is rebased onto it and pushed again;
otherwise the tree is synced and the plan called again on the new head, a bounded
number of times (rebases count against the same budget). Modelled on Flux's
image-automation ``push_retry``. Nothing here knows what a pass or an operation is.
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from reconciler.config import CONFIG_DIRS, SETTINGS_FILE, load_config
from reconciler.errors import PushRejected
from reconciler.gitrepo import WorkTree
from reconciler.model import Config

__all__ = [
    "HOOK_ENV",
    "Change",
    "Operation",
    "Plan",
    "Published",
    "apply_change",
    "guarded_paths",
    "hook",
    "publish",
]

log = logging.getLogger("reconciler.pass")

HOOK_ENV = "RECONCILER_TEST_HOOK"
"""Test-only: name of a publish step at which the process kills itself (crash tests)."""


def hook(step: str) -> None:
    if os.environ.get(HOOK_ENV) == step:
        os.kill(os.getpid(), 9)


def guarded_paths(config: Config) -> Callable[[str], bool]:
    """Whether a path is one a pass reads or writes: config, records, state, pins, every
    environment's overlay folder and rendering targets. A concurrent change to any of
    them means the plan may be stale (a re-plan, not a rebase)."""
    folders = [f"{d}/" for d in (*CONFIG_DIRS, "releases", "state", "pins")]
    files = {SETTINGS_FILE}
    for project in config.projects.values():
        for env in project.environments.values():
            folders.append(posixpath.normpath(env.overlay) + "/")
            files.update(posixpath.normpath(target.file) for target in env.targets)
    prefixes = tuple(folders)
    return lambda path: path in files or path.startswith(prefixes)


Plan = Callable[[int], str | None]
"""attempt (1-based) -> the commit message of the change it wrote; None: nothing to do."""


@dataclass(frozen=True)
class Published:
    """How publishing ended. ``outcome``: ``unchanged`` (the plan had nothing to do),
    ``empty`` (the change left the tree as it was), ``pushed``, or ``rejected`` (the
    budget ran out; ``commit`` is the last, unpushed, commit)."""

    outcome: Literal["unchanged", "empty", "pushed", "rejected"]
    commit: str | None
    attempts: int  # plans made
    rebases: int  # pushes retried after rebasing over unrelated commits


def publish(
    tree: WorkTree,
    plan: Plan,
    *,
    attempts: int,
    is_guarded: Callable[[str], bool] | None = None,
    sync_first: bool = False,
    sync: Callable[[], object] | None = None,
) -> Published:
    """Plan, commit and push, re-planning on a moved remote (see the module docstring).
    ``is_guarded``: paths a plan depends on; None never rebases (always re-plans).
    ``sync``: how to sync the tree before a new plan (default ``tree.sync``)."""
    rebases = 0
    commit: str | None = None
    for attempt in range(1, attempts + 1):
        if attempt > 1 or sync_first:
            (sync or tree.sync)()
        message = plan(attempt)
        if message is None:
            return Published("unchanged", None, attempt, rebases)
        hook("after-write")
        commit = tree.commit(message)
        if not commit:
            return Published("empty", None, attempt, rebases)
        hook("after-commit")
        pushed, rebases = _push(tree, is_guarded, rebases, attempts)
        commit = tree.head() if rebases else commit
        if pushed:
            hook("after-push")
            return Published("pushed", commit, attempt, rebases)
        log.warning("push rejected (remote moved); re-planning (attempt %d)", attempt)
    return Published("rejected", commit, attempts, rebases)


def _push(
    tree: WorkTree, is_guarded: Callable[[str], bool] | None, rebases: int, budget: int
) -> tuple[bool, int]:
    """Push; rebase over unrelated commits and push again. (pushed, rebases so far)."""
    # One budget for the whole publish: rebases count against it too, so a busy
    # writer next to us cannot make a pass push budget² times.
    while True:
        try:
            tree.push()
        except PushRejected:
            if is_guarded is None or rebases >= budget:
                return False, rebases
            if not tree.rebase_if_unrelated(is_guarded):
                return False, rebases
            rebases += 1
            log.info("push rejected by unrelated commits: rebased, pushing again")
            continue
        return True, rebases


@dataclass(frozen=True)
class Change:
    """What a manual operation changed, as its commit message."""

    subject: str
    body: str
    trailers: tuple[str, ...]

    def message(self) -> str:
        text = self.subject + "\n"
        if self.body:
            text += "\n" + self.body.rstrip("\n") + "\n"
        return text + "\n" + "\n".join(self.trailers) + "\n"


Operation = Callable[[Config, Path, datetime], Change | None]


def apply_change(
    tree: WorkTree,
    operation: Operation,
    *,
    clock: Callable[[], datetime],
    configure: Callable[[Config], None] = lambda config: None,
    attempts: int = 5,
) -> str | None:
    """Run ``operation`` on a fresh sync, commit and push; re-run on a moved remote.
    The commit's sha, or None when there was nothing to change."""

    def plan(attempt: int) -> str | None:
        config = load_config(tree.root)
        configure(config)
        change = operation(config, tree.root, clock())
        return change.message() if change is not None else None

    published = publish(tree, plan, attempts=attempts, sync_first=True)
    if published.outcome == "rejected":
        raise PushRejected(f"push still rejected after {attempts} attempts")
    return published.commit
