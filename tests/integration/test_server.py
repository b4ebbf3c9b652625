"""The sidecar HTTP server (reconciler.server) over real loopback HTTP."""

from __future__ import annotations

import json
import queue
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.metrics import Metrics
from reconciler.server import Health, ReconcilerServer, WebhookSecrets
from reconciler.webhooks import WebhookEvent, hmac_sha256_hex

SECRET = "webhook-secret-1"
DOCKERHUB_TOKEN = "dh-url-token-0123456789"

DISTRIBUTION_PUSH = {
    "events": [
        {
            "id": "evt-1",
            "action": "push",
            "target": {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:" + "ab" * 32,
                "repository": "acme/api",
                "tag": "1.2.3",
            },
            "request": {"host": "127.0.0.1:5000"},
        }
    ]
}
GITHUB_PUSH = {
    "ref": "refs/heads/main",
    "after": "1" * 40,
    "repository": {"full_name": "acme/config"},
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sidecar:
    def __init__(
        self,
        server: ReconcilerServer,
        events: queue.Queue[WebhookEvent],
        health: Health,
        clock: FakeClock,
        metrics: Metrics,
    ) -> None:
        self.server = server
        self.events = events
        self.health = health
        self.clock = clock
        self.metrics = metrics
        self.http = httpx.Client(base_url=server.url, timeout=5)

    def metric(self, name: str, **labels: str) -> float:
        text = self.http.get("/metrics").text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return 0.0


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[Sidecar]:
    secret_file = tmp_path / "github-secret"
    secret_file.write_text(SECRET + "\n")
    environ = {
        "RECONCILER_WEBHOOK_SECRET": SECRET,
        "RECONCILER_WEBHOOK_SECRET_GITHUB_FILE": str(secret_file),
        "RECONCILER_WEBHOOK_SECRET_DOCKERHUB": DOCKERHUB_TOKEN,
    }
    events: queue.Queue[WebhookEvent] = queue.Queue()
    clock = FakeClock()
    health = Health(max_age=3 * 60, clock=clock)
    metrics = Metrics()
    server = ReconcilerServer(
        ("127.0.0.1", 0),
        on_event=events.put,
        secrets=WebhookSecrets(environ=environ),
        health=health,
        metrics=metrics,
        max_body=4096,
    )
    with server:
        car = Sidecar(server, events, health, clock, metrics)
        yield car
        car.http.close()


def github_post(
    car: Sidecar, document: object, *, delivery: str, secret: str = SECRET, event: str = "push"
) -> httpx.Response:
    body = json.dumps(document).encode()
    return car.http.post(
        "/hooks/github",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": "sha256=" + hmac_sha256_hex(secret, body),
        },
    )


def test_healthz(sidecar: Sidecar) -> None:
    response = sidecar.http.get("/healthz")
    assert (response.status_code, response.text.strip()) == (200, "ok")
    assert sidecar.http.get("/nope").status_code == 404


def test_distribution_webhook_is_queued_with_202(sidecar: Sidecar) -> None:
    response = sidecar.http.post(
        "/hooks/registry",
        json=DISTRIBUTION_PUSH,
        headers={"Authorization": f"Bearer {SECRET}"},
    )
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "replayed": 0}
    event = sidecar.events.get(timeout=1)
    assert (event.repository, event.tag, event.host) == ("acme/api", "1.2.3", "127.0.0.1:5000")
    assert (
        sidecar.metric("reconciler_webhook_events_total", source="registry", outcome="accepted")
        == 1
    )


def test_github_push_with_secret_from_a_file(sidecar: Sidecar, tmp_path: Path) -> None:
    assert github_post(sidecar, GITHUB_PUSH, delivery="d-1").status_code == 202
    assert sidecar.events.get(timeout=1).repository == "acme/config"
    # The secret file is re-read per request, so a rotation applies without a restart.
    (tmp_path / "github-secret").write_text("rotated-secret\n")
    assert github_post(sidecar, GITHUB_PUSH, delivery="d-2").status_code == 401
    assert (
        github_post(sidecar, GITHUB_PUSH, delivery="d-3", secret="rotated-secret").status_code
        == 202
    )


def test_bad_signature_is_401_and_nothing_is_queued(sidecar: Sidecar) -> None:
    response = github_post(sidecar, GITHUB_PUSH, delivery="d-1", secret="wrong")
    assert response.status_code == 401
    assert sidecar.events.empty()
    assert (
        sidecar.metric("reconciler_webhook_events_total", source="github", outcome="unauthorized")
        == 1
    )


def test_replayed_delivery_is_dropped(sidecar: Sidecar) -> None:
    assert github_post(sidecar, GITHUB_PUSH, delivery="same").json()["accepted"] == 1
    replay = github_post(sidecar, GITHUB_PUSH, delivery="same")
    assert replay.status_code == 202
    assert replay.json() == {"accepted": 0, "replayed": 1}
    assert sidecar.events.qsize() == 1


def test_dockerhub_token_in_the_path(sidecar: Sidecar) -> None:
    document = {"push_data": {"tag": "latest"}, "repository": {"repo_name": "ns/repo"}}
    ok = sidecar.http.post(f"/hooks/dockerhub/{DOCKERHUB_TOKEN}", json=document)
    assert ok.status_code == 202
    assert sidecar.events.get(timeout=1).repository == "ns/repo"
    assert sidecar.http.post("/hooks/dockerhub/guessed", json=document).status_code == 401
    assert sidecar.http.post("/hooks/dockerhub", json=document).status_code == 401


def test_unknown_and_disabled_endpoints_are_404(tmp_path: Path) -> None:
    server = ReconcilerServer(
        ("127.0.0.1", 0), on_event=lambda e: None, secrets=WebhookSecrets(environ={})
    )
    with server, httpx.Client(base_url=server.url) as http:
        assert http.post("/hooks/quay", json={}).status_code == 404
        # No secret configured: the endpoint refuses everything rather than trusting anyone.
        assert http.post("/hooks/registry", json=DISTRIBUTION_PUSH).status_code == 404
        assert http.post("/hooks/github/extra", json={}).status_code == 404


def test_malformed_json_is_400_and_the_server_keeps_serving(sidecar: Sidecar) -> None:
    response = sidecar.http.post(
        "/hooks/gitlab",
        content=b"{this is not json",
        headers={"X-Gitlab-Token": SECRET, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "malformed JSON" in response.json()["error"]
    assert sidecar.http.get("/healthz").status_code == 200
    good = sidecar.http.post(
        "/hooks/gitlab",
        json={
            "object_kind": "push",
            "ref": "refs/heads/main",
            "after": "2" * 40,
            "project": {"path_with_namespace": "acme/config"},
        },
        headers={"X-Gitlab-Token": SECRET},
    )
    assert good.status_code == 202


def test_oversized_body_is_413_before_it_is_read(sidecar: Sidecar) -> None:
    response = sidecar.http.post(
        "/hooks/registry",
        content=b"x" * 10_000,
        headers={"Authorization": f"Bearer {SECRET}"},
    )
    assert response.status_code == 413
    assert (
        sidecar.metric("reconciler_webhook_events_total", source="registry", outcome="too-large")
        == 1
    )
    assert sidecar.http.get("/healthz").status_code == 200


def test_huge_declared_length_is_refused_without_waiting_for_the_body(sidecar: Sidecar) -> None:
    """A client announcing 1 GiB gets 413 at once; the server never buffers it."""
    with socket.create_connection(("127.0.0.1", sidecar.server.port), timeout=5) as conn:
        conn.sendall(
            b"POST /hooks/registry HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + SECRET.encode() + b"\r\n"
            b"Content-Length: 1073741824\r\n\r\n" + b"{" * 100
        )
        conn.shutdown(socket.SHUT_WR)
        reply = conn.recv(4096)
    assert reply.startswith(b"HTTP/1.0 413")


def test_missing_content_length_is_411(sidecar: Sidecar) -> None:
    with socket.create_connection(("127.0.0.1", sidecar.server.port), timeout=5) as conn:
        conn.sendall(b"POST /hooks/registry HTTP/1.0\r\nHost: x\r\n\r\n")
        reply = conn.recv(4096)
    assert reply.startswith(b"HTTP/1.0 411")


def test_readyz_flips_with_pass_results(sidecar: Sidecar) -> None:
    first = sidecar.http.get("/readyz")
    assert (first.status_code, first.text.strip()) == (503, "no successful pass yet")

    sidecar.health.record_pass(ok=True)
    assert sidecar.http.get("/readyz").status_code == 200

    sidecar.health.record_pass(ok=False, repo_reachable=False, problem="git fetch failed")
    unreachable = sidecar.http.get("/readyz")
    assert unreachable.status_code == 503
    assert "unreachable: git fetch failed" in unreachable.text

    sidecar.health.record_pass(ok=True)
    assert sidecar.http.get("/readyz").status_code == 200
    sidecar.clock.now += 3 * 60 + 1  # no success for more than max_age
    stale = sidecar.http.get("/readyz")
    assert stale.status_code == 503 and "last successful pass 181s ago" in stale.text


def test_metrics_exposition_parses(sidecar: Sidecar) -> None:
    metrics = sidecar.metrics
    metrics.passes.labels(outcome="ok").inc()
    metrics.pass_duration.observe(0.3)
    metrics.observe_feed_request("ghcr", "tags", 200, 0.02)
    metrics.feed_errors.labels(feed="ghcr", error="FeedRateLimited").inc()
    metrics.releases_created.labels(project="shop", channel="stable").inc(2)
    metrics.promotions.labels(project="shop", environment="prod").inc()
    metrics.last_success.set(1_700_000_000)
    metrics.git_push_retries.inc()

    response = sidecar.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert {
        "reconciler_pass_duration_seconds",
        "reconciler_passes",
        "reconciler_feed_requests",
        "reconciler_feed_errors",
        "reconciler_feed_request_duration_seconds",
        "reconciler_releases_created",
        "reconciler_promotions",
        "reconciler_last_successful_pass_timestamp_seconds",
        "reconciler_git_push_retries",
        "reconciler_webhook_events",
    } <= set(families)
    assert (
        sidecar.metric("reconciler_releases_created_total", project="shop", channel="stable") == 2
    )
    assert (
        sidecar.metric("reconciler_feed_requests_total", feed="ghcr", kind="tags", status="200")
        == 1
    )
    assert sidecar.metric("reconciler_pass_duration_seconds_count") == 1
    assert sidecar.metric("reconciler_last_successful_pass_timestamp_seconds") == 1_700_000_000
    # Our registry, with the standard process and Python collectors (issue 18 item 9)
    # and nothing else a library registered globally.
    assert {"process_cpu_seconds_total", "python_info"} <= set(families) | {
        s.name for f in families.values() for s in f.samples
    }
    assert {name.split("_")[0] for name in families} <= {"reconciler", "process", "python"}
