"""One reconcile pass: sync -> load config -> poll feeds -> plan -> render -> commit -> push.

The pass is all-or-nothing: files are written into a work tree that was hard-reset
to the remote branch, committed as ONE commit and pushed without force. If the push
is rejected because someone else pushed first, the tree is re-synced and the plan is
recomputed on the new head (the polls are reused), a bounded number of times. A
process killed anywhere leaves at most a local, unpushed state that the next pass's
sync discards, so releases are never lost or duplicated.

Local, non-Git bookkeeping (settle windows, trigger history for ``explain``) lives in
``<work dir>/cache/``: polling must not produce commits.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import logging
import os
import posixpath
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from reconciler import environments, records, rendering, safepaths, source_stamp, templates
from reconciler.config import CONFIG_DIRS, SETTINGS_FILE, load_config_cached
from reconciler.errors import (
    ConfigError,
    FeedError,
    FeedNotFound,
    FeedRateLimited,
    GitError,
    PushRejected,
    ReconcilerError,
)
from reconciler.feeds import FeedClient, open_feed
from reconciler.feeds._http import feed_transport
from reconciler.gitrepo import WorkTree
from reconciler.lifecycle import (
    MANUAL_APPROVAL_PENDING,
    NO_VERIFICATION,
    Decision,
    Verifications,
    current_release,
    decide,
)
from reconciler.model import (
    COMMIT_VARIABLES,
    Config,
    Deployment,
    Feed,
    Project,
    Release,
    ReleasedPackage,
    VersionRule,
    project_lifecycle,
)
from reconciler.operations import read_pins, release_states
from reconciler.planning import (
    PackageChoice,
    SettleState,
    TriggerDecision,
    failed_choice,
    plan_release,
    rule_for,
)
from reconciler.selection import Candidate, Selection, select
from reconciler.verify.probes import git_host_statuses
from reconciler.verify.runner import Verifier
from reconciler.verify.stage import Concluded, verify_project

if TYPE_CHECKING:  # the sidecar's; a one-shot pass need not import prometheus or watchdog
    from reconciler.loop import Backoff
    from reconciler.metrics import Metrics

log = logging.getLogger("reconciler.pass")

HOOK_ENV = "RECONCILER_TEST_HOOK"
"""Test-only: name of a pass step at which the process kills itself (crash tests)."""

MAX_RETRY_AFTER = 3600.0
"""A registry's Retry-After is honoured up to an hour (as by the sidecar's backoff):
one bad header must not park a feed for days, across restarts least of all."""


@dataclass(frozen=True)
class _Guarded:
    files: frozenset[str]
    folders: tuple[str, ...]  # with a trailing "/"


def _guarded_paths(config: Config) -> _Guarded:
    """What a pass reads or writes: config, records, state, pins, every environment's
    overlay folder and rendering targets. A concurrent change to any of them means
    the plan may be stale."""
    folders = [f"{d}/" for d in (*CONFIG_DIRS, "releases", "state", "pins")]
    files = {SETTINGS_FILE}
    for project in config.projects.values():
        for env in project.environments.values():
            folders.append(posixpath.normpath(env.overlay) + "/")
            files.update(posixpath.normpath(target.file) for target in env.targets)
    return _Guarded(frozenset(files), tuple(folders))


def _trusted(pkg: Any, rule: VersionRule, recheck: frozenset[str]) -> bool:
    """Whether answers kept about this package's tags (digests, platforms, creation
    times) hold: not when a webhook named its repository, nor for a moving tag."""
    return pkg.repository not in recheck and rule.strategy != "digest"


def _followed_tags(
    config: Config, projects: Iterable[Project], channel_of: Mapping[str, set[str]]
) -> dict[tuple[str, str], set[str]]:
    """OCI repositories that every polling package follows with the ``digest``
    strategy, with the tags followed: their tag lists are not needed, only the
    followed tags' digests (one manifest HEAD each, not a tags/list as well)."""
    followed: dict[tuple[str, str], set[str]] = {}
    listed: set[tuple[str, str]] = set()
    for project in projects:
        for pkg in project.packages:
            key = (pkg.feed, pkg.repository)
            for channel in channel_of.get(project.name, ()):
                rule = rule_for(project, channel, pkg.name)
                if rule.strategy == "digest" and rule.tag and config.feeds[pkg.feed].type == "oci":
                    followed.setdefault(key, set()).add(rule.tag)
                else:
                    listed.add(key)
    return {key: tags for key, tags in followed.items() if key not in listed}


def _head_followed(
    client: FeedClient, key: tuple[str, str], tags: set[str], fresh: dict[str, str | None]
) -> list[str]:
    """The followed tags that exist, with their digests put in ``fresh``; when one is
    not found, the real tag list (so selection explains what is there instead)."""
    feed, repository = key
    for tag in sorted(tags):
        try:
            fresh[f"{feed}|{repository}|{tag}"] = client.digest(repository, tag)
        except FeedNotFound:
            return client.list_tags(repository)
    return sorted(tags)


def _hook(step: str) -> None:
    if os.environ.get(HOOK_ENV) == step:
        os.kill(os.getpid(), 9)


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


@dataclass
class PassOptions:
    repo_url: str
    work_dir: Path
    branch: str | None = None  # default: reconciler.yaml's, else main
    author: tuple[str, str] | None = None
    git_env: Mapping[str, str] | None = None
    feed_env: Mapping[str, str] | None = None
    transport: httpx.BaseTransport | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    shard: Shard | None = None
    max_push_attempts: int = 5
    promote: bool = True  # run lifecycle promotions after creating releases
    metrics: Metrics | None = None  # sidecar mode: count requests, releases, promotions
    backoff: Backoff | None = None  # sidecar mode: per-feed retry delays across passes
    pr_host: Any = None  # a pullrequests.PullRequestHost; default: from the repo URL
    notify_transport: httpx.BaseTransport | None = None  # tests: where notifications go
    progress: Callable[[int, int], None] | None = None  # (done, total) repositories polled
    verifier: Any = None  # a verify.runner.Verifier; default: from the environment, when needed


@dataclass(frozen=True)
class AutomaticDeployment:
    """One automatic promotion of a pass, for the commit message."""

    project: str
    environment: str
    before: str | None  # the release the environment ran (None: its first deployment)
    release: str
    phase: str
    changes: list[tuple[str, str | None, str]]  # (package, old version, new version)


@dataclass
class PassResult:
    """What a pass did. ``ok`` is False when something failed (and was recorded)."""

    ok: bool = True
    commit: str | None = None
    pushed: bool = False
    releases: list[Release] = field(default_factory=list)
    promotions: list[tuple[str, str, str]] = field(default_factory=list)  # project, env, version
    decisions: list[TriggerDecision] = field(default_factory=list)
    waiting: list[tuple[str, str, str]] = field(default_factory=list)  # project, env, reason
    feed_errors: dict[str, str] = field(default_factory=dict)  # project/package -> error
    failed_feeds: dict[str, tuple[str, str]] = field(default_factory=dict)  # feed -> class, why
    retry_after: dict[str, float] = field(default_factory=dict)  # failed feed -> seconds to wait
    config_error: ConfigError | None = None
    git_error: str | None = None
    push_attempts: int = 0  # plans pushed (more than one: the remote moved under us)
    push_rebases: int = 0  # pushes retried after rebasing over unrelated commits
    duration: float = 0.0
    files_changed: list[str] = field(default_factory=list)
    choices: dict[tuple[str, str], dict[str, PackageChoice]] = field(default_factory=dict)
    adopted: list[tuple[str, str, str, str]] = field(default_factory=list)  # proj, env, rel, who
    proposals: list[tuple[str, str, str]] = field(default_factory=list)  # proj, env, release
    pull_requests: list[dict[str, Any]] = field(default_factory=list)  # opened/kept/closed
    drift: list[tuple[str, str, str, str]] = field(default_factory=list)  # proj, env, policy, why
    project_errors: dict[str, str] = field(default_factory=dict)  # project -> why it was skipped
    deployments: list[AutomaticDeployment] = field(default_factory=list)
    verifications: list[Concluded] = field(default_factory=list)  # verdicts reached this pass
    rollbacks: list[tuple[str, str, str, str]] = field(default_factory=list)  # p, env, from, to
    wake_at: datetime | None = None  # when time alone changes a decision (soak, freeze, poll)

    _PER_PROJECT = ("releases", "promotions", "decisions", "waiting", "files_changed",
                    "adopted", "proposals", "drift", "deployments", "verifications",
                    "rollbacks")  # fmt: skip

    def mark(self) -> dict[str, int]:
        """Where each per-project list ends now (see :meth:`rewind`)."""
        return {name: len(getattr(self, name)) for name in self._PER_PROJECT}

    def rewind(self, mark: dict[str, int]) -> None:
        """Forget what was added since ``mark``: a project that failed half-way."""
        for name, length in mark.items():
            del getattr(self, name)[length:]

    def to_json(self, *, candidates: bool = False) -> dict[str, Any]:
        """The pass as JSON; ``candidates`` adds each package's accepted and rejected
        tags with reasons (``plan``: costs a full selection per package)."""
        return {
            "ok": self.ok,
            "commit": self.commit,
            "pushed": self.pushed,
            "releases": [_release_json(r) for r in self.releases],
            "promotions": [
                {"project": p, "environment": e, "release": v} for p, e, v in self.promotions
            ],
            "triggers": [
                {
                    "trigger": d.trigger,
                    "project": d.project,
                    "channel": d.channel,
                    "release": d.release.version if d.release else None,
                    "reason": d.reason,
                    "changes": [{"package": p, "from": o, "to": n} for p, o, n in d.changes],
                    "packages": _choices_json(
                        self.choices.get((d.project, d.channel), {}), candidates
                    ),
                }
                for d in self.decisions
            ],
            "waiting": [{"project": p, "environment": e, "reason": r} for p, e, r in self.waiting],
            "feedErrors": self.feed_errors,
            "feedRetryAfterSeconds": self.retry_after,
            "projectErrors": self.project_errors,
            "configErrors": [str(p) for p in self.config_error.problems]
            if self.config_error
            else [],
            "gitError": self.git_error,
            "pushAttempts": self.push_attempts,
            "pushRebases": self.push_rebases,
            "pullRequests": self.pull_requests,
            "verifications": [
                {
                    "project": v.project,
                    "environment": v.environment,
                    "release": v.release,
                    "result": v.result,
                    "at": records.iso(v.at),
                    "reason": v.reason,
                }
                for v in self.verifications
            ],
            "rollbacks": [
                {"project": p, "environment": e, "from": f, "to": t}
                for p, e, f, t in self.rollbacks
            ],
            "wakeAt": records.iso(self.wake_at) if self.wake_at else None,
            "filesChanged": self.files_changed,
            "durationSeconds": round(self.duration, 3),
        }


CANDIDATES_SHOWN = 20
"""Accepted / rejected tags listed per package in JSON output (the counts are exact)."""


def _choices_json(choices: Mapping[str, PackageChoice], candidates: bool) -> dict[str, Any]:
    """Per package: the chosen tag or the feed error, and with ``candidates`` the best
    accepted tags and the rejected ones with their reasons (what ``explain`` prints)."""
    out: dict[str, Any] = {}
    for name, choice in sorted(choices.items()):
        entry: dict[str, Any] = {"chosen": choice.tag, "digest": choice.digest}
        if choice.error:
            entry["error"] = choice.error
        selection = choice.selection
        if candidates and selection is not None:
            entry["accepted"] = list(selection.accepted[:CANDIDATES_SHOWN])
            entry["acceptedCount"] = len(selection.accepted)
            entry["rejected"] = [
                {"tag": c.tag, "reason": c.reason} for c in selection.rejected[:CANDIDATES_SHOWN]
            ]
            entry["rejectedCount"] = len(selection.rejected)
        out[name] = entry
    return out


def _release_json(release: Release) -> dict[str, Any]:
    return {
        "project": release.project,
        "version": release.version,
        "channel": release.channel,
        "trigger": release.trigger,
        "packages": {p.name: {"version": p.version, "digest": p.digest} for p in release.packages},
    }


@functools.cache
def _selection_stamp() -> str:
    return source_stamp("model", "selection", "userregex", "versions")


class _SelectionCache:
    """Remembers each package's chosen tag across passes, in the work dir.

    Selection parses and judges every tag (most of a warm pass at 100,000 tags);
    with the same tag list, rule and current tag the answer cannot differ, so it
    is reused and the per-tag reasons are only computed if someone asks for them
    (``explain``, a plan that finds nothing). ``newest-build`` depends on
    creation times as well and is never cached.
    """

    def __init__(self, store: dict[str, list[Any]]) -> None:
        self.store = store
        self.used: set[str] = set()
        self._fingerprints: dict[int, str] = {}

    def _fingerprint(self, tags: list[str]) -> str:
        known = self._fingerprints.get(id(tags))  # one list per repository per pass
        if known is None:
            # JSON keeps tag boundaries unambiguous (a joined string would not,
            # for tags with newlines); a reordered list is only a cache miss.
            encoded = json.dumps(tags, ensure_ascii=True).encode()
            known = hashlib.sha256(encoded).hexdigest()
            self._fingerprints[id(tags)] = known
        return known

    def select(
        self, pkg: Any, rule: VersionRule, tags: list[str], current: str | None
    ) -> Selection:
        if rule.strategy == "newest-build":
            return select(rule, tags, current=current, kind=pkg.kind)
        rule_id = hashlib.sha256(f"{_selection_stamp()}|{rule!r}|{current}".encode()).hexdigest()[
            :24
        ]
        key = f"{pkg.feed}|{pkg.repository}|{rule_id}"
        self.used.add(key)
        fingerprint = self._fingerprint(tags)
        cached = self.store.get(key)
        if cached is not None and cached[0] == fingerprint:
            return Selection(
                cached[1], detail=lambda: select(rule, tags, current=current, kind=pkg.kind)
            )
        selection = select(rule, tags, current=current, kind=pkg.kind)
        self.store[key] = [fingerprint, selection.chosen]
        return selection

    def forget_unused(self, polled: set[str]) -> None:
        """Drop entries of polled repositories that no package used this pass."""
        for key in [k for k in self.store if k not in self.used]:
            if key[: key.rindex("|") + 1] in polled:
                del self.store[key]


class LocalState:
    """The work dir's JSON bookkeeping: settle windows and trigger history."""

    HISTORY = 20

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"settle": {}, "history": {}}
        with contextlib.suppress(OSError, ValueError):  # missing or damaged: start afresh
            self.data = json.loads(path.read_text())

    def settle(self, trigger: str) -> SettleState | None:
        raw = self.data.get("settle", {}).get(trigger)
        if not raw:
            return None
        return SettleState(
            tuple(tuple(x) for x in raw["candidate"]),
            datetime.fromisoformat(raw["first_seen"]),
            datetime.fromisoformat(raw["last_change"]),
        )

    def set_settle(self, trigger: str, state: SettleState | None) -> None:
        settle = self.data.setdefault("settle", {})
        if state is None:
            settle.pop(trigger, None)
        else:
            settle[trigger] = {
                "candidate": [list(x) for x in state.candidate],
                "first_seen": state.first_seen.isoformat(),
                "last_change": state.last_change.isoformat(),
            }

    def record(self, decision: TriggerDecision, when: datetime, found: dict[str, Any]) -> None:
        entries = self.data.setdefault("history", {}).setdefault(decision.trigger, [])
        entries.append(
            {
                "at": when.isoformat(),
                "release": decision.release.version if decision.release else None,
                "reason": decision.reason,
                "found": found,
            }
        )
        del entries[: -self.HISTORY]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)


class Reconciler:
    """Runs passes against one config repository; keeps feed clients between passes."""

    def __init__(self, options: PassOptions) -> None:
        self.options = options
        self.cache_dir = options.work_dir / "cache"
        author = options.author or ("reconciler", "reconciler@localhost")
        self.tree = WorkTree(
            options.repo_url,
            options.work_dir / "repo",
            options.branch or "main",
            author=author,
            env=options.git_env,
        )
        self._clients: dict[str, tuple[Any, FeedClient]] = {}
        self.local = LocalState(self.cache_dir / "state.json")
        self.last_config: Config | None = None
        self._notifier: Any = None
        self._recheck_after = 3600.0  # reconciler.yaml's digestRecheck, set by each poll

    def close(self) -> None:
        if self._notifier is not None:
            self._notifier.close()
        for _, client in self._clients.values():
            client.close()
        self._clients.clear()
        self.tree.close()

    # -- feeds -----------------------------------------------------------------

    def _client(self, config: Config, name: str) -> FeedClient:
        feed = config.feeds[name]
        cached = self._clients.get(name)
        if cached and cached[0] == feed:
            return cached[1]
        if cached:
            cached[1].close()
        client = open_feed(
            feed,
            base_dir=self.tree.root,
            state_dir=self.cache_dir / "feeds",
            transport=self._transport(feed),
            env=self.options.feed_env,
        )
        self._clients[name] = (feed, client)
        return client

    def _transport(self, feed: Feed) -> httpx.BaseTransport | None:
        """The injected transport (tests), or an instrumented one when metrics are on."""
        metrics = self.options.metrics
        inner = self.options.transport
        if metrics is None or feed.type == "oci-layout":
            return inner
        if inner is None:
            concurrency = max(1, feed.limits.concurrency)
            inner = feed_transport(
                feed,
                concurrency=concurrency,
                http2=importlib.util.find_spec("h2") is not None,
                env=self.options.feed_env,
            )
        from reconciler.metrics import InstrumentedTransport  # sidecar only: prometheus

        return InstrumentedTransport(inner, metrics, feed.name)

    def poll(
        self,
        config: Config,
        projects: Iterable[Project],
        channel_of: Mapping[str, set[str]],
        recheck: frozenset[str] = frozenset(),
    ) -> dict[tuple[str, str], dict[str, PackageChoice]]:
        """For each (project, channel), each package's chosen tag. Feeds in parallel."""
        self._recheck_after = config.settings.digest_recheck
        wanted: set[tuple[str, str]] = set()  # (feed, repository)
        for project in projects:
            for pkg in project.packages:
                wanted.add((pkg.feed, pkg.repository))
        followed = _followed_tags(config, projects, channel_of)
        fresh: dict[str, str | None] = {}  # digests asked this pass (feed|repository|tag)
        tags: dict[tuple[str, str], list[str] | FeedError] = {}

        done = [0]
        progress_lock = threading.Lock()
        backoff = self.options.backoff
        waiting_feeds = {
            name
            for name in {f for f, _ in wanted}
            if backoff is not None and not backoff.ready(name, time.monotonic())
        }
        # A registry's Retry-After outlives the process (a cron-style `once` included):
        # deadlines are kept in the work dir as wall-clock times.
        deadlines: dict[str, float] = self.local.data.setdefault("retryAfter", {})
        now_wall = time.time()
        for name, deadline in list(deadlines.items()):
            # Passed, for a feed that is gone, or further than any deadline we store
            # (the wall clock was set back): forget it.
            if not now_wall < deadline <= now_wall + MAX_RETRY_AFTER or name not in config.feeds:
                del deadlines[name]
        for table in ("platforms", "created"):  # answers about tags not asked for a week
            kept: dict[str, list[Any]] = self.local.data.setdefault(table, {})
            for key in [k for k, (_, when) in kept.items() if now_wall - when > 7 * 86400]:
                del kept[key]

        def fetch(key: tuple[str, str]) -> None:
            feed, repository = key
            if feed in deadlines:
                remaining = deadlines[feed] - now_wall
                tags[key] = FeedRateLimited(
                    feed,
                    f"rate limited by the registry; next request allowed in {remaining:.0f} s",
                    retry_after=remaining,
                )
                return
            if feed in waiting_feeds:
                assert backoff is not None
                remaining = backoff.remaining(feed, time.monotonic())
                tags[key] = FeedError(
                    feed,
                    f"backing off after earlier failures; next try in {remaining:.0f} s",
                    retry_after=remaining,
                )
                return
            try:
                client = self._client(config, feed)
                if key in followed:  # only moving tags followed: their digests are the news
                    tags[key] = _head_followed(client, key, followed[key], fresh)
                else:
                    tags[key] = client.list_tags(repository)
            except FeedError as exc:
                tags[key] = exc
            except (OSError, ValueError) as exc:  # defensive: never let one feed stop a pass
                tags[key] = FeedError(feed, f"{type(exc).__name__}: {exc}")
            finally:
                if self.options.progress is not None:
                    with progress_lock:
                        done[0] += 1
                        self.options.progress(done[0], len(wanted))

        for name in {f for f, _ in wanted}:
            self._client(config, name)  # create clients serially (not thread-safe to create)
        workers = max(1, min(32, len(wanted)))
        with ThreadPoolExecutor(workers, thread_name_prefix="poll") as pool:
            list(pool.map(fetch, sorted(wanted)))

        def keep_deadline(feed: str, retry_after: float) -> None:
            deadline = now_wall + min(retry_after, MAX_RETRY_AFTER)
            deadlines[feed] = max(deadlines.get(feed, 0.0), deadline)

        for (feed, _), found in tags.items():
            if isinstance(found, FeedRateLimited) and feed not in deadlines:
                keep_deadline(feed, found.retry_after)
        if backoff is not None:
            failed: dict[str, FeedError] = {}
            for (feed, _), found in tags.items():
                if isinstance(found, FeedError) and feed not in waiting_feeds:
                    failed.setdefault(feed, found)
            for name in {f for f, _ in wanted} - waiting_feeds:
                if name in failed:
                    backoff.failure(name, time.monotonic(), failed[name].retry_after)
                else:
                    backoff.success(name)

        result: dict[tuple[str, str], dict[str, PackageChoice]] = {}
        jobs: list[tuple[tuple[str, str], str, Any]] = []
        remembered = _SelectionCache(self.local.data.setdefault("selections", {}))
        for project in projects:
            try:
                state = records.read_state(self.tree.root, project.name)
                previous_of = {
                    channel: _previous_release(self.tree.root, project, channel, state)
                    for channel in channel_of[project.name]
                }
            except ReconcilerError:
                continue  # an unreadable record: the project is skipped (and says why) later
            for channel in sorted(channel_of[project.name]):
                previous = previous_of[channel]
                choices: dict[str, PackageChoice] = {}
                for pkg in project.packages:
                    found = tags[(pkg.feed, pkg.repository)]
                    if isinstance(found, FeedError):
                        choices[pkg.name] = failed_choice(pkg.name, found)
                        continue
                    rule = rule_for(project, channel, pkg.name)
                    prev = previous.package(pkg.name) if previous else None
                    current = prev.version if prev else None
                    if current is None and rule.strategy == "suffix":
                        current = self._deployed_tag(project, pkg.name)
                    selection = remembered.select(pkg, rule, found, current)
                    trusted = _trusted(pkg, rule, recheck)
                    created: dict[str, datetime] = {}
                    if rule.strategy == "newest-build" and selection.needs_metadata:
                        client = self._client(config, pkg.feed)
                        for tag in selection.needs_metadata:
                            try:
                                when = self._created(client, pkg, tag, rule.platform, trust=trusted)
                            except FeedError as exc:
                                choices[pkg.name] = failed_choice(pkg.name, exc)
                                break
                            if when is not None:
                                created[tag] = when
                        if pkg.name in choices:
                            continue
                        selection = select(
                            rule, found, current=current, created=created, kind=pkg.kind
                        )
                    elif rule.platform and selection.chosen is not None:
                        try:
                            selection = self._on_platform(
                                config, pkg, rule, selection, trust=trusted
                            )
                        except FeedError as exc:
                            choices[pkg.name] = failed_choice(pkg.name, exc)
                            continue
                    built = created.get(selection.chosen) if selection.chosen else None
                    choices[pkg.name] = PackageChoice(
                        pkg.name, selection.chosen, None, selection, built=built
                    )
                    if selection.chosen is not None:
                        # The digest the channel's release holds for this very tag: a
                        # kept answer that disagrees with it is asked again, so a stale
                        # cache never passes for new content (writers would flip-flop).
                        same = prev is not None and prev.version == selection.chosen
                        released = prev.digest if prev is not None and same else None
                        jobs.append(
                            ((project.name, channel), pkg.name, (pkg, selection.chosen, released))
                        )
                result[(project.name, channel)] = choices

        # Digests of chosen tags are cached in the work dir, so an idle pass sends no
        # manifest requests. A cached answer is re-checked after `digestRecheck`, when a
        # webhook named the repository, and always for the `digest` strategy (whose whole
        # point is a tag that moves).
        cache: dict[str, list[Any]] = self.local.data.setdefault("digests", {})

        def resolve(job: tuple[tuple[str, str], str, Any]) -> None:
            key, name, (pkg, tag, released) = job
            old = result[key][name]
            client = self._client(config, pkg.feed)
            rule = rule_for(config.projects[key[0]], key[1], name)
            at = f"{pkg.feed}|{pkg.repository}|{tag}"
            try:
                digest = self._kept_answer(
                    "digests",
                    at,
                    lambda: fresh[at] if at in fresh else client.digest(pkg.repository, tag),
                    trust=_trusted(pkg, rule, recheck),
                    expect=released,
                )
            except FeedError as exc:
                result[key][name] = failed_choice(name, exc)
                return
            result[key][name] = replace(old, digest=digest)

        with ThreadPoolExecutor(workers, thread_name_prefix="digest") as pool:
            list(pool.map(resolve, jobs))
        chosen = {f"{pkg.feed}|{pkg.repository}|{tag}" for _, _, (pkg, tag, _) in jobs}
        # Only repositories that answered: a feed that failed (a 429 included) keeps
        # its answers for the pass after, which then asks no more than it must.
        polled = {f"{f}|{r}|" for (f, r), found in tags.items() if not isinstance(found, FeedError)}
        for stale in [k for k in cache if k not in chosen and k[: k.rindex("|") + 1] in polled]:
            del cache[stale]  # keep only what the current choices need
        remembered.forget_unused(polled)
        for (project_name, _), per_package in result.items():  # 429s on manifest requests
            for choice in per_package.values():
                if choice.error_class == "rate-limited" and choice.retry_after:
                    feed = config.projects[project_name].package(choice.package).feed
                    keep_deadline(feed, choice.retry_after)
        return result

    def _kept_answer(
        self,
        table: str,
        key: str,
        ask: Callable[[], Any],
        *,
        trust: bool = True,
        expect: Any = None,
    ) -> Any:
        """An answer about a tag (JSON-able) kept in the work dir's ``table``, asked
        again after ``digestRecheck`` (a tag can be pushed again), always when not
        ``trust``ed (a webhook named the repository, or the rule follows a moving tag),
        and when it disagrees with ``expect`` (what the repository already records)."""
        known: dict[str, list[Any]] = self.local.data.setdefault(table, {})
        wall = time.time()
        cached = known.get(key)
        if (
            trust
            and cached is not None
            and wall - cached[1] < self._recheck_after
            and (expect is None or cached[0] == expect)
        ):
            return cached[0]
        answer = ask()
        known[key] = [answer, wall]
        return answer

    def _created(
        self, client: FeedClient, pkg: Any, tag: str, platform: str | None, *, trust: bool
    ) -> datetime | None:
        """An image's creation time, fetched once and kept in the work dir."""

        def ask() -> str | None:
            when = client.created(pkg.repository, tag, platform)
            return when.isoformat() if when is not None else None

        key = f"{pkg.feed}|{pkg.repository}|{tag}|{platform}"
        text = self._kept_answer("created", key, ask, trust=trust)
        return datetime.fromisoformat(text) if text else None

    def _on_platform(
        self, config: Config, pkg: Any, rule: VersionRule, selection: Selection, *, trust: bool
    ) -> Selection:
        """``selection`` narrowed to tags with an image for ``rule.platform``: the best
        accepted tag that has one (at most ``scanLimit`` tried, best first).

        Answers are kept in the work dir like digests (re-checked after
        ``digestRecheck``), so an idle pass sends no manifest requests for this.
        """
        assert rule.platform is not None
        client = self._client(config, pkg.feed)
        has_platform = getattr(client, "has_platform", None)
        if has_platform is None:  # a feed kind without platforms (OCI layout, Helm HTTP)
            return selection

        def supported(tag: str) -> bool:
            key = f"{pkg.feed}|{pkg.repository}|{tag}|{rule.platform}"
            return bool(
                self._kept_answer(
                    "platforms",
                    key,
                    lambda: has_platform(pkg.repository, tag, rule.platform),
                    trust=trust,
                )
            )

        if selection.chosen is not None and supported(selection.chosen):
            return selection  # the usual case: no per-tag detail needed
        refused: list[Candidate] = []
        for tag in selection.accepted[: max(1, rule.scan_limit)]:
            if supported(tag):
                kept = tuple(t for t in selection.accepted if t not in {c.tag for c in refused})
                return Selection(tag, kept, (*refused, *selection.rejected))
            refused.append(Candidate(tag, f"no image for platform {rule.platform}"))
        return Selection(None, (), (*refused, *selection.rejected))

    def _deployed_tag(self, project: Project, package: str) -> str | None:
        """The tag the environments' files hold now (first environment naming it).

        ``current`` before a channel's first release, so the suffix strategy keeps
        the variant already deployed (1.2-alpine -> 1.3-alpine, not 1.3).
        """
        pkg = project.package(package)
        artifact = rendering.Artifact(pkg.name, pkg.kind, pkg.manifest_name or pkg.repository, "0")
        for env_name in project.environments:  # config order: the first environment first
            for target in environments.targets_for(self.tree.root, project, env_name, [artifact]):
                if not safepaths.is_file(self.tree.root, target.file):
                    continue
                try:
                    found = rendering.current_versions(
                        target.kind,
                        environments.read_target(self.tree.root, target.file),
                        [artifact],
                        project=project.name,
                        file=target.file,
                        images=target.images,
                    )
                # Unreadable, undecodable or hostile file: no hint, not a failure
                # (rendering reports it properly when the file is written).
                except (ReconcilerError, OSError, ValueError, RecursionError):
                    continue
                if package in found and found[package].version:
                    return found[package].version
        return None

    # -- the pass ----------------------------------------------------------------

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

    def _notify(self, result: PassResult) -> None:
        """Tell people what happened (release, promotion, waiting, drift, failures)."""
        config = self.last_config
        if config is None or not config.settings.notifications:
            return
        from reconciler.announce import announce
        from reconciler.notify import NotificationTarget, Notifier

        targets = tuple(
            NotificationTarget(kind, url_env, events)  # type: ignore[arg-type]
            for kind, url_env, events in config.settings.notifications
        )
        if self._notifier is None or self._notifier.targets != targets:
            if self._notifier is not None:
                self._notifier.close()
            self._notifier = Notifier(targets, transport=self.options.notify_transport)
            self._notifier.restore(self.local.data.get("activeFailures", []))
        seen = set(self.local.data.get("waitingAnnounced", []))
        out = announce(result, seen)
        for note in out.notes:
            self._notifier.notify(note)
        for event, subject in self._notifier.active_failures():
            if (event, subject) not in out.failing:
                self._notifier.clear(event, subject)
        self.local.data["waitingAnnounced"] = sorted(out.waiting_seen)
        self.local.data["activeFailures"] = self._notifier.remembered()
        self.local.save()

    def _count(self, result: PassResult) -> None:
        metrics = self.options.metrics
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
        self._sync()
        _hook("after-sync")
        try:
            config = load_config_cached(self.tree.root, self.cache_dir / "config.pickle")
        except ConfigError as exc:
            result.ok = False
            result.config_error = exc
            log.error("config invalid:\n%s", exc)
            return
        self.configure_tree(config)
        self.last_config = config
        projects = self._projects(config, only_projects)
        channel_of: dict[str, set[str]] = {p.name: set() for p in projects}
        for trigger in config.triggers.values():
            if trigger.enabled and trigger.project in channel_of:
                channel_of[trigger.project].add(trigger.channel)
        choices = self.poll(config, projects, channel_of, recheck)
        result.choices = choices
        _hook("after-poll")
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

        planned = result.mark()
        for attempt in range(1, self.options.max_push_attempts + 1):
            if attempt > 1:
                # A fresh plan on the new head: nothing of the lost plan may remain.
                result.rewind(planned)
                result.project_errors.clear()
                result.ok = not result.feed_errors
                result.commit = None
                self._sync()
                try:
                    config = load_config_cached(self.tree.root, self.cache_dir / "config.pickle")
                except ConfigError as exc:
                    result.ok = False
                    result.config_error = exc
                    return
                projects = self._projects(config, only_projects)
            now = self.options.clock()
            changed = self._apply(config, projects, choices, now, result, write=not dry_run)
            if dry_run or not changed:
                if not dry_run:
                    self._pull_requests(config, result, now)
                # A dry run only looks: its decisions are no history, and one that
                # "would release" must not clear a settle window.
                self._save_local(result, choices, now, record=not dry_run)
                return
            _hook("after-write")
            sha = self.tree.commit(_commit_message(config, result))
            if not sha:
                self._save_local(result, choices, now)
                return
            result.commit = sha
            result.push_attempts = attempt  # counted only when there is a commit to push
            _hook("after-commit")
            if not self._push(config, result):
                log.warning("push rejected (remote moved); re-planning (attempt %d)", attempt)
                continue
            _hook("after-push")
            result.pushed = True
            self._pull_requests(config, result, now)
            self._save_local(result, choices, now)
            return
        result.ok = False
        result.git_error = (
            f"push still rejected after {self.options.max_push_attempts} plans"
            f" and {result.push_rebases} rebases"
        )

    def _sync(self) -> None:
        """Sync the work tree; a remote without the branch is an error, not an empty
        config: a mistyped ``--branch`` or an empty repository must not look "ok"."""
        if not self.tree.sync():
            raise GitError(
                f"{self.tree.url} has no branch {self.tree.branch!r}: nothing to reconcile"
                " (check --branch, or push the config first)"
            )

    def _push(self, config: Config, result: PassResult) -> bool:
        """Push the pass's commit. When the remote moved on only in files no pass
        depends on (docs, CI), rebase the commit onto it and push again; False when
        a re-plan is needed."""
        guarded = _guarded_paths(config)

        def is_guarded(path: str) -> bool:
            return path in guarded.files or path.startswith(guarded.folders)

        # One budget for the whole pass: rebases count against it too, so a busy
        # writer next to us cannot make a pass push max_push_attempts² times.
        while True:
            try:
                self.tree.push()
            except PushRejected:
                if result.push_rebases >= self.options.max_push_attempts:
                    return False
                if not self.tree.rebase_if_unrelated(is_guarded):
                    return False
                result.push_rebases += 1
                result.commit = self.tree.head()
                log.info("push rejected by unrelated commits: rebased, pushing again")
                continue
            return True

    def configure_tree(self, config: Config) -> None:
        if self.options.author is None:
            self.tree.author = (config.settings.author_name, config.settings.author_email)

    def _projects(self, config: Config, only: set[str] | None) -> list[Project]:
        shard = self.options.shard
        return [
            p
            for name, p in sorted(config.projects.items())
            if (only is None or name in only) and (shard is None or shard.owns(name))
        ]

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

    def _apply(
        self,
        config: Config,
        projects: list[Project],
        choices: Mapping[tuple[str, str], dict[str, PackageChoice]],
        now: datetime,
        result: PassResult,
        *,
        write: bool,
    ) -> bool:
        """Plan releases and promotions on the current tree; write files. True if changed."""
        changed = False
        with records.journal() as journal:
            for project in projects:
                mark, written = result.mark(), journal.mark()
                try:
                    changed |= self._apply_project(
                        config, project, choices, now, result, write=write
                    )
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
        return changed

    def _apply_project(
        self,
        config: Config,
        project: Project,
        choices: Mapping[tuple[str, str], dict[str, PackageChoice]],
        now: datetime,
        result: PassResult,
        *,
        write: bool,
    ) -> bool:
        """Plan and write one project's releases and promotions. True if changed."""
        root = self.tree.root
        changed = False
        state = records.read_state(root, project.name)
        changed |= self._observe(project, state, now, result, write=write)
        existing = set(records.release_versions(root, project.name))
        new_releases: dict[str, Release] = {}
        for trigger in sorted(
            (t for t in config.triggers.values() if t.project == project.name),
            key=lambda t: t.name,
        ):
            per_package = choices.get((project.name, trigger.channel))
            if per_package is None:
                continue
            previous = _previous_release(root, project, trigger.channel, state, new_releases)
            decision = plan_release(
                project,
                trigger,
                previous,
                per_package,
                existing,
                now,
                settle_state=self.local.settle(trigger.name),
                replaced=_replaced_digests(root, project.name, state, previous, per_package),
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
        if self.options.promote:
            changed |= self._promote(config, project, state, new_releases, now, result, write=write)
        if write and changed:
            text = records.state_to_text(state)
            if records.write_if_changed(root, records.state_path(project.name), text):
                result.files_changed.append(records.state_path(project.name))
        return changed

    def _observe(
        self,
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
        root = self.tree.root
        changed = False
        pins = read_pins(root, project.name)
        for env_name, env in sorted(project.environments.items()):
            current = state.current(env_name)
            reference = current or (state.recent[-1].version if state.recent else None)
            release = records.read_release(root, project.name, reference) if reference else None
            if release is None:
                continue
            fingerprint = environments.fingerprint(root, project, env_name, release)
            key = f"{project.name}/{env_name}"
            if self.local.data.get("observed", {}).get(key) == [current, fingerprint]:
                continue
            seen = environments.observe(root, project, env_name, release)
            if seen.matches and current is not None:
                self.local.data.setdefault("observed", {})[key] = [current, fingerprint]
                continue
            adopted = self._adopted(project, env_name, state, current)
            if current is None and adopted is None:
                # Never deployed by us and matching no release: the seed state, not drift.
                self.local.data.setdefault("observed", {})[key] = [current, fingerprint]
                continue
            author, sha = self._last_change(seen.files)
            proposal = self.local.data.get("pullRequests", {}).get(key)
            if adopted is not None and proposal and proposal["release"] == adopted:
                author = f"pull request #{proposal['number']}"
                proposal["state"] = "merged"
            if adopted is not None:
                log.info(
                    "%s/%s now runs %s (changed by %s in %s)",
                    project.name,
                    env_name,
                    adopted,
                    author,
                    sha[:10],
                )
                state.deploy(Deployment(env_name, adopted, now, author, automatic=False))
                result.adopted.append((project.name, env_name, adopted, author))
                changed = True
                continue
            if env_name in pins:
                continue  # a person is in charge of this environment already
            detail = "; ".join(seen.differences)
            result.drift.append((project.name, env_name, env.on_drift, f"{author}: {detail}"))
            log.warning(
                "drift in %s/%s (%s, policy %s): %s",
                project.name,
                env_name,
                author,
                env.on_drift,
                detail,
            )
            if env.on_drift == "report":
                result.waiting.append((project.name, env_name, f"drift: {detail}"))
            elif env.on_drift == "revert" and write:
                result.files_changed.extend(environments.render(root, project, env_name, release))
                changed = True
            elif env.on_drift == "pin" and write:
                reason = f"drift: changed by {author} in {sha[:10]}: {detail}"
                path = records.pin_path(project.name, env_name)
                records.write_if_changed(
                    root,
                    path,
                    records.pin_to_text(
                        project.name, env_name, None, reason, "reconciler (drift)", now
                    ),
                )
                result.files_changed.append(path)
                changed = True
        return changed

    def _pull_requests(self, config: Config, result: PassResult, now: datetime) -> None:
        """Pull-request mode: propose each promotion as a branch + pull request.

        The merge is the approval: the next pass sees the overlay match the release
        and records the deployment. A newer release supersedes (closes) an open
        proposal for the same environment; a proposal closed without merging is not
        reopened for that release.
        """
        if not result.proposals:
            return
        from reconciler.pullrequests import PullRequestError, host_for

        base = self.tree.branch
        open_prs: dict[str, Any] = self.local.data.setdefault("pullRequests", {})
        try:
            host = self.options.pr_host or host_for(self.options.repo_url, env=self.options.git_env)
        except PullRequestError as exc:
            result.ok = False
            result.git_error = f"pull-request mode: {exc}"
            return
        made_branch = False
        try:
            for project_name, env_name, version in result.proposals:
                key = f"{project_name}/{env_name}"
                branch = f"promote/{project_name}/{env_name}/{version}"
                known = open_prs.get(key)
                if known and known["release"] != version and known.get("state") == "open":
                    host.close(known["number"], f"Superseded by release {version}.")
                    result.pull_requests.append(
                        {
                            "environment": key,
                            "number": known["number"],
                            "action": "closed (superseded)",
                        }
                    )
                    known["state"] = "closed"
                existing = host.find(branch, base)
                if existing is not None and existing.state != "open":
                    if existing.state == "closed":
                        result.waiting.append(
                            (
                                project_name,
                                env_name,
                                f"{version}: pull request #{existing.number} "
                                "was closed without merging",
                            )
                        )
                    continue
                if existing is None:
                    project = config.projects[project_name]
                    release = records.read_release(self.tree.root, project_name, version)
                    if release is None:
                        continue
                    environments.render(self.tree.root, project, env_name, release)
                    message = (
                        f"Promote {project_name} {version} to {env_name}\n\n"
                        f"Release: {project_name} {version}\nEnvironment: {env_name}\n"
                    )
                    if self.tree.commit(message) is not None:
                        self.tree.push_branch(branch)
                        made_branch = True
                    self.tree.sync()
                    body = "\n".join(
                        [
                            f"Promotes **{project_name} {version}** to **{env_name}**.",
                            "",
                            "Merging this pull request is the approval; the reconciler records "
                            "the deployment on its next pass.",
                            "",
                        ]
                        + [f"- {p.name}: {p.version}" for p in release.packages]
                    )
                    existing = host.open(
                        branch, base, f"Promote {project_name} {version} to {env_name}", body
                    )
                    result.pull_requests.append(
                        {
                            "environment": key,
                            "number": existing.number,
                            "url": existing.url,
                            "action": "opened",
                        }
                    )
                open_prs[key] = {
                    "release": version,
                    "number": existing.number,
                    "state": existing.state,
                    "at": now.isoformat(),
                }
                result.waiting.append(
                    (
                        project_name,
                        env_name,
                        f"{version}: waiting for pull request #{existing.number}",
                    )
                )
        except PullRequestError as exc:
            result.ok = False
            result.git_error = f"pull-request mode: {exc}"
        finally:
            if made_branch:
                self.tree.sync()

    def _last_change(self, files: tuple[str, ...]) -> tuple[str, str]:
        commits = self.tree.log(paths=list(files), max_count=1)
        if not commits:
            return "unknown", ""
        return f"{commits[0].author} <{commits[0].email}>", commits[0].sha

    def _adopted(
        self, project: Project, env_name: str, state: records.ProjectState, current: str | None
    ) -> str | None:
        """A known release (other than ``current``) that the files now say exactly."""
        root = self.tree.root
        for entry in reversed(state.recent):
            if entry.version == current:
                continue
            other = records.read_release(root, project.name, entry.version)
            if other is not None and environments.observe(root, project, env_name, other).matches:
                return other.version
        return None

    def _promote(
        self,
        config: Config,
        project: Project,
        state: records.ProjectState,
        new_releases: dict[str, Release],
        now: datetime,
        result: PassResult,
        *,
        write: bool,
    ) -> bool:
        verification, concluded = self._verify(project, state, now)
        result.verifications.extend(concluded)
        changed = bool(concluded)  # a verdict is recorded in the state file
        lifecycles: dict[str, list[str]] = {}
        for channel in project.channels:
            lifecycles.setdefault(channel.lifecycle or project.lifecycle, []).append(channel.name)
        pins = {env: p.get("release") for env, p in read_pins(self.tree.root, project.name).items()}
        releases = release_states(state)
        for lc_name, channels in sorted(lifecycles.items()):
            if not any(r.channel in channels for r in releases):
                continue
            lifecycle = project_lifecycle(config.lifecycles[lc_name], project)
            decision: Decision = decide(
                lifecycle,
                releases,
                state.history,
                now,
                pins=pins,
                channels=channels,
                verification=verification,
            )
            result.wake_at = _earliest(result.wake_at, decision.wake_at)
            for wait in decision.waiting:
                pr_mode = project.environments[wait.environment].promotion == "pull-request"
                if pr_mode and wait.reason == MANUAL_APPROVAL_PENDING and wait.release:
                    result.proposals.append((project.name, wait.environment, wait.release))
                    continue
                result.waiting.append((project.name, wait.environment, wait.reason))
            for promotion in decision.promotions:
                if project.environments[promotion.environment].promotion == "pull-request":
                    result.proposals.append(
                        (project.name, promotion.environment, promotion.release)
                    )
                    continue
                release = new_releases.get(promotion.release) or records.read_release(
                    self.tree.root, project.name, promotion.release
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
                unseen = _unseen_change(self.tree.root, project, before, release)
                if unseen:
                    # Recording it would claim a deployment that never reaches the cluster.
                    result.waiting.append((project.name, env.name, unseen))
                    continue
                # What the files said, not only the record: a hand edit kept by
                # onDrift: report is what this deployment overwrites.
                held = environments.held_versions(self.tree.root, project, env.name, release)
                if write:
                    result.files_changed.extend(self.render_environment(project, env.name, release))
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
                        _package_changes(self.tree.root, project.name, before, release, held),
                    )
                )
                changed = True
        return changed

    def _verify(
        self, project: Project, state: records.ProjectState, now: datetime
    ) -> tuple[Verifications, list[Concluded]]:
        """Verification of the project's current deployments (reconciler.verify.stage)."""
        if not any(env.verify for env in project.environments.values()):
            return NO_VERIFICATION, []
        if self.options.verifier is None:
            http = httpx.Client(timeout=10.0)
            environ = dict(os.environ)
            statuses = git_host_statuses(self.options.repo_url, environ, http)
            self.options.verifier = Verifier.from_environment(http, environ, statuses)
        return verify_project(
            project, state.history, tree=self.tree, verify=self.options.verifier.verify, now=now
        )

    def render_environment(self, project: Project, environment: str, release: Release) -> list[str]:
        """Render ``release`` into the environment's files; returns changed paths."""
        return render_environment(self.tree.root, project, environment, release)


def render_environment(
    root: Path, project: Project, environment: str, release: Release
) -> list[str]:
    return environments.render(root, project, environment, release)


def _previous_release(
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


def _unseen_change(root: Path, project: Project, before: str | None, release: Release) -> str:
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


def _replaced_digests(
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


DEFAULT_COMMIT_TEMPLATE = "{subject}\n\n{body}\n\n{trailers}\n"
"""Variables: subject, body (one line per change: package old -> new, environment),
trailers. Trailers are appended when a template leaves them out: history reads them."""


def _package_changes(
    root: Path,
    project: str,
    before: str | None,
    release: Release,
    held: Mapping[str, str] | None = None,
) -> list[tuple[str, str | None, str]]:
    """(package, old version, new version) for every package an environment moving
    from release ``before`` to ``release`` changes (a re-pushed tag: "tag (new digest)").
    ``held``: what the files said before the render, where it differs from ``before``
    (a hand edit) it is the old value the commit really changes."""
    old = records.read_release(root, project, before) if before else None
    was = {p.name: p for p in old.packages} if old is not None else {}
    held = held or {}
    changes: list[tuple[str, str | None, str]] = []
    for p in release.packages:
        prior = was.get(p.name)
        edited = held.get(p.name)
        if prior is not None and edited is not None and edited != prior.version:
            if edited != p.version:
                changes.append((p.name, edited, p.version))
            continue
        if prior is None or prior.version != p.version:
            changes.append((p.name, prior.version if prior else None, p.version))
        elif prior.digest != p.digest:
            changes.append((p.name, prior.version, f"{p.version} (new digest)"))
    return changes


def _earliest(first: datetime | None, second: datetime | None) -> datetime | None:
    return min(t for t in (first, second) if t is not None) if first or second else None


def _one_line(text: str, limit: int = 200) -> str:
    """An agent's words on one bounded line: a newline must not start a trailer."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _verification_lines(result: PassResult) -> tuple[list[str], list[str], list[str]]:
    """(subject parts, body lines, trailers) for verdicts and rollbacks."""
    subject, body, trailers = [], [], []
    for v in result.verifications:
        when = records.iso(v.at)
        if v.result == "verified":
            subject.append(f"verified {v.project} {v.release} in {v.environment}")
            trailers.append(f"Verified: {v.project} {v.release} {v.environment} at {when}")
        else:
            subject.append(f"{v.project} {v.release} failed in {v.environment}")
            trailers.append(
                f"Failed: {v.project} {v.release} {v.environment} at {when} ({_one_line(v.reason)})"
            )
        body.append(f"{v.project}/{v.environment}: {v.release} {v.result}: {_one_line(v.reason)}")
    for project, env, failed, back_to in result.rollbacks:
        body.append(f"{project}/{env}: rolled back from {failed} to {back_to}")
        trailers.append(f"Rolled-Back: {project} {env} {failed} -> {back_to}")
    return subject, body, trailers


def _commit_message(config: Config, result: PassResult) -> str:
    """What changed, exactly: every package old -> new and every environment moved."""
    subject_parts = [f"release {r.project} {r.version}" for r in result.releases]
    by_release: dict[tuple[str, str], list[str]] = {}
    for project, env, version in result.promotions:
        by_release.setdefault((project, version), []).append(env)
    subject_parts += [f"deploy {p} {v} to {', '.join(envs)}" for (p, v), envs in by_release.items()]
    subject_parts += [f"record {p}/{e} at {v}" for p, e, v, _ in result.adopted]
    subject_parts += [f"drift in {p}/{e}: {policy}" for p, e, policy, _ in result.drift]
    verified_subject, verified_body, verified_trailers = _verification_lines(result)
    subject_parts += verified_subject
    subject = "; ".join(subject_parts) or "update"
    if len(subject) > 72:
        subject = f"{len(result.releases)} release(s), {len(result.promotions)} deployment(s)" + (
            f", {len(result.drift)} drift(s)" if result.drift else ""
        )
    subject = "reconciler: " + subject
    body: list[str] = []
    for decision in result.decisions:
        if decision.release is None:
            continue
        r = decision.release
        body.append(f"{r.project} {r.version} (channel {r.channel}, trigger {r.trigger}):")
        body += [
            f"  {package}: {old or '(new)'} -> {new}" for package, old, new in decision.changes
        ]
    for d in result.deployments:
        moved = f"{d.before or '(none)'} -> {d.release}"
        body.append(f"{d.project}/{d.environment}: {moved} (phase {d.phase}, automatic)")
        body += [f"  {package}: {old or '(new)'} -> {new}" for package, old, new in d.changes]
    for project, env, version, who in result.adopted:
        body.append(f"{project}/{env}: now runs {version} (changed by {who})")
    for project, env, policy, why in result.drift:
        body.append(f"{project}/{env}: drift ({policy}): {why}")
    body += verified_body
    trailers = [f"Release: {r.project} {r.version}" for r in result.releases]
    for project, env, version in result.promotions:
        trailers.append(f"Environment: {env}")
        trailers.append(f"Deployed: {project} {version} {env}")
    for project, env, version, _ in result.adopted:
        trailers.append(f"Environment: {env}")
        trailers.append(f"Deployed: {project} {version} {env}")
    for project, env, policy, _ in result.drift:
        trailers.append(f"Drift: {project} {env} {policy}")
    trailers += verified_trailers
    if result.promotions:
        trailers.append("Promoted-By: reconciler (automatic)")
    for project, env, version, who in result.adopted:
        trailers.append(f"Promoted-By: {who}")
        # One commit may hold automatic promotions too: say whose this deployment is.
        trailers.append(f"Deployed-By: {project} {version} {env} {who}")
    trailer_text = "\n".join(dict.fromkeys(trailers))
    try:
        template = templates.parse(
            config.settings.commit_template or DEFAULT_COMMIT_TEMPLATE, COMMIT_VARIABLES
        )
    except templates.TemplateError as error:  # validate refuses it; defensive
        log.warning("commitTemplate is not a valid template (%s); using the default", error)
        template = templates.parse(DEFAULT_COMMIT_TEMPLATE, COMMIT_VARIABLES)
    values = {"subject": subject, "body": _summary(body), "trailers": trailer_text}
    message = template.render(values)
    if (True, "trailers") not in template.parts:
        message = message.rstrip("\n") + "\n\n" + trailer_text + "\n"
    return message


BODY_LINES = 200
"""Body lines a commit message lists; a huge pass (hundreds of projects) ends with
"… and N more", while its trailers, which ``history`` reads, stay complete."""


def _summary(body: list[str]) -> str:
    """``body`` cut at an entry (a line and its indented lines) after ``BODY_LINES``."""
    if len(body) <= BODY_LINES:
        return "\n".join(body)
    cut = BODY_LINES
    while cut > 0 and body[cut].startswith("  "):
        cut -= 1
    rest = sum(1 for line in body[cut:] if not line.startswith("  "))
    return "\n".join([*body[:cut], f"… and {rest} more (every one is named in the trailers)"])
