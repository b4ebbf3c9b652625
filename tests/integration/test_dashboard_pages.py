"""The dashboard's detail pages built from a real pass (issue 23): the demo's four
passes on a real Git repository and an OCI image layout, then the sidecar's dry-run
pass and snapshot. Page views are counted for outbound connections (must be 0)."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.commands.demo import run_demo
from reconciler.dashboard import Dashboard, snapshot_after_pass
from reconciler.grants import OCI_LAYOUT_DIRS_VAR
from reconciler.reconcile import PassOptions, PassSettings, Reconciler
from reconciler.server import ReconcilerServer, WebhookSecrets
from tests.helpers.gitserver import run_git


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Dashboard]]:
    base = tmp_path_factory.mktemp("demo")
    assert run_demo(base) == 0
    _push_hostile_commit(base)
    os.environ[OCI_LAYOUT_DIRS_VAR] = str(base / "feed")
    reconciler = Reconciler(
        PassOptions(PassSettings(repo_url=(base / "remote.git").as_uri(), work_dir=base / "d"))
    )
    try:
        result = reconciler.run_pass(dry_run=True)
        assert result.ok
        dashboard = Dashboard(snapshot_after_pass(reconciler, result))
    finally:
        reconciler.close()
        del os.environ[OCI_LAYOUT_DIRS_VAR]
    yield base, dashboard


HOSTILE = '<img src=x onerror="alert(1)">'


def _push_hostile_commit(base: Path) -> None:
    """A person's commit whose subject, author and trailers are markup (anyone who can
    push to the config repository can write them)."""
    clone = base / "hostile"
    run_git("clone", "-q", (base / "remote.git").as_uri(), str(clone))
    (clone / "releases" / "shop" / "NOTES.md").write_text("notes\n")
    run_git("add", "-A", cwd=clone)
    message = (f"<script>alert(2)</script> notes\n\nDeployed: shop 1.0.1 {HOSTILE}\n"
               f"Promoted-By: <b>mallory</b>\n")  # fmt: skip
    run_git("-c", "user.name=<i>eve</i>", "-c", "user.email=eve@example.com",
            "commit", "-q", "-m", message, cwd=clone)  # fmt: skip
    run_git("push", "-q", "origin", "HEAD:main", cwd=clone)


def _git_log(base: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(base / "remote.git"), "log", "--format=%H", *args],
        capture_output=True, text=True, check=True,
    ).stdout.split()[0]  # fmt: skip


def _pages(dashboard: Dashboard, paths: list[str]) -> tuple[dict[str, httpx.Response], int]:
    """GET each path from a served dashboard; the connections opened meanwhile to
    anything but the dashboard itself."""
    opened: list[Any] = []
    real_connect = socket.socket.connect

    def counting_connect(self: socket.socket, address: Any) -> None:
        opened.append(address)
        real_connect(self, address)

    app = ReconcilerServer(("127.0.0.1", 0), on_event=lambda e: None,
                           secrets=WebhookSecrets(environ={}), dashboard=dashboard)  # fmt: skip
    with app, httpx.Client(timeout=10) as client:
        socket.socket.connect = counting_connect  # type: ignore[method-assign]
        try:
            pages = {path: client.get(f"{app.url}{path}") for path in paths}
        finally:
            socket.socket.connect = real_connect  # type: ignore[method-assign]
    outbound = [a for a in opened if not (isinstance(a, tuple) and a[1] == app.port)]
    return pages, len(outbound)


def test_the_release_page_lists_the_record_and_its_commits(
    demo: tuple[Path, Dashboard],
) -> None:
    base, dashboard = demo
    pages, outbound = _pages(dashboard, ["/releases/shop/1.0.1"])
    page = pages["/releases/shop/1.0.1"]
    assert page.status_code == 200
    assert '<td id="trigger">shop-images</td>' in page.text
    assert "<td>ghcr.io/acme/shop-api</td><td>1.3.0</td>" in page.text
    assert '<td class="digest">sha256:' in page.text
    created = _git_log(base, "--grep=Release: shop 1.0.1")
    assert f"<td>release</td><td>1.0.1</td><td>{created[:10]}</td>" in page.text
    assert "<td>deployed</td><td>1.0.1 staging</td>" in page.text
    assert '<a href="/environments/shop/staging">staging</a>' in page.text
    assert outbound == 0


def test_each_environment_has_its_history_from_state_and_trailers(
    demo: tuple[Path, Dashboard],
) -> None:
    _, dashboard = demo
    pages, outbound = _pages(dashboard, ["/environments/shop/staging", "/environments/shop/prod"])
    staging = pages["/environments/shop/staging"].text
    assert staging.index(">1.0.1</a>") < staging.index(">1.0.0</a>")  # newest first
    assert "<td>reconciler</td><td>automatic</td>" in staging
    assert "<td>reconciler (automatic)</td><td>deployed</td><td>1.0.0 staging</td>" in staging
    assert "Nothing deployed yet." in pages["/environments/shop/prod"].text
    assert outbound == 0


def test_feed_health_and_the_matrix_come_from_the_pass(demo: tuple[Path, Dashboard]) -> None:
    _, dashboard = demo
    pages, outbound = _pages(dashboard, ["/", "/feeds", "/events-not-here"])
    feeds = pages["/feeds"].text
    assert '<tr class="verified"><th>acme-registry</th><td>oci-layout</td>' in feeds
    assert "<td>—</td>" not in feeds.split("acme-registry", 1)[1].split("</tr>", 1)[0]
    matrix = pages["/"].text
    assert 'href="/releases/shop/1.0.1"' in matrix and 'href="/releases/billing/2.1.0"' in matrix
    assert "manual approval pending" in matrix
    assert pages["/events-not-here"].status_code == 404
    assert outbound == 0


def test_commit_messages_authors_and_trailers_render_as_text(
    demo: tuple[Path, Dashboard],
) -> None:
    _, dashboard = demo
    pages, _ = _pages(dashboard, ["/releases/shop/1.0.1", "/environments/shop/prod"])
    release = pages["/releases/shop/1.0.1"].text
    assert "&lt;script&gt;alert(2)&lt;/script&gt; notes" in release
    assert "&lt;img" in release and "&lt;b&gt;mallory&lt;/b&gt;" in release
    for page in pages.values():
        assert "<script>alert" not in page.text and "<img" not in page.text
        assert "<b>mallory" not in page.text and "<i>eve" not in page.text
