"""The run loop (reconciler.loop): scheduling, events, stopping, crashes, backoff, watching."""

from __future__ import annotations

import os
import queue
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.errors import FeedRateLimited, GitError
from reconciler.loop import (
    Backoff,
    ConfigChanged,
    PassOutcome,
    PassRequest,
    build_request,
    install_signal_handlers,
    run_loop,
    watch_paths,
)
from reconciler.metrics import Metrics
from reconciler.server import Health
from reconciler.webhooks import WebhookEvent


def registry_event(repository: str, tag: str = "1.0.0") -> WebhookEvent:
    return WebhookEvent(kind="registry", source="distribution", repository=repository, tag=tag)


class Passes:
    """A fake pass recording requests, start/end times and overlap."""

    def __init__(
        self, duration: float = 0.0, behaviour: Callable[[int], PassOutcome] | None = None
    ) -> None:
        self.duration = duration
        self.behaviour = behaviour
        self.requests: list[PassRequest] = []
        self.started: list[float] = []
        self.running = 0
        self.max_running = 0
        self.lock = threading.Lock()
        self.ran = threading.Event()

    def __call__(self, request: PassRequest) -> PassOutcome:
        with self.lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            self.requests.append(request)
            self.started.append(time.monotonic())
            number = len(self.requests)
        try:
            time.sleep(self.duration)
            if self.behaviour is not None:
                return self.behaviour(number)
            return PassOutcome(ok=True)
        finally:
            with self.lock:
                self.running -= 1
            self.ran.set()

    def wait_for(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"only {len(self.requests)} passes ran"
            time.sleep(0.01)


class Running:
    def __init__(self, passes: Passes, **kwargs: Any) -> None:
        self.passes = passes
        self.stop = threading.Event()
        self.events: queue.Queue[Any] = queue.Queue()
        self.thread = threading.Thread(
            target=run_loop,
            args=(passes,),
            kwargs={"stop": self.stop, "events": self.events, "rng": random.Random(1), **kwargs},
            daemon=True,
        )
        self.thread.start()

    def stop_and_join(self) -> float:
        """Set stop; return how long the loop took to exit."""
        started = time.monotonic()
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()
        return time.monotonic() - started


@pytest.fixture
def start_loop() -> Iterator[Callable[..., Running]]:
    loops: list[Running] = []

    def start(passes: Passes, **kwargs: Any) -> Running:
        kwargs.setdefault("interval", 60.0)
        loops.append(Running(passes, **kwargs))
        return loops[-1]

    yield start
    for running in loops:
        running.stop.set()
        running.thread.join(timeout=10)


def test_first_pass_is_a_full_startup_pass(start_loop: Callable[..., Running]) -> None:
    passes = Passes()
    running = start_loop(passes)
    passes.wait_for(1)
    running.stop_and_join()
    [request] = passes.requests
    assert (request.reason, request.full) == ("startup", True)


def test_passes_repeat_every_interval(start_loop: Callable[..., Running]) -> None:
    passes = Passes()
    running = start_loop(passes, interval=0.2, jitter=0.0)
    passes.wait_for(3)
    running.stop_and_join()
    gaps = [b - a for a, b in zip(passes.started, passes.started[1:], strict=False)]
    assert all(0.15 < gap < 0.6 for gap in gaps[:2]), gaps
    assert [r.reason for r in passes.requests[:3]] == ["startup", "interval", "interval"]


def test_an_event_wakes_a_pass_quickly(start_loop: Callable[..., Running]) -> None:
    passes = Passes()
    running = start_loop(passes, interval=60.0)
    passes.wait_for(1)
    pushed = time.monotonic()
    running.events.put(registry_event("acme/api"))
    passes.wait_for(2)
    latency = passes.started[1] - pushed
    running.stop_and_join()
    assert latency < 0.5
    request = passes.requests[1]
    assert (request.reason, request.full, request.repositories) == (
        "event",
        False,
        frozenset({"acme/api"}),
    )


def test_a_burst_of_events_becomes_one_pass(start_loop: Callable[..., Running]) -> None:
    passes = Passes()
    running = start_loop(passes, interval=60.0, debounce=0.15)
    passes.wait_for(1)
    for index in range(5):
        running.events.put(registry_event(f"acme/svc{index % 3}", tag=str(index)))
        time.sleep(0.02)
    passes.wait_for(2)
    time.sleep(0.4)
    running.stop_and_join()
    assert len(passes.requests) == 2
    assert passes.requests[1].repositories == {"acme/svc0", "acme/svc1", "acme/svc2"}
    assert len(passes.requests[1].events) == 5


def test_passes_never_overlap(start_loop: Callable[..., Running]) -> None:
    passes = Passes(duration=0.1)
    running = start_loop(passes, interval=0.05, jitter=0.0, debounce=0.01)
    feeder_stop = threading.Event()

    def feed() -> None:
        while not feeder_stop.is_set():
            running.events.put(registry_event("acme/api"))
            time.sleep(0.01)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    passes.wait_for(6)
    feeder_stop.set()
    feeder.join()
    running.stop_and_join()
    assert passes.max_running == 1


def test_git_push_and_config_change_make_a_full_pass() -> None:
    git = WebhookEvent(
        kind="git", source="github-push", repository="acme/config", ref="refs/heads/main"
    )
    request = build_request([registry_event("acme/api"), git], reason="event", full=False)
    assert (request.full, request.config_changed) == (True, True)
    request = build_request([ConfigChanged("/etc/creds/token")], reason="event", full=False)
    assert request.changed_paths == {"/etc/creds/token"} and request.full
    request = build_request([registry_event("acme/api")], reason="event", full=False)
    assert (request.full, request.config_changed) == (False, False)


def test_stop_exits_promptly_mid_sleep(start_loop: Callable[..., Running]) -> None:
    passes = Passes()
    running = start_loop(passes, interval=3600.0)
    passes.wait_for(1)
    time.sleep(0.1)
    assert running.stop_and_join() < 1.0


def test_stop_during_a_pass_lets_it_finish(start_loop: Callable[..., Running]) -> None:
    passes = Passes(duration=0.3)
    running = start_loop(passes, interval=3600.0)
    passes.wait_for(1)
    elapsed = running.stop_and_join()
    assert passes.running == 0
    assert elapsed < 2.0
    assert len(passes.requests) == 1


def test_a_raising_pass_does_not_kill_the_loop(start_loop: Callable[..., Running]) -> None:
    def behaviour(number: int) -> PassOutcome:
        if number == 1:
            raise RuntimeError("bug in the pass")
        if number == 2:
            raise GitError("remote unreachable")
        return PassOutcome(ok=True, releases_created=1)

    passes = Passes(behaviour=behaviour)
    metrics = Metrics()
    health = Health(max_age=60)
    running = start_loop(passes, interval=0.1, jitter=0.0, metrics=metrics, health=health)
    passes.wait_for(2)
    time.sleep(0.05)
    assert health.readiness() == (False, "config repository unreachable: pass crashed: GitError")
    passes.wait_for(3)
    time.sleep(0.05)
    running.stop_and_join()
    samples = {
        (s.name, s.labels.get("outcome")): s.value
        for family in text_string_to_metric_families(metrics.exposition()[0].decode())
        for s in family.samples
    }
    assert samples[("reconciler_passes_total", "crashed")] == 2
    assert samples[("reconciler_passes_total", "ok")] >= 1
    assert samples[("reconciler_last_successful_pass_timestamp_seconds", None)] > 0
    assert health.readiness()[0] is True


def test_pass_outcome_labels() -> None:
    assert PassOutcome(ok=True).label == "ok"
    assert PassOutcome(ok=True, errors=("feed ghcr: 429",)).label == "partial"
    assert PassOutcome(ok=False, errors=("push failed",)).label == "failed"


def test_signal_handler_sets_stop() -> None:
    stop = threading.Event()
    previous = install_signal_handlers(stop)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(2)
        with pytest.raises(KeyboardInterrupt):  # a second signal forces the exit
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------- backoff


def test_backoff_grows_exponentially_with_full_jitter_and_a_cap() -> None:
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(7))
    delays = [backoff.failure("ghcr", now=0.0) for _ in range(8)]
    ceilings = [1, 2, 4, 8, 8, 8, 8, 8]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True)), delays
    assert backoff.failures("ghcr") == 8
    backoff.success("ghcr")
    assert backoff.failures("ghcr") == 0 and backoff.ready("ghcr", now=0.0)


def test_backoff_honours_retry_after() -> None:
    backoff = Backoff(base=1.0, cap=10.0, rng=random.Random(3))
    error = FeedRateLimited("ghcr", "429 Too Many Requests", retry_after=120.0)
    delay = backoff.failure("ghcr", now=1000.0, retry_after=error.retry_after)
    assert delay == 120.0  # above the cap: the registry asked for it
    assert not backoff.ready("ghcr", now=1119.0)
    assert backoff.ready("ghcr", now=1120.0)
    assert backoff.ready("dockerhub", now=1000.0)  # other feeds are unaffected
    # An absurd Retry-After is capped.
    assert backoff.failure("x", now=0.0, retry_after=10**9) == backoff.max_retry_after


# ---------------------------------------------------------------------- watching


def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_touching_a_watched_file_wakes_the_loop(
    tmp_path: Path, start_loop: Callable[..., Running]
) -> None:
    creds = tmp_path / "password"
    creds.write_text("one")
    passes = Passes()
    running = start_loop(passes, interval=3600.0)
    passes.wait_for(1)
    watcher = watch_paths([creds], lambda path: running.events.put(ConfigChanged(path)))
    try:
        time.sleep(0.1)
        creds.write_text("two")
        passes.wait_for(2)
    finally:
        watcher.close()
        running.stop_and_join()
    request = passes.requests[1]
    assert request.config_changed and request.changed_paths == {str(creds)}


def test_reading_a_watched_file_does_not_wake_the_loop(tmp_path: Path) -> None:
    creds = tmp_path / "password"
    creds.write_text("one")
    changes: list[str] = []
    watcher = watch_paths([creds], changes.append)
    try:
        time.sleep(0.1)
        creds.read_text()
        time.sleep(0.4)
    finally:
        watcher.close()
    assert changes == []


def test_kubernetes_atomic_symlink_swap_is_noticed(tmp_path: Path) -> None:
    """Secret volumes: token -> ..data/token, ..data -> ..2024_1; updates rename ..data."""
    mount = tmp_path / "secret"
    (mount / "..2024_1").mkdir(parents=True)
    (mount / "..2024_1" / "token").write_text("old")
    (mount / "..data").symlink_to("..2024_1")
    (mount / "token").symlink_to("..data/token")
    changes: list[str] = []
    watcher = watch_paths([mount / "token"], changes.append)
    try:
        time.sleep(0.1)
        (mount / "..2024_2").mkdir()
        (mount / "..2024_2" / "token").write_text("new")
        (mount / "..data_tmp").symlink_to("..2024_2")
        os.replace(mount / "..data_tmp", mount / "..data")
        assert wait_until(lambda: str(mount / "token") in changes)
    finally:
        watcher.close()
    assert (mount / "token").read_text() == "new"


def test_watched_directory_ignores_git_internals(tmp_path: Path) -> None:
    config = tmp_path / "config"
    (config / ".git").mkdir(parents=True)
    (config / "feeds").mkdir()
    changes: list[str] = []
    watcher = watch_paths([config], changes.append)
    try:
        time.sleep(0.1)
        (config / ".git" / "index").write_text("x")
        time.sleep(0.3)
        assert changes == []
        (config / "feeds" / "ghcr.yaml").write_text("kind: Feed\n")
        assert wait_until(lambda: changes == [str(config)] or len(changes) > 0)
    finally:
        watcher.close()
    assert set(changes) == {str(config)}


def test_a_watched_directory_is_reported_as_it_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sidecar matches reported paths against its credential list as configured
    (relative, trailing slash): a reported absolute path would never match."""
    (tmp_path / "secrets").mkdir()
    monkeypatch.chdir(tmp_path)
    changes: list[str] = []
    watcher = watch_paths(["secrets/"], changes.append)
    try:
        time.sleep(0.1)
        (tmp_path / "secrets" / "token").write_text("rotated")
        assert wait_until(lambda: len(changes) > 0)
    finally:
        watcher.close()
    assert set(changes) == {"secrets/"}


def test_a_pass_runs_at_wake_at_not_at_the_interval(start_loop: Callable[..., Running]) -> None:
    """Issue 17: a soak or freeze ending, or a verification poll, runs a pass then."""

    def behaviour(number: int) -> PassOutcome:
        # the first pass: "a soak ends in 1.5 s"; later passes: nothing due
        return PassOutcome(ok=True, wake_at=time.time() + 1.5 if number == 1 else None)

    passes = Passes(behaviour=behaviour)
    running = start_loop(passes, interval=60.0)
    passes.wait_for(2, timeout=10)
    running.stop_and_join()
    assert [r.reason for r in passes.requests] == ["startup", "wake"]
    assert passes.requests[1].full is False  # the interval timer is not reset
    assert passes.started[1] - passes.started[0] >= 1.4


def test_without_wake_at_the_loop_waits_for_the_interval(
    start_loop: Callable[..., Running],
) -> None:
    passes = Passes()
    running = start_loop(passes, interval=60.0)
    passes.wait_for(1)
    time.sleep(1.5)
    running.stop_and_join()
    assert [r.reason for r in passes.requests] == ["startup"]
