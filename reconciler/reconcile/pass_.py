"""One reconcile pass, top to bottom, as the README tells it:

1. sync the work tree to the remote branch (hard reset: a half-done pass is discarded);
2. load and validate the config;
3. poll the feeds that enabled triggers watch (polling.py);
4. plan releases (planning.py) and lifecycle promotions (lifecycle.py), and observe
   what people changed by hand (drift.py);
5. write release records, state files and environments' files (apply.py);
6. commit once and push without force; on a moved remote rebase, or plan again on the
   new head with the same polls, a bounded number of times (publish.py);
7. propose pull-request promotions (proposals.py), keep the work dir's state
   (workstate.py), count and notify.

The pass is all-or-nothing: a process killed anywhere leaves at most a local, unpushed
state that the next pass's sync discards, so releases are never lost or duplicated.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from reconciler import records
from reconciler.announce import announce, remember_refusals
from reconciler.config import grants_stamp, load_config_cached
from reconciler.errors import ConfigError, GitError
from reconciler.feeds import FeedClient
from reconciler.gitrepo import WorkTree
from reconciler.model import Config, Project
from reconciler.notify import NotificationTarget, Notifier
from reconciler.planning import PackageChoice
from reconciler.publish import guarded_paths, hook, publish
from reconciler.pullrequests import host_for
from reconciler.pullrequests.client import DEFAULT_TOKEN_ENV
from reconciler.reconcile import drift
from reconciler.reconcile.apply import apply_all
from reconciler.reconcile.memo import ProjectMemo
from reconciler.reconcile.polling import Poller
from reconciler.reconcile.proposals import propose
from reconciler.reconcile.report import PassResult, commit_message
from reconciler.reconcile.workstate import LocalState, Workspace
from reconciler.verify.probes import git_host_statuses
from reconciler.verify.runner import Verifier

if TYPE_CHECKING:  # the sidecar's; a one-shot pass need not import prometheus or watchdog
    from reconciler.loop import Backoff
    from reconciler.metrics import Metrics

__all__ = [
    "Injected",
    "PassOptions",
    "PassSettings",
    "Reconciler",
    "Shard",
    "SidecarWiring",
    "channels_polled",
    "note_feed_errors",
]

log = logging.getLogger("reconciler.pass")


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def owns(self, project: str) -> bool:
        # crc32 is stable across processes and Python versions (hash() is salted).
        return zlib.crc32(project.encode()) % self.count == self.index

    @classmethod
    def parse(cls, text: str) -> Shard:
        index, _, count = text.partition("/")
        shard = cls(int(index), int(count))
        if not 0 <= shard.index < shard.count:
            raise ValueError(f"shard {text!r}: need INDEX/COUNT with 0 <= INDEX < COUNT")
        return shard


@dataclass(frozen=True)
class PassSettings:
    """What the operator sets (command line and environment)."""

    repo_url: str
    work_dir: Path
    branch: str | None = None  # default: reconciler.yaml's, else main
    author: tuple[str, str] | None = None
    git_env: Mapping[str, str] | None = None  # credentials for Git (never in the URL)
    feed_env: Mapping[str, str] | None = None  # where feed credentials are read from
    shard: Shard | None = None
    max_push_attempts: int = 5
    promote: bool = True  # run lifecycle promotions after creating releases


@dataclass
class Injected:
    """What tests inject: the one clock and the HTTP edges."""

    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    transport: httpx.BaseTransport | None = None
    pr_host: Any = None  # a pullrequests.PullRequestHost; default: from the repo URL
    notify_transport: httpx.BaseTransport | None = None  # where notifications go
    verifier: Any = None  # a verify.runner.Verifier; default: from the environment, when needed


@dataclass
class SidecarWiring:
    """What the sidecar (``reconciler run``) and progress-showing commands wire in."""

    metrics: Metrics | None = None  # count requests, releases, promotions
    backoff: Backoff | None = None  # per-feed retry delays across passes
    progress: Callable[[int, int], None] | None = None  # (done, total) repositories polled


@dataclass
class PassOptions:
    """How passes run: the operator's settings, what tests inject, the sidecar's wiring."""

    settings: PassSettings
    injected: Injected = field(default_factory=Injected)
    sidecar: SidecarWiring = field(default_factory=SidecarWiring)


class Reconciler:
    """Runs passes against one config repository; keeps feed clients between passes."""

    def __init__(self, options: PassOptions) -> None:
        self.options = options
        self.cache_dir = options.settings.work_dir / "cache"
        author = options.settings.author or ("reconciler", "reconciler@localhost")
        self.tree = WorkTree(
            options.settings.repo_url,
            options.settings.work_dir / "repo",
            options.settings.branch or "main",
            author=author,
            env=options.settings.git_env,
        )
        self.local = LocalState(self.cache_dir / "state.json")
        self.workspace = Workspace(self.tree, self.local)
        self.poller = Poller(
            self.tree.root,
            self.cache_dir,
            self.local,
            transport=options.injected.transport,
            feed_env=options.settings.feed_env,
            metrics=options.sidecar.metrics,
            backoff=options.sidecar.backoff,
            progress=options.sidecar.progress,
            wall=lambda: options.injected.clock().timestamp(),
        )
        self.last_config: Config | None = None
        self._head = ""  # the commit the work tree was last synced to
        # The commit the work tree is known to be at, untouched since its sync (the
        # last pass changed and proposed nothing): the next sync need not check out.
        self._clean_at = ""
        self._config_key: tuple[str, Any] | None = None  # (head, grants) of last_config
        # Projects whose last pass changed nothing, replayed while nothing they
        # depend on moved (issue 22): ``run`` keeps one Reconciler between passes.
        self.memo = ProjectMemo()
        self.poller.memo = self.memo
        # Held by a pass and by a dashboard proposal: one at a time uses the work tree.
        self.work_lock = threading.Lock()
        self._notifier: Any = None

    @property
    def _clients(self) -> dict[str, tuple[Any, FeedClient]]:
        return self.poller._clients  # tests read the feed clients' request counters

    def close(self) -> None:
        if self._notifier is not None:
            self._notifier.close()
        self.poller.close()
        self.tree.close()

    def run_pass(
        self,
        *,
        dry_run: bool = False,
        only_projects: set[str] | None = None,
        recheck: frozenset[str] = frozenset(),
    ) -> PassResult:
        """One pass. ``recheck``: repositories whose cached digests must be re-read
        (a webhook said they changed)."""
        started = time.monotonic()
        result = PassResult()
        with self.work_lock:
            try:
                self._run(result, dry_run=dry_run, only_projects=only_projects, recheck=recheck)
            except GitError as exc:
                result.ok = False
                result.git_error = str(exc)
                log.error("git: %s", exc)
                # What polling learned (digests, Retry-After deadlines, creation times) is
                # about the registry, not the repository: keep it for the next pass.
                self.local.save()
            finally:
                result.duration = time.monotonic() - started
                self._count(result)
                if not dry_run:
                    self._notify(result)
        return result

    def propose_promotion(
        self, project: str, environment: str, version: str, *, by: str
    ) -> PassResult:
        """Open the pull request ``promotion: pull-request`` opens, for ``version`` of
        ``project`` into ``environment`` (the dashboard's "propose promotion" for a
        release waiting for a manual approval). The merge stays the approval."""
        result = PassResult(proposals=[(project, environment, version)])
        with self.work_lock:
            config = self.last_config
            if config is None or project not in config.projects:
                result.ok = False
                result.git_error = f"no project {project!r} in the last pass"
                return result
            try:
                self._sync()
                self._propose(config, result, self.options.injected.clock(), requested_by=by)
            except GitError as exc:
                result.ok = False
                result.git_error = str(exc)
            self.local.save()
        return result

    def can_open_pull_requests(self) -> bool:
        """Whether a Git host token is configured (or a test injected a host)."""
        env = self.options.settings.git_env or os.environ
        return self.options.injected.pr_host is not None or bool(
            env.get(DEFAULT_TOKEN_ENV) or env.get(f"{DEFAULT_TOKEN_ENV}_FILE")
        )

    def _notify(self, result: PassResult) -> None:
        """Tell people what happened (release, promotion, waiting, drift, failures)."""
        config = self.last_config
        if config is None or not config.settings.notifications:
            return
        targets = tuple(
            NotificationTarget(kind, url_env, events)  # type: ignore[arg-type]
            for kind, url_env, events in config.settings.notifications
        )
        if self._notifier is None or self._notifier.targets != targets:
            if self._notifier is not None:
                self._notifier.close()
            self._notifier = Notifier(targets, transport=self.options.injected.notify_transport)
            self._notifier.restore(self.local.data.get("activeFailures", []))
        seen = set(self.local.data.get("waitingAnnounced", []))
        refused = self.local.data.setdefault("refusalsAnnounced", {})
        out = announce(result, seen, refused)
        for note in out.notes:
            self._notifier.notify(note)
        for event, subject in self._notifier.active_failures():
            if (event, subject) not in out.failing:
                self._notifier.clear(event, subject)
        self.local.data["waitingAnnounced"] = sorted(out.waiting_seen)
        remember_refusals(refused, out.refused_seen, self.options.injected.clock().timestamp())
        self.local.data["activeFailures"] = self._notifier.remembered()
        self.local.save()

    def _count(self, result: PassResult) -> None:
        metrics = self.options.sidecar.metrics
        if metrics is None:
            return
        for release in result.releases if result.pushed else []:
            metrics.releases_created.labels(project=release.project, channel=release.channel).inc()
        for project, env, _ in result.promotions if result.pushed else []:
            metrics.promotions.labels(project=project, environment=env).inc()
        retries = max(result.push_attempts - 1, 0) + result.push_rebases
        if retries:
            metrics.git_push_retries.inc(retries)
        for feed, (error_class, _) in result.failed_feeds.items():
            metrics.feed_errors.labels(feed=feed, error=error_class).inc()
        for project, package, refusal in result.refusals():
            metrics.signature_refusals.labels(
                project=project, package=package, reason=refusal.kind
            ).inc()
        for verdict in result.verifications if result.pushed else []:
            metrics.verifications.labels(
                result=verdict.result, project=verdict.project, environment=verdict.environment
            ).inc()

    def _run(
        self,
        result: PassResult,
        *,
        dry_run: bool,
        only_projects: set[str] | None,
        recheck: frozenset[str],
    ) -> None:
        # 1. sync the repository
        self._sync()
        hook("after-sync")
        # 2. load and validate the config
        loaded = self._load(result)
        if loaded is None:
            return
        config = self.last_config = loaded
        self.memo.advance(self._head, config, self.tree.changed_paths)
        projects = self._projects(config, only_projects)
        # 3. poll the feeds the triggers watch
        choices = self.poller.poll(config, projects, channels_polled(config, projects), recheck)
        result.choices = choices
        hook("after-poll")
        note_feed_errors(config, choices, result)
        # 4-6. plan releases and promotions, write records and files, commit and push;
        # on a moved remote the plan is made again on the new head (polls reused).
        planned = result.mark()
        now = self.options.injected.clock()
        stop = False

        def plan(attempt: int) -> str | None:
            nonlocal config, projects, now, stop
            if attempt > 1:
                # A fresh plan on the new head: nothing of the lost plan may remain.
                result.rewind(planned)
                result.project_errors.clear()
                result.ok = not result.feed_errors
                result.commit = None
                reloaded = self._load(result, quiet=True)
                if reloaded is None:
                    stop = True
                    return None
                config, projects = reloaded, self._projects(reloaded, only_projects)
                self.memo.advance(self._head, config, self.tree.changed_paths)
            now = self.options.injected.clock()
            changed = apply_all(
                self.workspace,
                config,
                projects,
                choices,
                now,
                result,
                write=not dry_run,
                promoting=self.options.settings.promote,
                verifier=self._verifier,
                memo=None if dry_run else self.memo,
            )
            if not changed or dry_run:
                return None
            # Counted before the push: a push that fails outright (a hook's refusal)
            # still reports the one attempt it made.
            result.push_attempts = attempt
            return commit_message(config, result)

        published = publish(
            self.tree,
            plan,
            attempts=self.options.settings.max_push_attempts,
            is_guarded=guarded_paths(config),
            sync=self._sync,
        )
        committed = published.outcome in ("pushed", "rejected")
        result.push_attempts = published.attempts - (0 if committed else 1)
        result.push_rebases = published.rebases
        result.commit = published.commit
        if stop:
            return
        if published.outcome == "rejected":
            result.ok = False
            result.git_error = (
                f"push still rejected after {self.options.settings.max_push_attempts} plans"
                f" and {result.push_rebases} rebases"
            )
            return
        result.pushed = published.outcome == "pushed"
        if not dry_run:
            self.memo.commit()
        if published.outcome == "unchanged" and not result.proposals:
            # Nothing was written, committed or proposed (``_propose`` does nothing
            # without proposals): the tree is still the commit it was synced to.
            self._clean_at = self._head if not result.project_errors else ""
        # 7. propose pull-request promotions; keep what this pass decided
        if published.outcome != "empty" and not dry_run:
            self._propose(config, result, now)
        if result.pushed:
            self._remember_deployed(config, result)
        # A dry run only looks: its decisions are no history, and one that
        # "would release" must not clear a settle window.
        self._save_local(result, choices, now, record=not dry_run)

    def _sync(self) -> None:
        """Sync the work tree; a remote without the branch is an error, not an empty
        config: a mistyped ``--branch`` or an empty repository must not look "ok"."""
        clean_at, self._clean_at = self._clean_at, ""
        self._head = self.tree.sync(clean_at=clean_at)
        if not self._head:
            raise GitError(
                f"{self.tree.url} has no branch {self.tree.branch!r}: nothing to reconcile"
                " (check --branch, or push the config first)"
            )

    def _verifier(self) -> Verifier:
        """The verifier of environments with ``verify``, made when first needed."""
        if self.options.injected.verifier is None:
            http = httpx.Client(timeout=10.0)
            environ = dict(os.environ)
            statuses = git_host_statuses(self.options.settings.repo_url, environ, http)
            self.options.injected.verifier = Verifier.from_environment(http, environ, statuses)
        verifier: Verifier = self.options.injected.verifier
        return verifier

    def _load(self, result: PassResult, *, quiet: bool = False) -> Config | None:
        """The config at the current head (None, recorded in ``result``, when invalid)."""
        key = (self._head, grants_stamp())
        if self.last_config is not None and self._config_key == key:
            # The tree is the very commit the last valid config was read from (a sync
            # leaves nothing else in it) and the operator's grants are the same: the
            # cache below would find every file unchanged, after reading them all.
            config: Config = self.last_config
            self.configure_tree(config)
            return config
        self._config_key = None
        try:
            config = load_config_cached(self.tree.root, self.cache_dir / "config.pickle")
        except ConfigError as exc:
            result.ok = False
            result.config_error = exc
            if not quiet:
                log.error("config invalid:\n%s", exc)
            return None
        self._config_key = key
        self.configure_tree(config)
        return config

    def _propose(
        self, config: Config, result: PassResult, now: datetime, requested_by: str | None = None
    ) -> None:
        def host() -> Any:
            if self.options.injected.pr_host is not None:
                return self.options.injected.pr_host
            return host_for(self.options.settings.repo_url, env=self.options.settings.git_env)

        propose(self.workspace, config, result, now, host, requested_by=requested_by)

    def configure_tree(self, config: Config) -> None:
        """Commit as reconciler.yaml's author unless the operator named one."""
        if self.options.settings.author is None:
            self.tree.author = (config.settings.author_name, config.settings.author_email)

    def _projects(self, config: Config, only: set[str] | None) -> list[Project]:
        shard = self.options.settings.shard
        return [
            p
            for name, p in sorted(config.projects.items())
            if (only is None or name in only) and (shard is None or shard.owns(name))
        ]

    def _remember_deployed(self, config: Config, result: PassResult) -> None:
        """The overlays this pushed pass rendered, noted as in sync with their releases
        in the work dir, so the next pass does not parse them again (issue 22)."""
        for project_name, env_name, version in result.promotions:
            project = config.projects[project_name]
            release = records.read_release(self.tree.root, project_name, version)
            if release is not None:
                drift.remember_deployed(self.workspace, project, env_name, release)

    def _save_local(
        self,
        result: PassResult,
        choices: Mapping[tuple[str, str], Any],
        now: datetime,
        *,
        record: bool = True,
    ) -> None:
        for decision in result.decisions if record else ():
            found = {
                name: c.tag
                for name, c in choices.get((decision.project, decision.channel), {}).items()
            }
            self.local.record(decision, now, found)
            self.local.set_settle(decision.trigger, decision.settle)
        self.local.save()


def channels_polled(config: Config, projects: Iterable[Project]) -> dict[str, set[str]]:
    """project -> the channels an enabled trigger watches (what polling must answer)."""
    channel_of: dict[str, set[str]] = {p.name: set() for p in projects}
    for trigger in config.triggers.values():
        if trigger.enabled and trigger.project in channel_of:
            channel_of[trigger.project].add(trigger.channel)
    return channel_of


def note_feed_errors(
    config: Config,
    choices: Mapping[tuple[str, str], Mapping[str, PackageChoice]],
    result: PassResult,
) -> None:
    """Record and log each failed feed (with its class and Retry-After) in ``result``."""
    for key, per_package in choices.items():
        for choice in per_package.values():
            if choice.error:
                result.feed_errors[f"{key[0]}/{choice.package}"] = choice.error
                feed = config.projects[key[0]].package(choice.package).feed
                result.failed_feeds[feed] = (choice.error_class or "unavailable", choice.error)
                delay = max(choice.retry_after or 0.0, result.retry_after.get(feed, 0.0))
                result.retry_after[feed] = round(delay, 1)
    for feed, (error_class, error) in sorted(result.failed_feeds.items()):
        log.warning("feed %s failed (%s): %s", feed, error_class, error,
                    extra={"feed": feed})  # fmt: skip
    if result.feed_errors:
        result.ok = False
