"""A registry's error text is markup on the dashboard's pages? It renders as text
(issue 23): a real pass whose feed answers 403 with a distribution error body whose
message is an HTML tag (a registry, or anything between, controls that text)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx

from reconciler.dashboard import render_path, snapshot_after_pass
from reconciler.reconcile import Injected, PassOptions, PassSettings, Reconciler
from tests.helpers.configrepo import AppSpec, config_files

HOSTILE = '<img src=x onerror="alert(1)">'


def _denied(request: httpx.Request) -> httpx.Response:
    body = {"errors": [{"code": "DENIED", "message": HOSTILE}]}
    return httpx.Response(403, content=json.dumps(body).encode(),
                          headers={"Content-Type": "application/json"})  # fmt: skip


def test_a_registrys_error_message_is_text_on_every_page(bare_remote: Any, tmp_path: Path) -> None:
    app = AppSpec("api", f"x{uuid.uuid4().hex[:8]}/api", "example.com/shop/api")
    remote = bare_remote(seed=config_files("https://registry.invalid", [app], feed_extra=""))
    settings = PassSettings(repo_url=remote.url, work_dir=tmp_path)
    reconciler = Reconciler(PassOptions(settings, Injected(transport=httpx.MockTransport(_denied))))
    try:
        result = reconciler.run_pass(dry_run=True)
        snapshot = snapshot_after_pass(reconciler, result)
    finally:
        reconciler.close()
    [feed] = snapshot.feeds
    assert feed.error is not None and HOSTILE in feed.error  # the text is kept ...
    for path in ("/", "/feeds"):
        page = render_path(snapshot, path)
        assert page is not None
        assert "<img" not in page.html  # ... and shown as text
        assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page.html
