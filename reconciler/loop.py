"""The long-running loop: a pass every interval, sooner when something was pushed.

One thread runs passes, one at a time, so passes never overlap. Between passes
it waits on the event queue that the webhook server and the file watcher feed:

* no event before the interval (with jitter, so a fleet of sidecars does not
  poll a registry in lockstep) is up: a *full* pass over every project;
* an event: wait until the burst settles (``debounce``, capped by
  ``max_debounce`` so a steady stream cannot starve us), then run one pass
  that carries every touched repository, so it can poll only those projects;
* a Git push or a changed watched file: a full pass that reloads the config;
* the moment the last pass said time alone changes a decision
  (``PassOutcome.wake_at``: a soak or freeze ending, a verification poll due):
  a pass then, instead of at the next interval.

Events that arrive during a pass stay queued and produce one more pass after
it. ``stop`` ends the loop within ~0.1 s of being set, even mid-wait; a pass
in progress is finished first (it is never interrupted half-way through a
commit).
"""

from __future__ import annotations

import logging
import os
import queue
import random
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from reconciler.errors import GitError
from reconciler.metrics import Metrics
from reconciler.server import Health
from reconciler.webhooks import WebhookEvent

log = logging.getLogger(__name__)

_STOP_CHECK = 0.1  # seconds: the longest a wait goes without looking at `stop`


@dataclass(frozen=True)
class ConfigChanged:
    """A watched file or directory changed (config dir, mounted credentials)."""

    path: str


PassReason = Literal["startup", "interval", "event", "wake"]


@dataclass(frozen=True)
class PassRequest:
    """What one pass should look at.

    ``full`` passes poll every project. Otherwise ``repositories`` names the
    image repositories (as webhooks spell them, e.g. ``acme/api``) that were
    pushed; the pass may poll only projects with a package in one of them.
    """

    reason: PassReason
    full: bool
    repositories: frozenset[str] = frozenset()
    config_changed: bool = False  # git push / watched file: sync and reload before polling
    changed_paths: frozenset[str] = frozenset()
    events: tuple[WebhookEvent, ...] = ()


@dataclass(frozen=True)
class PassOutcome:
    """What one pass did. ``ok`` is False when the pass could not do its job
    (repo unreachable, config invalid, push failed); feed errors alone make it
    partial: ``ok`` with ``errors``."""

    ok: bool
    releases_created: int = 0
    promotions: int = 0
    errors: tuple[str, ...] = ()
    duration: float = 0.0
    repo_reachable: bool = True
    wake_at: float | None = None  # wall-clock time at which time alone changes a decision

    @property
    def label(self) -> str:
        """The ``outcome`` label of ``reconciler_passes_total``."""
        if not self.ok:
            return "failed"
        return "partial" if self.errors else "ok"


def build_request(
    items: Iterable[WebhookEvent | ConfigChanged], *, reason: PassReason, full: bool
) -> PassRequest:
    """Fold a batch of queued items into one request."""
    batch = list(items)
    events = tuple(i for i in batch if isinstance(i, WebhookEvent))
    paths = frozenset(i.path for i in batch if isinstance(i, ConfigChanged))
    config_changed = bool(paths) or any(e.kind == "git" for e in events)
    return PassRequest(
        reason=reason,
        full=full or config_changed,
        repositories=frozenset(e.repository for e in events if e.kind == "registry"),
        config_changed=config_changed,
        changed_paths=paths,
        events=events,
    )


# ------------------------------------------------------------------------- loop


def _get(
    events: queue.Queue[Any], stop: threading.Event, deadline: float, clock: Callable[[], float]
) -> Any | None:
    """The next queued item, or None when ``deadline`` passes or ``stop`` is set."""
    while not stop.is_set():
        remaining = deadline - clock()
        if remaining <= 0:
            return None
        try:
            return events.get(timeout=min(remaining, _STOP_CHECK))
        except queue.Empty:
            continue
    return None


def _drain(events: queue.Queue[Any]) -> list[Any]:
    items = []
    while True:
        try:
            items.append(events.get_nowait())
        except queue.Empty:
            return items


def _debounce(
    first: Any,
    events: queue.Queue[Any],
    stop: threading.Event,
    *,
    quiet: float,
    cap: float,
    clock: Callable[[], float],
) -> list[Any]:
    """``first`` plus whatever follows until ``quiet`` seconds pass without an item."""
    batch = [first]
    hard_deadline = clock() + cap
    while True:
        deadline = min(clock() + quiet, hard_deadline)
        item = _get(events, stop, deadline, clock)
        if item is None:
            return batch
        batch.append(item)


def _jittered(interval: float, jitter: float, rng: random.Random) -> float:
    return interval * (1 + rng.uniform(-jitter, jitter))


def run_loop(
    run_pass: Callable[[PassRequest], PassOutcome],
    *,
    interval: float,
    stop: threading.Event,
    events: queue.Queue[Any],
    jitter: float = 0.1,
    debounce: float = 0.15,
    max_debounce: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    rng: random.Random | None = None,
    health: Health | None = None,
    metrics: Metrics | None = None,
) -> None:
    """Run passes until ``stop`` is set. See the module docstring.

    ``jitter`` is a fraction of ``interval`` (0.1 = +/-10 %). A pass that
    raises is logged and counted as ``crashed``; the loop carries on.
    """
    if interval <= 0:
        raise ValueError("interval must be positive")
    jitter = min(max(jitter, 0.0), 0.5)
    rng = rng if rng is not None else random.Random()
    next_full = clock()  # the first pass runs at once
    wake: float | None = None  # a soak/freeze end or verification poll (monotonic)
    first = True
    while not stop.is_set():
        deadline = next_full if wake is None else min(next_full, wake)
        item = _get(events, stop, deadline, clock)
        if stop.is_set():
            break
        if item is None and wake is not None and wake < next_full and clock() >= wake:
            request = build_request(_drain(events), full=False, reason="wake")
        elif item is None:
            request = build_request(
                _drain(events), full=True, reason="startup" if first else "interval"
            )
        else:
            batch = _debounce(item, events, stop, quiet=debounce, cap=max_debounce, clock=clock)
            request = build_request(batch, full=clock() >= next_full, reason="event")
            if stop.is_set():  # stopped while a burst settled: the next start polls anyway
                break
        first = False
        outcome = _run_one(
            run_pass, request, health=health, metrics=metrics, clock=clock, wall_clock=wall_clock
        )
        wake = _wake_deadline(outcome, clock, wall_clock)
        if request.full:
            next_full = clock() + _jittered(interval, jitter, rng)
    log.info("loop stopped")


_MIN_WAKE = 1.0  # seconds: a decision due "now" is not re-run in a tight loop


def _wake_deadline(
    outcome: PassOutcome | None, clock: Callable[[], float], wall_clock: Callable[[], float]
) -> float | None:
    """When (on ``clock``) the pass said time alone changes a decision, or None."""
    if outcome is None or outcome.wake_at is None:
        return None
    return clock() + max(_MIN_WAKE, outcome.wake_at - wall_clock())


def _run_one(
    run_pass: Callable[[PassRequest], PassOutcome],
    request: PassRequest,
    *,
    health: Health | None,
    metrics: Metrics | None,
    clock: Callable[[], float],
    wall_clock: Callable[[], float],
) -> PassOutcome | None:
    started = clock()
    log.debug(
        "pass starting: %s, full=%s, repositories=%s",
        request.reason,
        request.full,
        sorted(request.repositories),
    )
    try:
        outcome = run_pass(request)
    except Exception as exc:  # a bug or unexpected failure must not end the sidecar
        elapsed = clock() - started
        log.exception("pass crashed after %.1fs", elapsed)
        if metrics is not None:
            metrics.passes.labels(outcome="crashed").inc()
            metrics.pass_duration.observe(elapsed)
        if health is not None:
            health.record_pass(
                ok=False,
                repo_reachable=not isinstance(exc, GitError),
                problem=f"pass crashed: {type(exc).__name__}",
            )
        return None
    elapsed = outcome.duration or (clock() - started)
    if metrics is not None:
        metrics.passes.labels(outcome=outcome.label).inc()
        metrics.pass_duration.observe(elapsed)
        if outcome.ok:
            metrics.last_success.set(wall_clock())
    if health is not None:
        problem = "; ".join(outcome.errors[:3]) if outcome.errors else ""
        health.record_pass(ok=outcome.ok, repo_reachable=outcome.repo_reachable, problem=problem)
    log.info(
        "pass %s in %.2fs: %d release(s), %d promotion(s), %d error(s)",
        outcome.label,
        elapsed,
        outcome.releases_created,
        outcome.promotions,
        len(outcome.errors),
    )
    return outcome


# ---------------------------------------------------------------------- signals


def install_signal_handlers(stop: threading.Event) -> dict[int, Any]:
    """SIGTERM/SIGINT set ``stop``; a second signal while stopping aborts at once.

    Must be called from the main thread. Returns the previous handlers.
    """

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.info(
            "received %s, finishing the current pass and stopping", signal.Signals(signum).name
        )
        stop.set()

    return {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}


# ---------------------------------------------------------------------- backoff


@dataclass
class _FeedState:
    failures: int = 0
    not_before: float = 0.0


@dataclass
class Backoff:
    """Per-feed retry delays: exponential with full jitter, capped, honouring Retry-After.

    The delay after the n-th consecutive failure is ``uniform(0, min(cap,
    base * 2**(n-1)))`` (full jitter spreads retries of many sidecars), but
    never shorter than a ``retry_after`` the registry asked for (itself capped
    at ``max_retry_after`` so one bad header cannot park a feed for days).
    Times are whatever clock the caller passes as ``now``. Thread-safe.
    """

    base: float = 5.0
    cap: float = 900.0
    max_retry_after: float = 3600.0
    rng: random.Random = field(default_factory=random.Random)
    _feeds: dict[str, _FeedState] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def ready(self, feed: str, now: float) -> bool:
        """True when ``feed`` may be polled at ``now``."""
        with self._lock:
            state = self._feeds.get(feed)
            return state is None or now >= state.not_before

    def failure(self, feed: str, now: float, retry_after: float | None = None) -> float:
        """Record a failed poll; returns the delay before the next attempt."""
        with self._lock:
            state = self._feeds.setdefault(feed, _FeedState())
            state.failures += 1
            ceiling = min(self.cap, self.base * 2 ** min(state.failures - 1, 62))
            delay = self.rng.uniform(0, ceiling)
            if retry_after is not None and retry_after > 0:
                delay = max(delay, min(retry_after, self.max_retry_after))
            state.not_before = now + delay
            return delay

    def remaining(self, feed: str, now: float) -> float:
        """Seconds until ``feed`` may be polled again (0 when it may be now)."""
        with self._lock:
            state = self._feeds.get(feed)
            return max(0.0, state.not_before - now) if state is not None else 0.0

    def success(self, feed: str) -> None:
        """Forget the failures of ``feed``."""
        with self._lock:
            self._feeds.pop(feed, None)

    def reset(self) -> None:
        """Forget every feed's failures: credentials changed, so earlier refusals say nothing."""
        with self._lock:
            self._feeds.clear()

    def failures(self, feed: str) -> int:
        """Consecutive failures of ``feed`` so far."""
        with self._lock:
            state = self._feeds.get(feed)
            return state.failures if state else 0


# ---------------------------------------------------------------------- watching

# Reading a file produces "opened"/"closed_no_write" on inotify; a pass reads
# the watched files, so reacting to those would wake the loop forever.
_CHANGE_EVENTS = frozenset({"created", "modified", "deleted", "moved", "closed"})


class _ChangeHandler(FileSystemEventHandler):
    """Turns watchdog events under one directory into ``callback(watched path)`` calls."""

    def __init__(
        self,
        directory: Path,
        names: dict[str, str] | None,
        callback: Callable[[str], None],
        *,
        given: str = "",
    ) -> None:
        super().__init__()
        self._directory = directory
        self._names = names  # file name -> path as the caller gave it; None = whole directory
        self._given = given  # the directory as the caller gave it (reported for changes)
        self._callback = callback

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _CHANGE_EVENTS:
            return
        for raw in (event.src_path, event.dest_path):
            if not raw:
                continue
            changed = Path(os.fsdecode(raw))
            if self._names is None:
                inside = changed.parts[len(self._directory.parts) :]
                if ".git" not in inside:
                    self._callback(self._given)
                    return
            elif changed.name in self._names:
                self._callback(self._names[changed.name])
                return
            elif changed.name.startswith(".."):
                for original in self._names.values():
                    self._callback(original)
                return


class PathWatcher:
    """Watches files and directories; call :meth:`close` to stop.

    Files are watched through their parent directory, non-recursively, and a
    change to any ``..``-prefixed entry there counts as a change of the file:
    Kubernetes updates Secret and ConfigMap volumes by renaming a new
    ``..data`` symlink over the old one, so the file's own path never sees an
    event. Directories are watched recursively, ignoring ``.git`` internals.
    ``polling=True`` uses stat polling where inotify is unavailable.
    """

    def __init__(
        self, paths: Iterable[str | Path], callback: Callable[[str], None], *, polling: bool = False
    ) -> None:
        self._observer: BaseObserver = (
            PollingObserver(timeout=0.2) if polling else Observer(timeout=0.2)
        )
        files_by_dir: dict[Path, dict[str, str]] = {}
        for raw in paths:
            path = Path(raw).absolute()
            if path.is_dir():
                handler = _ChangeHandler(path, None, callback, given=str(raw))
                self._observer.schedule(handler, str(path), recursive=True)
            elif path.parent.is_dir():
                files_by_dir.setdefault(path.parent, {})[path.name] = str(raw)
            else:
                log.warning("not watching %s: its directory does not exist", raw)
        for directory, names in files_by_dir.items():
            handler = _ChangeHandler(directory, names, callback)
            self._observer.schedule(handler, str(directory), recursive=False)
        self._observer.start()

    def close(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)


def watch_paths(
    paths: Iterable[str | Path], callback: Callable[[str], None], *, polling: bool = False
) -> PathWatcher:
    """Call ``callback(path)`` whenever one of ``paths`` changes; see :class:`PathWatcher`.

    Typical use: ``watch_paths(files, lambda p: events.put(ConfigChanged(p)))``.
    """
    return PathWatcher(paths, callback, polling=polling)
