"""Polling: ask the feeds which tags exist and pick each package's tag, with the
work dir's kept answers (digests, creation times, platforms, Retry-After deadlines).

Tags of all repositories are listed in parallel; the chosen tags' digests are then
resolved in parallel. A kept answer is trusted for ``digestRecheck`` unless a webhook
named its repository, the rule follows a moving tag, or it disagrees with the digest
the channel's release holds for that very tag (writers would otherwise flip-flop).
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sized
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from reconciler import environments, records, rendering, safepaths
from reconciler.errors import FeedError, FeedNotFound, FeedRateLimited, ReconcilerError
from reconciler.feeds import FeedClient, open_feed
from reconciler.feeds._http import feed_transport
from reconciler.feeds.helm import HelmRepoClient
from reconciler.feeds.oci import RegistryClient
from reconciler.grants import feed_host
from reconciler.model import Config, Feed, Package, Project, ReleasedPackage, VersionRule
from reconciler.planning import PackageChoice, Refusal, failed_choice, rule_for
from reconciler.reconcile import signatures
from reconciler.reconcile.apply import previous_release
from reconciler.reconcile.deadlines import (
    kept_deadline,
    live_deadlines,
    rate_limited,
)
from reconciler.reconcile.memo import ProjectMemo
from reconciler.reconcile.selectioncache import SelectionCache
from reconciler.reconcile.workstate import KeptTable, LocalState
from reconciler.selection import Candidate, Selection, select

if TYPE_CHECKING:  # the sidecar's; a one-shot pass need not import prometheus or watchdog
    from reconciler.loop import Backoff
    from reconciler.metrics import Metrics

__all__ = ["FeedPoll", "Poller", "next_feed_poll"]

_DigestJob = tuple[tuple[str, str], str, Package, str, str | None]
"""(project, channel), package name, package, chosen tag, the digest its release holds."""


def _workers(items: Sized) -> int:
    return max(1, min(32, len(items)))


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


@dataclass(frozen=True)
class FeedPoll:
    """How a feed's last passes went, for the dashboard's feed health (wall-clock times).

    ``asked_at``: the last pass that sent the feed requests; ``answered_at``: the last in
    which every repository answered; ``error``: the latest pass's error (its own, or why
    no request was sent: a Retry-After or backoff still running), None when it answered.
    """

    asked_at: float | None = None
    answered_at: float | None = None
    error: str | None = None


def next_feed_poll(
    before: FeedPoll | None, *, asked: bool, error: str | None, now: float
) -> FeedPoll:
    """A feed's record after a pass that ``asked`` it (or skipped it) with ``error``."""
    before = before or FeedPoll()
    if not asked:
        return replace(before, error=error)
    return FeedPoll(now, now if error is None else before.answered_at, error)


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
        self._remembered = SelectionCache({})  # this pass's selection cache, set by each poll
        self.feed_polls: dict[str, FeedPoll] = {}  # feed -> its last passes (dashboard)
        # The sidecar's project memo: previous releases read at an unchanged commit
        self.memo: ProjectMemo | None = None

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
        """For each (project, channel), each package's chosen tag: list the tags of every
        repository (in parallel), select, then resolve the chosen tags' digests."""
        self._recheck_after = config.settings.digest_recheck
        projects = list(projects)
        wanted = {(pkg.feed, pkg.repository) for project in projects for pkg in project.packages}
        now_wall = self.wall()
        # A registry's Retry-After outlives the process (a cron-style `once` included):
        # deadlines are kept in the work dir as wall-clock times.
        deadlines = self.local.data.setdefault("retryAfter", {})
        live = live_deadlines(deadlines, now_wall, config.feeds)
        deadlines.clear()
        deadlines.update(live)
        for table in ("platforms", "created", "signatures"):  # answers not asked for a week
            kept = self.local.kept(table)
            for key in [k for k, (_, when) in kept.items() if now_wall - when > 7 * 86400]:
                del kept[key]
        fresh: dict[str, str | None] = {}  # digests asked this pass (feed|repository|tag)
        tags = self._fetch_all(config, wanted, _followed_tags(config, projects, channel_of), fresh)
        for (feed, _), found in tags.items():
            if isinstance(found, FeedRateLimited) and feed not in live:
                deadlines[feed] = kept_deadline(deadlines, feed, now_wall, found.retry_after)
        result, jobs = self._select_all(config, projects, channel_of, tags, recheck)
        self._resolve_digests(config, result, jobs, fresh, recheck)
        self._forget_unneeded(tags, jobs)
        for (project_name, _), per_package in result.items():  # 429s on manifest requests
            for choice in per_package.values():
                if choice.error_class == "rate-limited" and choice.retry_after:
                    feed = config.projects[project_name].package(choice.package).feed
                    deadlines[feed] = kept_deadline(deadlines, feed, now_wall, choice.retry_after)
        return result

    def _fetch_all(
        self,
        config: Config,
        wanted: set[tuple[str, str]],
        followed: Mapping[tuple[str, str], set[str]],
        fresh: dict[str, str | None],
    ) -> dict[tuple[str, str], list[str] | FeedError]:
        """Every repository's tags (or why not), asked in parallel; the sidecar's
        backoff is told which feeds failed."""
        backoff = self.backoff
        feeds = {f for f, _ in wanted}
        waiting = {
            n for n in feeds if backoff is not None and not backoff.ready(n, time.monotonic())
        }
        deadlines = self.local.data.get("retryAfter", {})
        now_wall = self.wall()
        tags: dict[tuple[str, str], list[str] | FeedError] = {}
        done = [0]
        progress_lock = threading.Lock()

        def fetch(key: tuple[str, str]) -> None:
            try:
                tags[key] = self._fetch_one(config, key, followed, fresh, deadlines, now_wall,
                                            waiting)  # fmt: skip
            finally:
                if self.progress is not None:
                    with progress_lock:
                        done[0] += 1
                        self.progress(done[0], len(wanted))

        for name in feeds:
            self._client(config, name)  # create clients serially (not thread-safe to create)
        # One pool per feed, as wide as the feed's ``limits.concurrency`` (its client lets
        # no more requests run at once): no idle threads contending for two cores (issue
        # 22: 32 threads made the sweep ~6% slower), and a slow feed holds only its own.
        by_feed: dict[str, list[tuple[str, str]]] = {}
        for key in sorted(wanted):
            by_feed.setdefault(key[0], []).append(key)
        with contextlib.ExitStack() as stack:
            futures = []
            for name, keys in sorted(by_feed.items()):
                width = min(_workers(keys), max(1, config.feeds[name].limits.concurrency))
                pool = stack.enter_context(ThreadPoolExecutor(width, thread_name_prefix="poll"))
                futures += [pool.submit(fetch, key) for key in keys]
            for future in futures:
                future.result()
        errors: dict[str, str] = {}
        for (feed, _), found in sorted(tags.items()):
            if isinstance(found, FeedError):
                errors.setdefault(feed, found.message)
        for name in feeds:
            asked = name not in waiting and name not in deadlines
            self.feed_polls[name] = next_feed_poll(
                self.feed_polls.get(name), asked=asked, error=errors.get(name), now=now_wall
            )
        if backoff is not None:
            failed: dict[str, FeedError] = {}
            for (feed, _), found in tags.items():
                if isinstance(found, FeedError) and feed not in waiting:
                    failed.setdefault(feed, found)
            for name in feeds - waiting:
                if name in failed:
                    backoff.failure(name, time.monotonic(), failed[name].retry_after)
                else:
                    backoff.success(name)
        return tags

    def _fetch_one(
        self,
        config: Config,
        key: tuple[str, str],
        followed: Mapping[tuple[str, str], set[str]],
        fresh: dict[str, str | None],
        deadlines: Mapping[str, float],
        now_wall: float,
        waiting: set[str],
    ) -> list[str] | FeedError:
        feed, repository = key
        if feed in deadlines:
            return rate_limited(feed, deadlines[feed], now_wall)
        if feed in waiting:
            assert self.backoff is not None
            remaining = self.backoff.remaining(feed, time.monotonic())
            return FeedError(
                feed,
                f"backing off after earlier failures; next try in {remaining:.0f} s",
                retry_after=remaining,
            )
        try:
            client = self._client(config, feed)
            if key in followed:  # only moving tags followed: their digests are the news
                return _head_followed(client, key, followed[key], fresh)
            return client.list_tags(repository)
        except FeedError as exc:
            return exc
        except (OSError, ValueError) as exc:  # defensive: never let one feed stop a pass
            return FeedError(feed, f"{type(exc).__name__}: {exc}")

    def _select_all(
        self,
        config: Config,
        projects: list[Project],
        channel_of: Mapping[str, set[str]],
        tags: Mapping[tuple[str, str], list[str] | FeedError],
        recheck: frozenset[str],
    ) -> tuple[dict[tuple[str, str], dict[str, PackageChoice]], list[_DigestJob]]:
        """Each package's chosen tag per (project, channel), and the digests to resolve."""
        result: dict[tuple[str, str], dict[str, PackageChoice]] = {}
        jobs: list[_DigestJob] = []
        remembered = SelectionCache(self.local.data.setdefault("selections", {}))
        self._remembered = remembered
        memo = self.memo
        for project in projects:
            previous_of = memo.previous(project.name, channel_of[project.name]) if memo else None
            if previous_of is None:
                try:
                    state = records.read_state(self.root, project.name)
                    previous_of = {
                        channel: previous_release(self.root, project, channel, state)
                        for channel in channel_of[project.name]
                    }
                except ReconcilerError:
                    continue  # an unreadable record: the project is skipped (says why) later
                if memo is not None:
                    memo.keep_previous(project.name, previous_of)
            for channel in sorted(channel_of[project.name]):
                previous = previous_of[channel]
                choices: dict[str, PackageChoice] = {}
                for pkg in project.packages:
                    found = tags[(pkg.feed, pkg.repository)]
                    prev = previous.package(pkg.name) if previous else None
                    if isinstance(found, FeedError):
                        choices[pkg.name] = failed_choice(pkg.name, found)
                        continue
                    rule = rule_for(project, channel, pkg.name)
                    choice = self._choose(config, project, pkg, rule, found, prev, recheck)
                    choices[pkg.name] = choice
                    if choice.tag is not None and choice.error is None:
                        # The digest the channel's release holds for this very tag: a
                        # kept answer that disagrees with it is asked again, so a stale
                        # cache never passes for new content (writers would flip-flop).
                        same = prev is not None and prev.version == choice.tag
                        released = prev.digest if prev is not None and same else None
                        jobs.append(((project.name, channel), pkg.name, pkg, choice.tag, released))
                result[(project.name, channel)] = choices
        return result, jobs

    def _choose(
        self,
        config: Config,
        project: Project,
        pkg: Package,
        rule: VersionRule,
        found: list[str],
        prev: ReleasedPackage | None,
        recheck: frozenset[str],
    ) -> PackageChoice:
        """One package's chosen tag (newest-build: with creation times; a platform: the
        best tag that has an image for it)."""
        current = prev.version if prev else None
        if current is None and rule.strategy == "suffix":
            current = self._deployed_tag(project, pkg.name)
        selection = self._remembered.select(pkg, rule, found, current)
        trusted = _trusted(pkg, rule, recheck)
        created: dict[str, datetime] = {}
        try:
            if rule.strategy == "newest-build" and selection.needs_metadata:
                client = self._client(config, pkg.feed)
                for tag in selection.needs_metadata:
                    when = self._created(client, pkg, tag, rule.platform, trust=trusted)
                    if when is not None:
                        created[tag] = when
                selection = select(rule, found, current=current, created=created, kind=pkg.kind)
            elif rule.platform and selection.chosen is not None:
                selection = self._on_platform(config, pkg, rule, selection, trust=trusted)
            refused: tuple[Refusal, ...] = ()
            if pkg.signature_gate and selection.chosen is not None:
                selection, refused = self._signed(config, pkg, rule, selection, trust=trusted)
        except FeedError as exc:
            return failed_choice(pkg.name, exc)
        built = created.get(selection.chosen) if selection.chosen else None
        return PackageChoice(
            pkg.name, selection.chosen, None, selection, built=built, refused=refused
        )

    def _resolve_digests(
        self,
        config: Config,
        result: dict[tuple[str, str], dict[str, PackageChoice]],
        jobs: list[_DigestJob],
        fresh: Mapping[str, str | None],
        recheck: frozenset[str],
    ) -> None:
        """The chosen tags' digests, in parallel, from the kept answers when they hold
        (after ``digestRecheck``, a webhook naming the repository, the ``digest``
        strategy, or disagreeing with the release, the registry is asked)."""

        def resolve(job: _DigestJob, *, kept_only: bool = False) -> bool:
            key, name, pkg, tag, released = job
            rule = rule_for(config.projects[key[0]], key[1], name)
            at = f"{pkg.feed}|{pkg.repository}|{tag}"
            trust = _trusted(pkg, rule, recheck)
            if kept_only:
                hit, digest = self._kept("digests", at, trust=trust, expect=released)
                if hit:
                    result[key][name] = replace(result[key][name], digest=digest)
                return hit
            client = self._client(config, pkg.feed)
            try:
                digest = self._kept_answer(
                    "digests",
                    at,
                    lambda: fresh[at] if at in fresh else client.digest(pkg.repository, tag),
                    trust=trust,
                    expect=released,
                )
            except FeedError as exc:
                result[key][name] = failed_choice(name, exc)
                return True
            result[key][name] = replace(result[key][name], digest=digest)
            return True

        # Kept answers first, in this thread: a warm pass then starts no thread at all.
        asking = [job for job in jobs if not resolve(job, kept_only=True)]
        if asking:
            with ThreadPoolExecutor(_workers(asking), thread_name_prefix="digest") as pool:
                list(pool.map(resolve, asking))

    def _forget_unneeded(
        self, tags: Mapping[tuple[str, str], list[str] | FeedError], jobs: list[_DigestJob]
    ) -> None:
        """Keep only the kept digests and selections the current choices need. Only of
        repositories that answered: a feed that failed (a 429 included) keeps its
        answers for the pass after, which then asks no more than it must."""
        cache = self.local.kept("digests")
        chosen = {f"{pkg.feed}|{pkg.repository}|{tag}" for _, _, pkg, tag, _ in jobs}
        polled = {f"{f}|{r}|" for (f, r), found in tags.items() if not isinstance(found, FeedError)}
        for stale in [k for k in cache if k not in chosen and k[: k.rindex("|") + 1] in polled]:
            del cache[stale]
        self._remembered.forget_unused(polled)

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
        hit, answer = self._kept(table, key, trust=trust, expect=expect)
        if hit:
            return answer
        wall = self.wall()  # when asked: the answer is as old as the question
        answer = ask()
        self.local.kept(table)[key] = [answer, wall]
        return answer

    def _kept(
        self, table: KeptTable, key: str, *, trust: bool = True, expect: Any = None
    ) -> tuple[bool, Any]:
        """(True, the kept answer) when it holds (see ``_kept_answer``), else (False, None)."""
        cached = self.local.kept(table).get(key)
        if (
            trust
            and cached is not None
            and self.wall() - cached[1] < self._recheck_after
            and (expect is None or cached[0] == expect)
        ):
            return True, cached[0]
        return False, None

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

    def _signed(
        self, config: Config, pkg: Package, rule: VersionRule, selection: Selection, *, trust: bool
    ) -> tuple[Selection, tuple[Refusal, ...]]:
        """``selection`` narrowed by the package's signature gate (signatures.py)."""
        client = self._client(config, pkg.feed)
        host = feed_host(config.feeds[pkg.feed].url)
        kept = self.local.kept("signatures")
        if pkg.cosign_keys:
            # cryptography's primitives load only for a package with cosign keys
            from cryptography.exceptions import UnsupportedAlgorithm

            from reconciler.feeds import cosign

            if not isinstance(client, RegistryClient):
                raise FeedError(pkg.feed, "cosign signatures need an OCI registry feed")
            pems, key_set = signatures.granted_bytes(
                pkg, pkg.cosign_keys, host, self.feed_env, "cosign key"
            )
            try:
                keys = [cosign.load_public_key(pem) for pem in pems]
            except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
                raise FeedError(pkg.feed, f"cosign key: {type(exc).__name__}") from exc

            judge = signatures.image_judge(
                pkg,
                key_set,
                self._digest_of(client, pkg, trust=trust),
                lambda digest: cosign.verify_image(client, pkg.repository, digest, keys),
                kept,
                self.wall,
            )
            return signatures.gate(selection, rule, judge, "cosign")
        if pkg.keyless is not None:
            if not isinstance(client, RegistryClient):
                raise FeedError(pkg.feed, "cosign signatures need an OCI registry feed")
            [root], key_set = signatures.granted_bytes(
                pkg, (pkg.keyless.trusted_root,), host, self.feed_env, "trusted root"
            )
            verify = signatures.keyless_verify(client, pkg, root)
            judge = signatures.image_judge(
                pkg,
                signatures.keyless_key_set(pkg.keyless, key_set),
                self._digest_of(client, pkg, trust=trust),
                verify,
                kept,
                self.wall,
            )
            return signatures.gate(selection, rule, judge, "cosign keyless")
        from reconciler.feeds import provenance

        assert pkg.helm_keyring is not None
        if not isinstance(client, HelmRepoClient):
            raise FeedError(pkg.feed, "Helm provenance needs an HTTP(S) chart repository")
        [raw], key_set = signatures.granted_bytes(
            pkg, (pkg.helm_keyring,), host, self.feed_env, "Helm keyring"
        )
        try:
            keyring = provenance.dearmored(raw)
        except ValueError as exc:
            raise FeedError(pkg.feed, f"Helm keyring {pkg.helm_keyring}: {exc}") from exc
        judge = signatures.chart_judge(client, pkg, keyring, key_set, kept, self.wall)
        return signatures.gate(selection, rule, judge, "provenance")

    def _digest_of(
        self, client: RegistryClient, pkg: Package, *, trust: bool
    ) -> Callable[[str], str | None]:
        """tag -> digest for the signature gate, through the kept ``digests`` answers."""

        def digest_of(tag: str) -> str | None:
            at = f"{pkg.feed}|{pkg.repository}|{tag}"
            found = self._kept_answer(
                "digests", at, lambda: client.digest(pkg.repository, tag), trust=trust
            )
            return None if found is None else str(found)

        return digest_of

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
