"""The dashboard (issue 23): server-rendered, escaped, read-only, live over SSE."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import httpx

from reconciler.dashboard import (
    Cell,
    Dashboard,
    Deployed,
    EnvironmentHistory,
    Event,
    FeedHealth,
    ReleaseView,
    Row,
    Snapshot,
    deadline_parts,
    render,
    render_path,
    snapshot_from,
)
from reconciler.pullrequests.urls import commit_web_url
from reconciler.reconcile.polling import FeedPoll, next_feed_poll
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
    assert "soaking in development until " in page
    at = "2026-01-01T00:30:00Z"
    assert f'<time class="countdown" datetime="{at}">{at}</time>' in page
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


# --------------------------------------------------------------------------- detail pages

COMMIT = "c" * 40
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def event(subject: str = "reconciler: deploy shop 1.0.1 to dev", by: str = "reconciler") -> Event:
    return Event(WHEN, COMMIT, f"https://github.com/acme/config/commit/{COMMIT}", by, "deployed",
                 "1.0.1 dev", subject)  # fmt: skip


def detailed(version: str = "1.0.1", hostile: str = "") -> Snapshot:
    release = ReleaseView(
        "shop", version, "stable", "shop-images" + hostile, WHEN,
        (("api", "image", "ghcr.io/acme/shop-api", version, "sha256:" + "ab" * 32),
         ("web", "chart", "oci://ghcr.io/acme/charts/web", "2.0.0", None)),
        ("dev",), (event(subject="deploy " + hostile, by="alice" + hostile),),
    )  # fmt: skip
    history = EnvironmentHistory(
        "shop", "dev",
        (Deployed(version, WHEN, "bob" + hostile, "manual", "failed", "Degraded" + hostile),),
        (event(subject="Promote " + hostile, by="carol" + hostile),),
    )  # fmt: skip
    feeds = (FeedHealth("ghcr", "oci", WHEN, None, "429 Too Many Requests" + hostile,
                        datetime(2026, 1, 2, 4, 0, tzinfo=UTC)),)  # fmt: skip
    return replace(
        snapshot(tag=version),
        releases={("shop", version): release},
        histories={("shop", "dev"): history},
        feeds=feeds,
    )


def test_each_cell_links_to_its_release_page_and_history() -> None:
    page = render(detailed())
    assert '<a class="release" href="/releases/shop/1.0.1"><b>1.0.1</b></a>' in page
    assert 'href="/environments/shop/dev">history</a>' in page
    assert 'href="/releases/shop/1.0.0"' not in page  # staging's 1.0.0 has no page


def test_the_release_page_shows_packages_digests_trigger_and_commit_links() -> None:
    page = render_path(detailed(), "/releases/shop/1.0.1")
    assert page is not None and page.status == 200
    assert '<td id="trigger">shop-images</td>' in page.html
    assert "<td>ghcr.io/acme/shop-api</td><td>1.0.1</td>" in page.html
    assert f'<td class="digest">sha256:{"ab" * 32}</td>' in page.html
    assert "<td>oci://ghcr.io/acme/charts/web</td><td>2.0.0</td>" in page.html
    link = f'<a href="https://github.com/acme/config/commit/{COMMIT}">{COMMIT[:10]}</a>'
    assert link in page.html
    assert 'href="/environments/shop/dev">dev</a>' in page.html


def test_a_commit_without_a_known_web_page_is_not_linked() -> None:
    snap = detailed()
    view = snap.releases[("shop", "1.0.1")]
    unlinked = replace(snap, releases={("shop", "1.0.1"): replace(
        view, events=(replace(view.events[0], url=None),))})  # fmt: skip
    page = render_path(unlinked, "/releases/shop/1.0.1")
    assert page is not None
    assert f"<td>{COMMIT[:10]}</td>" in page.html and "/commit/" not in page.html


def test_unknown_pages_are_404_and_names_are_path_segments() -> None:
    snap = detailed(version="1.0.1+build/7")
    assert 'href="/releases/shop/1.0.1%2Bbuild%2F7"' in render(snap)
    page = render_path(snap, "/releases/shop/1.0.1%2Bbuild%2F7")
    assert page is not None and page.status == 200
    missing = render_path(snap, "/releases/shop/9.9.9")
    assert missing is not None and missing.status == 404
    assert render_path(snap, "/environments/shop/nowhere").status == 404  # type: ignore[union-attr]
    assert render_path(snap, "/nothing/here") is None


def test_the_environment_page_shows_who_when_and_how() -> None:
    page = render_path(detailed(), "/environments/shop/dev")
    assert page is not None and page.status == 200
    assert "<td>2026-01-02 03:04:05 UTC</td>" in page.html
    assert "<td>bob</td><td>manual</td><td>failed: Degraded</td>" in page.html
    assert "<td>carol</td><td>deployed</td><td>1.0.1 dev</td>" in page.html
    assert "Promote " in page.html


def test_the_feeds_page_shows_last_poll_error_and_retry_after() -> None:
    page = render_path(detailed(), "/feeds")
    assert page is not None and page.status == 200
    assert "<th>ghcr</th><td>oci</td><td>2026-01-02 03:04:05 UTC</td><td>—</td>" in page.html
    assert '<td class="error">429 Too Many Requests</td>' in page.html
    assert '<time class="countdown" datetime="2026-01-02T04:00:00Z">' in page.html


def test_hostile_tags_commit_messages_trailers_and_feed_errors_are_text() -> None:
    snap = detailed(version="1.0.1" + HOSTILE, hostile=HOSTILE)
    pages = [render(snap), render_path(snap, "/feeds"),
             render_path(snap, "/releases/shop/" + quote("1.0.1" + HOSTILE, safe="")),
             render_path(snap, "/environments/shop/dev")]  # fmt: skip
    for page in pages:
        html = page if isinstance(page, str) else page.html  # type: ignore[union-attr]
        assert HOSTILE not in html
        assert "<img" not in html
    assert all(
        "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in p.html  # type: ignore[union-attr]
        for p in pages[1:]
    )


def test_a_deadline_in_a_reason_is_split_for_the_countdown() -> None:
    assert deadline_parts("soaking in dev until 2026-01-01T00:30:00Z") == (
        "soaking in dev until ", "2026-01-01T00:30:00Z", "")  # fmt: skip
    assert deadline_parts("frozen until 2026-01-01T00:30:00Z (release week)") == (
        "frozen until ", "2026-01-01T00:30:00Z", " (release week)")  # fmt: skip
    assert deadline_parts("manual approval pending") is None


def test_a_feed_record_keeps_its_last_answer_across_failures_and_skips() -> None:
    first = next_feed_poll(None, asked=True, error=None, now=100.0)
    assert first == FeedPoll(100.0, 100.0, None)
    failed = next_feed_poll(first, asked=True, error="503", now=200.0)
    assert failed == FeedPoll(200.0, 100.0, "503")
    skipped = next_feed_poll(failed, asked=False, error="rate limited", now=300.0)
    assert skipped == FeedPoll(200.0, 100.0, "rate limited")


def test_commit_pages_are_derived_from_the_clone_url() -> None:
    assert commit_web_url("git@github.com:acme/config.git", "abc") == (
        "https://github.com/acme/config/commit/abc")  # fmt: skip
    assert commit_web_url("https://gitlab.example.com/g/sub/config.git", "abc") == (
        "https://gitlab.example.com/g/sub/config/-/commit/abc")  # fmt: skip
    assert commit_web_url("https://git.corp/acme/config", "abc", "gitea") == (
        "https://git.corp/acme/config/commit/abc")  # fmt: skip
    assert commit_web_url("https://git.corp/acme/config", "abc") is None  # kind unknown
    assert commit_web_url("file:///srv/config.git", "abc") is None
    assert commit_web_url("/srv/config.git", "abc") is None


def test_tenants_are_sub_rows_under_their_environments_column(tmp_path: Path) -> None:
    env = SimpleNamespace(verify=None)
    project = SimpleNamespace(environments={"dev": env, "prod@acme": env, "prod@globex": env})
    config = SimpleNamespace(projects={"shop": project})
    result = SimpleNamespace(waiting=[("shop", "prod@globex", "manual approval pending")],
                             failed_feeds={}, retry_after={}, commit=None)  # fmt: skip
    snap = snapshot_from(config, tmp_path, result)
    assert snap.environments == ("dev", "prod")
    assert [(r.project, r.tenant, [c.environment for c in r.cells]) for r in snap.rows] == [
        ("shop", None, ["dev"]), ("shop", "acme", ["prod@acme"]),
        ("shop", "globex", ["prod@globex"]),
    ]  # fmt: skip
    page = render(replace(snap, histories={("shop", "prod@globex"): EnvironmentHistory(
        "shop", "prod@globex")}))  # fmt: skip
    globex = page.split('<span class="tenant">· globex</span></th>', 1)[1].split("</tr>", 1)[0]
    assert globex.count("<td") == 2 and globex.startswith("<td></td>")  # under prod
    assert "manual approval pending" in globex
    assert 'href="/environments/shop/prod%40globex">history</a>' in globex
