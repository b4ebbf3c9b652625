"""Issue 14 item 9, the server's share: hostile webhook bodies and vanishing clients.

Each test talks to a real :class:`ReconcilerServer` over loopback HTTP, or runs the
``reconciler run`` process, and fails on the code before the fix:

* a 100,000-deep JSON body raised RecursionError on the request thread, so the sender
  got no answer and the log got a plain-text traceback;
* a client that disconnects mid-request or before the answer left socketserver's
  plain-text ``Exception occurred during processing of request`` traceback on stderr,
  which is where the sidecar's JSON log goes;
* ``run --interval 0`` (or any non-positive or non-finite interval) crashed with 70.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.logs import setup_logging
from reconciler.server import Health, ReconcilerServer, WebhookSecrets
from reconciler.webhooks import WebhookEvent, WebhookRejected, receive
from tests.helpers.configrepo import run_cli

SECRET = "webhook-secret-1"
DEEP = 100_000


def deep_body(depth: int = DEEP) -> bytes:
    return b'{"events":' + b"[" * depth + b"]" * depth + b"}"


class BlockingHealth(Health):
    """/readyz waits until the test lets it answer (the client has gone by then)."""

    def __init__(self) -> None:
        super().__init__(max_age=60)
        self.asked = threading.Event()
        self.answer = threading.Event()

    def readiness(self) -> tuple[bool, str]:
        self.asked.set()
        self.answer.wait(10)
        return True, "ok"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The process's log as the sidecar writes it: JSON lines."""
    stream = io.StringIO()
    setup_logging("DEBUG", json=True, stream=stream)
    yield stream
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "stream", None) is stream:
            root.removeHandler(handler)


@pytest.fixture
def server() -> Iterator[tuple[ReconcilerServer, BlockingHealth, list[WebhookEvent]]]:
    received: list[WebhookEvent] = []
    health = BlockingHealth()
    app = ReconcilerServer(
        ("127.0.0.1", 0),
        on_event=received.append,
        secrets=WebhookSecrets(environ={"RECONCILER_WEBHOOK_SECRET": SECRET}),
        health=health,
    )
    app.start()
    yield app, health, received
    health.answer.set()
    app.close()


def assert_clean_log(stream: io.StringIO, stderr: str) -> None:
    """Every log line is one JSON object and no traceback text went anywhere else."""
    for line in stream.getvalue().splitlines():
        json.loads(line)
    assert "Traceback" not in stderr
    assert "Exception occurred" not in stderr


def reset_connection(sock: socket.socket) -> None:
    """Close with an RST, as a client that crashes or times out does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_a_100000_deep_json_body_is_answered_400(
    server: tuple[ReconcilerServer, BlockingHealth, list[WebhookEvent]],
    json_log: io.StringIO,
    capfd: pytest.CaptureFixture[str],
) -> None:
    app, _, received = server
    response = httpx.post(
        f"{app.url}/hooks/distribution",
        content=deep_body(),
        headers={"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["error"]
    assert received == []
    # ... and the server goes on answering
    assert httpx.get(f"{app.url}/healthz", timeout=5).status_code == 200
    assert_clean_log(json_log, capfd.readouterr().err)


def test_deep_bodies_are_refused_for_every_endpoint_before_parsing() -> None:
    headers = {
        "Authorization": f"Bearer {SECRET}",
        "X-Gitlab-Token": SECRET,
        "X-Gitlab-Event": "Push Hook",
    }
    for endpoint in ("distribution", "gitlab"):
        with pytest.raises(WebhookRejected) as caught:
            receive(endpoint, headers, deep_body(), SECRET)
        assert caught.value.status == 400


def test_ordinary_nesting_still_parses() -> None:
    body = json.dumps(
        {
            "events": [
                {
                    "id": "e1",
                    "action": "push",
                    "target": {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "repository": "acme/api",
                        "tag": "1.0.0",
                        "digest": "sha256:" + "a" * 64,
                    },
                    "request": {"host": "reg.example"},
                }
            ]
        }
    ).encode()
    events, _ = receive("distribution", {"Authorization": f"Bearer {SECRET}"}, body, SECRET)
    assert [e.repository for e in events] == ["acme/api"]


def test_a_client_that_resets_mid_body_leaves_no_traceback(
    server: tuple[ReconcilerServer, BlockingHealth, list[WebhookEvent]],
    json_log: io.StringIO,
    capfd: pytest.CaptureFixture[str],
) -> None:
    app, _, received = server
    sock = socket.create_connection(("127.0.0.1", app.port))
    sock.sendall(
        b"POST /hooks/distribution HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + SECRET.encode() + b"\r\n"
        b"Content-Length: 100000\r\n\r\n" + b"{" * 10
    )
    time.sleep(0.2)  # the handler is now blocked reading the rest of the body
    reset_connection(sock)
    time.sleep(0.5)
    assert httpx.get(f"{app.url}/healthz", timeout=5).status_code == 200
    assert received == []
    assert_clean_log(json_log, capfd.readouterr().err)


def test_a_client_gone_before_the_answer_leaves_no_broken_pipe_traceback(
    server: tuple[ReconcilerServer, BlockingHealth, list[WebhookEvent]],
    json_log: io.StringIO,
    capfd: pytest.CaptureFixture[str],
) -> None:
    app, health, _ = server
    sock = socket.create_connection(("127.0.0.1", app.port))
    sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert health.asked.wait(5)
    reset_connection(sock)
    time.sleep(0.2)
    health.answer.set()  # the answer is now written to a reset connection
    time.sleep(0.5)
    assert httpx.get(f"{app.url}/healthz", timeout=5).status_code == 200
    err = capfd.readouterr().err
    assert_clean_log(json_log, err)
    assert "client went away" in json_log.getvalue()


@pytest.mark.parametrize("interval", ["0", "-5", "nan", "inf"])
def test_run_refuses_an_interval_it_cannot_keep_with_a_usage_error(
    interval: str, tmp_path: Path
) -> None:
    proc = run_cli(
        "run",
        "--repo",
        str(tmp_path / "nowhere"),
        "--work-dir",
        str(tmp_path / "work"),
        "--listen",
        "127.0.0.1:0",
        "--interval",
        interval,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "--interval" in proc.stderr
    assert "Traceback" not in proc.stderr
