"""End to end: ``reconciler run`` as a whole process, woken by real webhooks.

Every test starts the sidecar as a subprocess (``--interval`` of an hour, so after
the startup pass only events cause passes), waits for ``/readyz``, acts over real
HTTP and reads the outcome from a real bare Git remote. Registries are the Debian
``docker-registry``; its notifications are real deliveries, not crafted bodies.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler import yamlio
from reconciler.webhooks import hmac_sha256_hex
from tests.helpers.configrepo import AppSpec, config_files, run_cli
from tests.helpers.gitserver import BareRemote
from tests.helpers.registry import RegistryServer, _htpasswd_line, start_registry
from tests.reliability.faultproxy import FaultProxy

SECRET = "sidecar-webhook-secret-0123"
HOUR = "3600"  # --interval: no timer-driven pass during a test
READY_TIMEOUT = 30.0
# SIGTERM ends the process once the pass in progress is done: ~0.5-2.5 s here (a first
# clone plus the remote's 1 s hook at worst); the bound leaves room for a loaded CI machine.
STOP_TIMEOUT = 10.0
OVERLAY_DEV = "deploy/shop/overlays/dev/kustomization.yaml"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
FINISHED = re.compile(r"pass (ok|partial|failed) in |pass crashed after ")


def free_port() -> int:
    """A loopback port that was free a moment ago (the registry must know it up front)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ts(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(entry["ts"]).timestamp()


@dataclass
class Sidecar:
    """A running ``reconciler run`` process and its JSON log."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10.0))

    def logs(self) -> list[dict[str, Any]]:
        entries = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    entries.append(json.loads(line))
                except ValueError:  # a line still being written
                    continue
        return entries

    def messages(self, prefix: str) -> list[dict[str, Any]]:
        return [e for e in self.logs() if e["msg"].startswith(prefix)]

    def wait_for_log(self, prefix: str, count: int = 1, timeout: float = 15.0) -> dict[str, Any]:
        """The ``count``-th log entry whose message starts with ``prefix``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages(prefix)
            if len(found) >= count:
                return found[count - 1]
            self.assert_alive()
            time.sleep(0.02)
        raise AssertionError(f"no {count} log(s) {prefix!r} within {timeout}s:\n{self.text()}")

    def text(self) -> str:
        """The log's tail without the (debug-level) HTTP and git chatter, for failures."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        noisy = ('"logger": "httpcore', '"logger": "git.cmd"', '"logger": "watchdog')
        return "\n".join(line for line in lines if not any(n in line for n in noisy))[-6000:]

    def assert_alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"sidecar exited with {self.process.returncode}:\n{self.text()}")

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.assert_alive()
            try:
                if self.client.get(f"{self.url}/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            time.sleep(0.05)
        raise AssertionError(f"/readyz not 200 within {timeout}s:\n{self.text()}")

    def passes_finished(self) -> int:
        """Passes that ended ("pass ok in 0.12s: ...", "pass crashed after ...")."""
        return len([e for e in self.logs() if FINISHED.match(e["msg"])])

    def wait_passes(self, count: int, timeout: float = 10.0) -> None:
        """Until ``count`` passes in all have finished."""
        wait_until(lambda: self.passes_finished() >= count, timeout, f"{count} finished passes")

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return self.client.post(f"{self.url}{path}", content=body, headers=headers)

    def post_distribution(self, body: bytes, token: str = SECRET) -> httpx.Response:
        headers = {
            "Content-Type": "application/vnd.docker.distribution.events.v1+json",
            "Authorization": f"Bearer {token}",
        }
        return self.post("/hooks/distribution", body, headers)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.client.close()
        return self.process.returncode


@pytest.fixture
def start_sidecar(tmp_path: Path) -> Iterator[Callable[..., Sidecar]]:
    """``start_sidecar(remote, port=None, env=None, work=None)``; all are stopped at the end."""
    started: list[Sidecar] = []

    def start(
        remote: BareRemote,
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        work: Path | None = None,
    ) -> Sidecar:
        port = port or free_port()
        log_path = tmp_path / f"sidecar-{len(started)}.log"
        command = [
            sys.executable, "-m", "reconciler.cli", "run",
            "--repo", remote.url,
            "--work-dir", str(work or tmp_path / "work"),
            "--listen", f"127.0.0.1:{port}",
            "--interval", HOUR,
            "--jitter", "0",
            "--log-level", "debug",  # "pass starting" and webhook arrivals are debug lines
            "--log-format", "json",
        ]  # fmt: skip
        full_env = {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",
            "RECONCILER_WEBHOOK_SECRET": SECRET,
            **(env or {}),
        }
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, env=full_env,
                stdin=subprocess.DEVNULL, cwd=tmp_path,
            )  # fmt: skip
        sidecar = Sidecar(process, f"http://127.0.0.1:{port}", log_path)
        started.append(sidecar)
        return sidecar

    yield start
    for sidecar in started:
        sidecar.stop(signal.SIGKILL if sidecar.process.poll() is None else signal.SIGTERM)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"{what} did not happen within {timeout}s")


def release_on_remote(remote: BareRemote, version: str) -> bool:
    return f"releases/shop/{version}.yaml" in remote.files()


def deployed_on_remote(remote: BareRemote, environment: str, tag: str) -> bool:
    overlay = remote.show(f"deploy/shop/overlays/{environment}/kustomization.yaml")
    return f"newTag: {tag}" in overlay


def distribution_body(registry_host: str, repository: str, tag: str, digest: str) -> bytes:
    """A CNCF distribution notification envelope as docker-registry 2.8 sends it."""
    event = {
        "id": str(uuid.uuid4()),
        "timestamp": "2026-01-01T00:00:00Z",
        "action": "push",
        "target": {
            "mediaType": MANIFEST_TYPE,
            "digest": digest,
            "repository": repository,
            "tag": tag,
            "url": f"http://{registry_host}/v2/{repository}/manifests/{digest}",
        },
        "request": {"host": registry_host, "method": "PUT"},
    }
    return json.dumps({"events": [event]}).encode()


def assert_remote_consistent(remote: BareRemote) -> list[str]:
    """Every release record on the remote is matched by the state file and the dev overlay
    of the same commit (HEAD): no commit holds half of a release. Returns the versions."""
    files = remote.files()
    versions = sorted(
        f.removeprefix("releases/shop/").removesuffix(".yaml")
        for f in files
        if f.startswith("releases/shop/")
    )
    overlay = yamlio.load_one(remote.show(OVERLAY_DEV))
    if not versions:
        assert "state/shop.yaml" not in files
        assert overlay["images"][0]["newTag"] == "0.0.0"
        return versions
    state = yamlio.load_one(remote.show("state/shop.yaml"))
    newest = max(versions, key=lambda v: tuple(int(p) for p in v.split(".")))
    assert state["channels"]["stable"] == newest
    assert state["environments"]["dev"][-1]["release"] == newest
    record = yamlio.load_one(remote.show(f"releases/shop/{newest}.yaml"))
    assert overlay["images"][0]["newTag"] == record["packages"]["api"]["version"]
    return versions


def shop(registry_url: str, **options: Any) -> tuple[AppSpec, dict[str, str]]:
    """One image package ``api`` in a fresh repository, and the config repo files."""
    app = AppSpec("api", f"side{uuid.uuid4().hex[:8]}/api", "example.com/shop/api")
    return app, config_files(registry_url, [app], **options)


# ------------------------------------------------------------------ 1. registry -> release


def test_registry_notification_creates_the_release_at_once(
    start_sidecar: Callable[..., Sidecar], bare_remote: Callable[..., BareRemote], tmp_path: Path
) -> None:
    port = free_port()
    notifications = {
        "endpoints": [
            {
                "name": "reconciler",
                "url": f"http://127.0.0.1:{port}/hooks/distribution",
                "headers": {"Authorization": [f"Bearer {SECRET}"]},
                "timeout": "1s",
                "threshold": 5,
                "backoff": "1s",
                "ignore": {"actions": ["pull"]},
            }
        ]
    }
    registry = start_registry(tmp_path / "registry", extra={"notifications": notifications})
    try:
        app, files = shop(registry.url)
        registry.push(app.repository, "1.0.0")
        remote = bare_remote(seed=files)
        sidecar = start_sidecar(remote, port=port)
        sidecar.wait_ready()
        assert release_on_remote(remote, "1.0.0")  # the startup pass
        # Staging (automatic) follows dev in a pass of its own, about a second later.
        wait_until(lambda: deployed_on_remote(remote, "staging", "1.0.0"), 15, "staging 1.0.0")
        # docker-registry retries the 1.0.0 notification that found nobody listening;
        # let it arrive first, so that the next arrival is 1.1.0's.
        sidecar.wait_for_log("webhook distribution: 1 event", 1, timeout=15)
        head = remote.head()
        arrivals_before = len(sidecar.messages("webhook distribution: 1 event"))

        push_started = time.time()
        registry.push(app.repository, "1.1.0")
        pushed_at = time.time()
        wait_until(lambda: release_on_remote(remote, "1.0.1"), 15, "release 1.0.1 on the remote")
        seen_at = time.time()

        # The webhook (not a timer: the interval is an hour) caused it. The 1.0.0
        # notification's own pass (nothing new) may still end after 1.1.0's arrival, so
        # the pass is found by what it did, and by what started it.
        arrival = sidecar.wait_for_log("webhook distribution: 1 event", arrivals_before + 1)
        finished = wait_until(
            lambda: [
                e
                for e in sidecar.messages("pass ok")
                if _ts(e) >= _ts(arrival) and "1 release(s)" in e["msg"]
            ],
            10,
            "the release pass's log line",
        )[0]
        started = [e for e in sidecar.messages("pass starting") if _ts(e) <= _ts(finished)][-1]
        assert started["msg"].startswith("pass starting: event"), started
        assert app.repository in started["msg"]
        latency = _ts(finished) - _ts(arrival)
        # The registry notifies as it stores the manifest, so the webhook may arrive
        # before the pushing client has read its 201: measure from the push's start too.
        print(
            f"registry notification delay: {_ts(arrival) - pushed_at:+.2f} s after the push "
            f"returned ({_ts(arrival) - push_started:.2f} s after it started)"
        )
        print(f"webhook-to-commit latency: {latency:.2f} s")
        print(f"push-to-commit seen by the test: {seen_at - pushed_at:.2f} s")
        assert 0 <= latency < 15
        # Exactly one new commit carries the release, right on top of the head before:
        # (staging's follow-up deployment of 1.0.1 may already sit above it).
        released = [
            line.split("|")[0]
            for line in remote.log_format("%P|%(trailers:key=Release,valueonly,separator=%x2C)")
            if line.endswith("|shop 1.0.1")
        ]
        assert released == [head]
        record = yamlio.load_one(remote.show("releases/shop/1.0.1.yaml"))
        assert record["packages"]["api"]["version"] == "1.1.0"
        assert_remote_consistent(remote)
    finally:
        registry.stop()


def test_an_automatic_phase_follows_the_one_just_deployed_without_an_event(
    registry: RegistryServer,
    start_sidecar: Callable[..., Sidecar],
    bare_remote: Callable[..., BareRemote],
) -> None:
    """dev gets 1.0.0 at start-up; staging (automatic, no soak) gets it from a pass the
    sidecar runs by itself right after, not an hour later; prod (manual) waits."""
    app, files = shop(registry.url)
    registry.push(app.repository, "1.0.0")
    remote = bare_remote(seed=files)
    sidecar = start_sidecar(remote)
    wait_until(lambda: deployed_on_remote(remote, "staging", "1.0.0"), 15, "staging 1.0.0")
    sidecar.wait_passes(2)
    starts = [e["msg"] for e in sidecar.messages("pass starting")]
    assert starts[0].startswith("pass starting: startup"), starts
    assert starts[1].startswith("pass starting: wake"), starts
    subjects = remote.log_format("%(trailers:key=Deployed,valueonly,separator=%x2C)")
    assert subjects[:2] == ["shop 1.0.0 staging", "shop 1.0.0 dev"]  # one commit each
    assert deployed_on_remote(remote, "prod", "0.0.0")  # manual: never by itself


# ------------------------------------------------------------ 2. hostile webhooks


def github_headers(body: bytes, event: str = "push", secret: str = SECRET) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": "sha256=" + hmac_sha256_hex(secret, body),
    }


def test_rejected_webhooks_start_no_pass_and_the_sidecar_keeps_serving(
    registry: RegistryServer,
    start_sidecar: Callable[..., Sidecar],
    bare_remote: Callable[..., BareRemote],
) -> None:
    app, files = shop(registry.url)
    registry.push(app.repository, "1.0.0")
    remote = bare_remote(seed=files)
    sidecar = start_sidecar(remote)
    sidecar.wait_ready()
    # The startup pass deploys 1.0.0 to dev and a follow-up pass of its own to staging.
    wait_until(lambda: deployed_on_remote(remote, "staging", "1.0.0"), 15, "staging 1.0.0")
    sidecar.wait_passes(2)
    digest = registry.push(app.repository, "1.1.0")  # a pass now WOULD make a commit
    head = remote.head()
    body = distribution_body(registry.host, app.repository, "1.1.0", digest)

    assert sidecar.post_distribution(body, token="wrong-token").status_code == 401
    no_auth = {"Content-Type": "application/json"}
    assert sidecar.post("/hooks/distribution", body, no_auth).status_code == 401
    push = json.dumps({"ref": "refs/heads/main", "repository": {"full_name": "a/b"}}).encode()
    forged = github_headers(push, secret="not-the-secret")
    assert sidecar.post("/hooks/github", push, forged).status_code == 401
    oversized = sidecar.post_distribution(b"{" + b" " * (2 * 1024 * 1024) + b"}")
    assert oversized.status_code == 413
    malformed = sidecar.post_distribution(b'{"events": [')
    assert malformed.status_code == 400
    assert "malformed JSON" in malformed.json()["error"]

    time.sleep(1.0)  # well past the 0.15 s debounce: a queued event would have run by now
    assert sidecar.client.get(f"{sidecar.url}/healthz").status_code == 200
    assert len(sidecar.messages("pass starting")) == 2  # the startup pass and its follow-up
    assert remote.head() == head
    metrics = scrape(sidecar)
    webhooks = {
        (s.labels["source"], s.labels["outcome"]): s.value
        for s in metrics["reconciler_webhook_events"].samples
        if s.name.endswith("_total")
    }
    assert webhooks == {
        ("distribution", "unauthorized"): 2,
        ("github", "unauthorized"): 1,
        ("distribution", "too-large"): 1,
        ("distribution", "malformed"): 1,
    }

    # The same delivery with the right token is acted on: the refusals above were the
    # only thing standing between it and a release.
    assert sidecar.post_distribution(body).status_code == 202
    wait_until(lambda: release_on_remote(remote, "1.0.1"), 15, "release 1.0.1 after a good hook")
    assert sidecar.messages("pass starting")[2]["msg"].startswith("pass starting: event")


# --------------------------------------------------------------- 3. SIGTERM mid-pass


@pytest.mark.parametrize(
    ("moment", "delay"),
    [
        ("startup", 0.0),  # while the first pass runs
        ("event", 0.0),  # while the webhook burst settles (before the pass)
        ("event", 0.05),
        ("event", 0.25),  # the pass polls / renders
        ("event", 0.6),  # the push is under way (the remote's hook sleeps 1 s)
        ("event", 1.2),
    ],
)
def test_sigterm_during_a_pass_leaves_all_or_nothing(
    moment: str,
    delay: float,
    registry: RegistryServer,
    start_sidecar: Callable[..., Sidecar],
    bare_remote: Callable[..., BareRemote],
    tmp_path: Path,
) -> None:
    app, files = shop(registry.url)
    registry.push(app.repository, "1.0.0")
    remote = bare_remote(seed=files)
    # A slow receive widens the window in which the signal lands inside `git push`.
    remote.install_hook("pre-receive", "sleep 1")
    work = tmp_path / "work"
    sidecar = start_sidecar(remote, work=work)
    expected = "1.0.0"
    if moment == "startup":
        sidecar.wait_for_log("pass starting: startup")
    else:
        sidecar.wait_ready()
        expected = "1.0.1"
        digest = registry.push(app.repository, "1.1.0")
        body = distribution_body(registry.host, app.repository, "1.1.0", digest)
        assert sidecar.post_distribution(body).status_code == 202
    time.sleep(delay)
    signalled = time.monotonic()
    sidecar.process.send_signal(signal.SIGTERM)
    try:
        code = sidecar.process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"no exit {STOP_TIMEOUT}s after SIGTERM:\n{sidecar.text()}") from None
    print(f"{moment}+{delay}s: exited {time.monotonic() - signalled:.2f}s after SIGTERM")
    assert code == 0, sidecar.text()
    assert sidecar.messages("loop stopped")

    versions = assert_remote_consistent(remote)
    assert set(versions) <= {"1.0.0", expected}
    # What the interrupted sidecar started, it finished: a pass that began ended with a log
    # line (never cut off in the middle), and a finished pass pushed its release.
    started = len(sidecar.messages("pass starting"))
    assert sidecar.passes_finished() == started
    if moment == "event" and started == 2:
        assert expected in versions

    # A `reconciler once` on the same work dir completes the work, exactly once.
    remote.install_hook("pre-receive", "exit 0")
    proc = run_cli("once", "--repo", remote.url, "--work-dir", str(work), "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert expected in assert_remote_consistent(remote)
    trailers = "\n".join(remote.log_format("%(trailers:only,unfold)"))
    assert trailers.count(f"Release: shop {expected}\n") == 1


# ------------------------------------------------------- 4. rotated credential file


class MountedSecret:
    """A Kubernetes-style Secret volume: ``dir/password -> ..data/password``, where
    ``..data`` is a symlink to a timestamped directory that the kubelet replaces by
    renaming a new symlink over it (so the file's own path never sees a write)."""

    def __init__(self, directory: Path, password: str) -> None:
        self.directory = directory
        self.generation = 0
        directory.mkdir()
        self._write_generation(password)
        (directory / "..data").symlink_to(self._current)
        (directory / "password").symlink_to("..data/password")

    @property
    def path(self) -> Path:
        return self.directory / "password"

    def _write_generation(self, password: str) -> None:
        self.generation += 1
        self._current = f"..2026_01_01_00_00_0{self.generation}.{uuid.uuid4().hex[:6]}"
        target = self.directory / self._current
        target.mkdir()
        (target / "password").write_text(password + "\n")  # as `kubectl create secret` would

    def rotate(self, password: str) -> None:
        old = self._current
        self._write_generation(password)
        tmp = self.directory / "..data_tmp"
        tmp.symlink_to(self._current)
        os.replace(tmp, self.directory / "..data")
        for entry in (self.directory / old).iterdir():
            entry.unlink()
        (self.directory / old).rmdir()


def htpasswd_registry(workdir: Path, port: int, password: str) -> RegistryServer:
    workdir.mkdir(parents=True, exist_ok=True)
    htpasswd = workdir / f"htpasswd-{uuid.uuid4().hex[:6]}"
    htpasswd.write_text(_htpasswd_line("u", password))
    return start_registry(
        workdir,
        {"htpasswd": {"realm": "test", "path": str(htpasswd)}},
        username="u",
        password=password,
        addr=f"127.0.0.1:{port}",
    )


def secret_grants(secrets_dir: Path, registry: RegistryServer) -> dict[str, str]:
    """The operator grants the test's secret directory to feeds and lets credentials
    go to the plain-http test registry."""
    return {
        "RECONCILER_CREDENTIALS_DIR": str(secrets_dir),
        "RECONCILER_ALLOW_HTTP_CREDENTIALS": registry.host,
    }


@pytest.mark.parametrize("wake", ["file-watch", "webhook"])
def test_rotated_password_file_is_used_without_a_restart(
    wake: str,
    start_sidecar: Callable[..., Sidecar],
    bare_remote: Callable[..., BareRemote],
    tmp_path: Path,
) -> None:
    port = free_port()
    secret = MountedSecret(tmp_path / "secret", "first-password")
    registry = htpasswd_registry(tmp_path / "registry", port, "first-password")
    try:
        credentials = f"  username: u\n  passwordFile: {secret.path}\n"
        app, files = shop(registry.url, feed_extra=f"insecure: true\ncredentials:\n{credentials}")
        registry.push(app.repository, "1.0.0")
        remote = bare_remote(seed=files)
        # file-watch: the mounted file itself wakes the loop; webhook: a registry
        # notification may wake it first (the feed's passwordFile is watched too), and
        # that pass must read the new file.
        env = {"RECONCILER_WATCH_FILES": str(secret.path)} if wake == "file-watch" else {}
        sidecar = start_sidecar(remote, env={**env, **secret_grants(tmp_path, registry)})
        sidecar.wait_ready()
        assert release_on_remote(remote, "1.0.0")

        # The registry's password changes (same address, same storage) ...
        registry.stop()
        registry = htpasswd_registry(tmp_path / "registry", port, "second-password")
        tags_url = f"{registry.url}/v2/{app.repository}/tags/list"
        assert httpx.get(tags_url, auth=("u", "first-password")).status_code == 401
        digest = registry.push(app.repository, "1.1.0")
        # ... and then the mounted Secret follows, as the kubelet would update it.
        rotated = time.time()
        secret.rotate("second-password")
        if wake == "webhook":
            body = distribution_body(registry.host, app.repository, "1.1.0", digest)
            assert sidecar.post_distribution(body).status_code == 202

        wait_until(lambda: release_on_remote(remote, "1.0.1"), 15, "release 1.0.1 (new password)")
        print(f"{wake}: credential rotation to commit: {time.time() - rotated:.2f} s")
        woken = sidecar.messages("pass starting")[1]["msg"]
        if wake == "file-watch":  # a watched file reloads everything
            assert woken.startswith("pass starting: event, full=True"), woken
        else:
            assert woken.startswith("pass starting: event"), woken
        assert sidecar.process.poll() is None  # the same process, never restarted
        record = yamlio.load_one(remote.show("releases/shop/1.0.1.yaml"))
        assert record["packages"]["api"]["version"] == "1.1.0"
        assert "second-password" not in sidecar.log_path.read_text()
    finally:
        registry.stop()


@pytest.mark.parametrize("named_in_env", [True, False], ids=["watch-env", "feed-passwordFile"])
def test_a_rotated_credential_file_ends_the_backoff_of_a_rejected_feed(
    start_sidecar: Callable[..., Sidecar],
    bare_remote: Callable[..., BareRemote],
    tmp_path: Path,
    named_in_env: bool,
) -> None:
    """The usual order in Kubernetes: the registry password changes first, a pass meets
    401 (so the feed backs off), and the kubelet updates the mounted Secret up to a
    minute later. The pass that the new file wakes must use it at once.

    The backoff delay is random (up to 5 s after one failure): three rounds make the
    outcome certain in practice, because with the bug a round only succeeds when the
    delay happened to end within the ~0.3 s before the file's pass.

    The file is watched whether RECONCILER_WATCH_FILES names it or only the feed's
    ``passwordFile`` does.
    """
    port = free_port()
    secret = MountedSecret(tmp_path / "secret", "password-0")
    registry = htpasswd_registry(tmp_path / "registry", port, "password-0")
    try:
        credentials = f"  username: u\n  passwordFile: {secret.path}\n"
        app, files = shop(registry.url, feed_extra=f"insecure: true\ncredentials:\n{credentials}")
        registry.push(app.repository, "1.0.0")
        remote = bare_remote(seed=files)
        env = {"RECONCILER_WATCH_FILES": str(secret.path)} if named_in_env else {}
        sidecar = start_sidecar(remote, env={**env, **secret_grants(tmp_path, registry)})
        sidecar.wait_ready()
        for round_ in (1, 2, 3):
            registry.stop()
            password = f"password-{round_}"
            registry = htpasswd_registry(tmp_path / "registry", port, password)
            digest = registry.push(app.repository, f"1.{round_}.0")
            finished = sidecar.passes_finished()
            body = distribution_body(registry.host, app.repository, f"1.{round_}.0", digest)
            assert sidecar.post_distribution(body).status_code == 202
            sidecar.wait_passes(finished + 1)  # the pass with the stale password
            assert sidecar.messages("pass partial")  # the stale password was refused
            secret.rotate(password)
            sidecar.wait_passes(finished + 2)  # the pass the new file woke
            assert release_on_remote(remote, f"1.0.{round_}"), sidecar.text()
    finally:
        registry.stop()


def test_only_a_credential_rotation_cuts_a_feeds_retry_after_short(
    registry: RegistryServer,
    start_sidecar: Callable[..., Sidecar],
    bare_remote: Callable[..., BareRemote],
) -> None:
    """A registry that said 429 with Retry-After: 120 is left alone until then, even when
    a commit to the config repository wakes a pass in between."""
    with FaultProxy(registry.url) as proxy:
        proxy.retry_after = "120"
        proxy.set_fault(r"/tags/list", "429")
        app, files = shop(proxy.url)
        registry.push(app.repository, "1.0.0")
        remote = bare_remote(seed=files)
        sidecar = start_sidecar(remote)
        sidecar.wait_passes(1)
        assert proxy.hits["429"] >= 1
        asked = list(proxy.requests)

        remote.human_commit({"docs/notes.md": "a commit wakes a pass\n"}, "docs")
        sidecar.wait_passes(2)
        assert sidecar.messages("pass starting")[1]["msg"].startswith("pass starting: event")
        assert proxy.requests == asked  # nothing sent before the Retry-After deadline
        assert not release_on_remote(remote, "1.0.0")


# ------------------------------------------------------------------- 5. /metrics


def scrape(sidecar: Sidecar) -> dict[str, Any]:
    response = sidecar.client.get(f"{sidecar.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(response.text)}


def value(metrics: dict[str, Any], sample: str, **labels: str) -> float:
    """The value of the sample named ``sample`` (e.g. ``x_total``) carrying ``labels``."""
    for family in metrics.values():
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    raise AssertionError(f"no sample {sample} {labels}")


def test_metrics_after_a_pass(
    registry: RegistryServer,
    start_sidecar: Callable[..., Sidecar],
    bare_remote: Callable[..., BareRemote],
) -> None:
    app, files = shop(registry.url)
    registry.push(app.repository, "1.0.0")
    remote = bare_remote(seed=files)
    before = time.time()
    sidecar = start_sidecar(remote)
    sidecar.wait_ready()
    digest = registry.push(app.repository, "1.1.0")
    body = distribution_body(registry.host, app.repository, "1.1.0", digest)
    assert sidecar.post_distribution(body).status_code == 202
    wait_until(lambda: release_on_remote(remote, "1.0.1"), 15, "release 1.0.1")
    sidecar.wait_passes(2)  # the event's pass is counted once it has logged its end

    metrics = scrape(sidecar)
    assert metrics["reconciler_pass_duration_seconds"].type == "histogram"
    assert value(metrics, "reconciler_pass_duration_seconds_count") >= 2
    assert 0 < value(metrics, "reconciler_pass_duration_seconds_sum") < 60
    assert value(metrics, "reconciler_passes_total", outcome="ok") >= 2
    created = value(metrics, "reconciler_releases_created_total", project="shop", channel="stable")
    assert created == 2
    tags = value(metrics, "reconciler_feed_requests_total", feed="reg", kind="tags", status="200")
    assert tags >= 2
    heads = value(metrics, "reconciler_feed_requests_total", feed="reg", kind="manifest")
    assert heads >= 1
    assert value(metrics, "reconciler_feed_request_duration_seconds_count", feed="reg") >= 2
    last = value(metrics, "reconciler_last_successful_pass_timestamp_seconds")
    assert before < last <= time.time()
    accepted = value(
        metrics, "reconciler_webhook_events_total", source="distribution", outcome="accepted"
    )
    assert accepted == 1
    # Label values come from the config and fixed vocabularies: never tags or digests.
    labels = {v for f in metrics.values() for s in f.samples for v in s.labels.values()}
    assert not any("1.1.0" in v or "sha256:" in v for v in labels)


# ---------------------------------------------------------- 6. Git push webhook


def test_github_push_webhook_resyncs_the_config_at_once(
    registry: RegistryServer,
    start_sidecar: Callable[..., Sidecar],
    bare_remote: Callable[..., BareRemote],
) -> None:
    app = AppSpec("api", f"side{uuid.uuid4().hex[:8]}/api", "example.com/shop/api")
    trigger = (
        "apiVersion: reconciler.dev/v1\nkind: Trigger\nname: shop-images\nproject: shop\n"
        "channel: stable\nsources: [api]\n"
    )
    files = config_files(registry.url, [app], triggers=trigger + "enabled: false\n")
    registry.push(app.repository, "1.0.0")
    remote = bare_remote(seed=files)
    sidecar = start_sidecar(remote)
    sidecar.wait_ready()
    assert not release_on_remote(remote, "1.0.0")  # the trigger is off

    sha = remote.human_commit({"projects/shop/triggers.yaml": trigger}, "enable shop-images")
    push = {
        "ref": "refs/heads/main",
        "before": "0" * 40,
        "after": sha,
        "repository": {"full_name": "acme/gitops-config"},
        "pusher": {"name": "human"},
    }
    body = json.dumps(push).encode()
    sent = time.monotonic()
    response = sidecar.post("/hooks/github", body, github_headers(body))
    assert response.status_code == 202 and response.json() == {"accepted": 1, "replayed": 0}
    wait_until(lambda: release_on_remote(remote, "1.0.0"), 15, "release 1.0.0 after the push")
    print(f"git push webhook to release: {time.monotonic() - sent:.2f} s")
    woken = sidecar.messages("pass starting")[1]["msg"]
    assert woken.startswith("pass starting: event, full=True"), woken
    assert remote.log_format("%P")[0] == sha  # built on top of the human commit
    assert "Release: shop 1.0.0" in remote.log_format("%(trailers:only,unfold)")[0]


def test_a_push_to_a_repository_on_this_machine_starts_a_pass_without_a_webhook(
    registry: RegistryServer,
    start_sidecar: Callable[..., Sidecar],
    bare_remote: Callable[..., BareRemote],
) -> None:
    """A config repository on a mounted volume (here a file:// bare repository) is
    watched: a commit to its branch wakes a pass, the reconciler's own pushes do not."""
    app = AppSpec("api", f"side{uuid.uuid4().hex[:8]}/api", "example.com/shop/api")
    trigger = (
        "apiVersion: reconciler.dev/v1\nkind: Trigger\nname: shop-images\nproject: shop\n"
        "channel: stable\nsources: [api]\n"
    )
    files = config_files(registry.url, [app], triggers=trigger + "enabled: false\n")
    registry.push(app.repository, "1.0.0")
    remote = bare_remote(seed=files)
    sidecar = start_sidecar(remote)
    sidecar.wait_ready()
    sidecar.wait_passes(1)

    pushed = time.monotonic()
    sha = remote.human_commit({"projects/shop/triggers.yaml": trigger}, "enable shop-images")
    wait_until(lambda: release_on_remote(remote, "1.0.0"), 15, "release 1.0.0 after the commit")
    print(f"local repository commit to release: {time.monotonic() - pushed:.2f} s")
    assert remote.log_format("%P")[0] == sha
    woken = sidecar.messages("pass starting")[1]["msg"]
    assert woken.startswith("pass starting: event, full=True"), woken
    sidecar.wait_passes(2)
    # staging (automatic) follows in a pass of the sidecar's own, woken by no event
    wait_until(lambda: deployed_on_remote(remote, "staging", "1.0.0"), 15, "staging 1.0.0")
    sidecar.wait_passes(3)
    time.sleep(2)  # the reconciler's two commits moved the branch too: neither wakes a pass
    starts = [e["msg"].split(",")[0] for e in sidecar.messages("pass starting")]
    assert starts == [
        "pass starting: startup",
        "pass starting: event",
        "pass starting: wake",
    ], sidecar.text()


def test_healthz_answers_while_the_first_clone_hangs(
    start_sidecar: Callable[..., Sidecar],
) -> None:
    """The kubelet's liveness probe must not kill a sidecar whose first clone is slow:
    /healthz is served before the clone starts, /readyz says why it is not ready."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # the kernel accepts; nobody ever answers
        hung = SimpleNamespace(url=f"http://127.0.0.1:{listener.getsockname()[1]}/cfg.git")
        sidecar = start_sidecar(hung)

        def healthy() -> bool:
            sidecar.assert_alive()
            try:
                return sidecar.client.get(f"{sidecar.url}/healthz").status_code == 200
            except httpx.TransportError:
                return False  # not listening yet

        wait_until(healthy, 10, "/healthz 200 during the first clone")
        ready = sidecar.client.get(f"{sidecar.url}/readyz")
        assert ready.status_code == 503
        assert sidecar.passes_finished() == 0  # still cloning


# ------------------------------------------------------------------------- IPv6


def test_listen_accepts_a_bracketed_ipv6_address() -> None:
    """``--listen [::]:8080`` is how IPv6 listen addresses are usually written."""
    from reconciler.commands.common import ListenAddress
    from reconciler.server import ReconcilerServer

    host, port = ListenAddress().convert("[::1]:0", None, None)
    with ReconcilerServer((host, port), on_event=lambda event: None) as server:
        assert server.url.startswith("http://[::1]:")
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
