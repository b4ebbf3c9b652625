"""Polling: ask the feeds which tags exist and pick each package's tag, with the
work dir's kept answers (digests, creation times, platforms, Retry-After deadlines).

Tags of all repositories are listed in parallel; the chosen tags' digests are then
resolved in parallel. A kept answer is trusted for ``digestRecheck`` unless a webhook
named its repository, the rule follows a moving tag, or it disagrees with the digest
the channel's release holds for that very tag (writers would otherwise flip-flop).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from reconciler import environments, records, rendering, safepaths, source_stamp
from reconciler.errors import FeedError, FeedNotFound, FeedRateLimited, ReconcilerError
from reconciler.feeds import FeedClient, open_feed
from reconciler.feeds._http import feed_transport
from reconciler.model import Config, Feed, Project, VersionRule
from reconciler.planning import PackageChoice, failed_choice, rule_for
from reconciler.reconcile.apply import previous_release
from reconciler.reconcile.workstate import KeptTable, LocalState
from reconciler.selection import Candidate, Selection, select

if TYPE_CHECKING:  # the sidecar's; a one-shot pass need not import prometheus or watchdog
    from reconciler.loop import Backoff
    from reconciler.metrics import Metrics

__all__ = ["MAX_RETRY_AFTER", "Poller"]

MAX_RETRY_AFTER = 3600.0
"""A registry's Retry-After is honoured up to an hour (as by the sidecar's backoff):
one bad header must not park a feed for days, across restarts least of all."""


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


class Poller:
    """Asks the feeds, with the work dir's kept answers; keeps feed clients between passes."""

    def __init__(
        self,
        root: Path,
        cache_dir: Path,
        local: LocalState,
        *,
        transport: httpx.BaseTransport | None = None,
        feed_env: Mapping[str, str] | None = None,
        metrics: Metrics | None = None,
        backoff: Backoff | None = None,
        progress: Callable[[int, int], None] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self.cache_dir = cache_dir
        self.local = local
        self.transport = transport
        self.feed_env = feed_env
        self.metrics = metrics
        self.backoff = backoff
        self.progress = progress
        self.wall = wall
        self._clients: dict[str, tuple[Any, FeedClient]] = {}
        self._recheck_after = 3600.0  # reconciler.yaml's digestRecheck, set by each poll

    def close(self) -> None:
        for _, client in self._clients.values():
            client.close()
        self._clients.clear()

    def _client(self, config: Config, name: str) -> FeedClient:
        feed = config.feeds[name]
        cached = self._clients.get(name)
        if cached and cached[0] == feed:
            return cached[1]
        if cached:
            cached[1].close()
        client = open_feed(
            feed,
            base_dir=self.root,
            state_dir=self.cache_dir / "feeds",
            transport=self._transport(feed),
            env=self.feed_env,
        )
        self._clients[name] = (feed, client)
        return client

    def _transport(self, feed: Feed) -> httpx.BaseTransport | None:
        """The injected transport (tests), or an instrumented one when metrics are on."""
        metrics = self.metrics
        inner = self.transport
        if metrics is None or feed.type == "oci-layout":
            return inner
        if inner is None:
            concurrency = max(1, feed.limits.concurrency)
            inner = feed_transport(
                feed,
                concurrency=concurrency,
                http2=importlib.util.find_spec("h2") is not None,
                env=self.feed_env,
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
        backoff = self.backoff
        waiting_feeds = {
            name
            for name in {f for f, _ in wanted}
            if backoff is not None and not backoff.ready(name, time.monotonic())
        }
        # A registry's Retry-After outlives the process (a cron-style `once` included):
        # deadlines are kept in the work dir as wall-clock times.
        deadlines: dict[str, float] = self.local.data.setdefault("retryAfter", {})
        now_wall = self.wall()
        for name, deadline in list(deadlines.items()):
            # Passed, for a feed that is gone, or further than any deadline we store
            # (the wall clock was set back): forget it.
            if not now_wall < deadline <= now_wall + MAX_RETRY_AFTER or name not in config.feeds:
                del deadlines[name]
        for table in ("platforms", "created"):  # answers about tags not asked for a week
            kept = self.local.kept(table)
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
                if self.progress is not None:
                    with progress_lock:
                        done[0] += 1
                        self.progress(done[0], len(wanted))

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
                state = records.read_state(self.root, project.name)
                previous_of = {
                    channel: previous_release(self.root, project, channel, state)
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
        table: KeptTable,
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
        known = self.local.kept(table)
        wall = self.wall()
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
            for target in environments.targets_for(self.root, project, env_name, [artifact]):
                if not safepaths.is_file(self.root, target.file):
                    continue
                try:
                    found = rendering.current_versions(
                        target.kind,
                        environments.read_target(self.root, target.file),
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
