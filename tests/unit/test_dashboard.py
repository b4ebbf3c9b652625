"""The dashboard (issue 23): server-rendered, escaped, read-only, live over SSE."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import httpx

from reconciler.dashboard import Cell, Dashboard, Row, Snapshot, render
from reconciler.server import ReconcilerServer, WebhookSecrets

HOSTILE = '<img src=x onerror="alert(1)">'


def snapshot(tag: str = "1.0.1", state: str = "verified") -> Snapshot:
    return Snapshot(
        rows=(
            Row(
                "shop",
                (
                    Cell("dev", tag, state, ("soaking in development until 2026-01-01T00:30:00Z",)),
                    Cell("staging", "1.0.0", "failed", ("verification failed: Degraded: boom",)),
                ),
            ),
        ),
        environments=("dev", "staging"),
        feed_errors=(("reg", "429 Too Many Requests"),),
        finished=datetime(2026, 1, 1, tzinfo=UTC),
        commit="a" * 40,
    )


def test_the_matrix_shows_releases_states_and_reasons() -> None:
    page = render(snapshot())
    assert 'data-state="verified"' in page and "<b>1.0.1</b>" in page
    assert "soaking in development until 2026-01-01T00:30:00Z" in page
    assert "verification failed: Degraded: boom" in page
    assert "429 Too Many Requests" in page


def test_every_outside_string_is_escaped() -> None:
    page = render(snapshot(tag=HOSTILE, state=HOSTILE))
    assert HOSTILE not in page
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page


def test_the_sidecar_serves_the_page_and_pushes_an_event_per_pass() -> None:
    dashboard = Dashboard(snapshot())
    app = ReconcilerServer(
        ("127.0.0.1", 0), on_event=lambda e: None, secrets=WebhookSecrets(environ={}),
        dashboard=dashboard,
    )  # fmt: skip
    with app:
        page = httpx.get(f"{app.url}/", timeout=5)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "<b>1.0.1</b>" in page.text
        lines: list[str] = []
        with httpx.stream("GET", f"{app.url}/events", timeout=10) as stream:
            assert stream.headers["content-type"] == "text/event-stream"
            threading.Timer(0.3, dashboard.update, [snapshot("1.0.2")]).start()
            for line in stream.iter_lines():
                lines.append(line)
                if line.startswith("data:"):
                    break
        assert lines[-1] == f"data: {dashboard.version}"
        assert "<b>1.0.2</b>" in httpx.get(f"{app.url}/", timeout=5).text


def test_without_a_dashboard_there_is_no_page() -> None:
    app = ReconcilerServer(("127.0.0.1", 0), on_event=lambda e: None)
    with app:
        assert httpx.get(f"{app.url}/", timeout=5).status_code == 404
        assert httpx.get(f"{app.url}/events", timeout=5).status_code == 404
