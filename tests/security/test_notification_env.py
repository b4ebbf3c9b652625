"""Review finding: a notification's ``urlEnv`` is named by the untrusted config. Naming
one of the reconciler's own secrets (``RECONCILER_GIT_PASSWORD``...) would post to, and
so leak, that secret; the names reconciler.grants reserves are refused in ``validate``
(file:line:key) and at send time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reconciler.config import load_config
from reconciler.errors import ConfigError
from reconciler.notify import Notification, NotificationTarget, Notifier
from tests.helpers.configrepo import AppSpec, config_files, write_files

NOTE = Notification(event="release-created", subject="shop 1.0.0", message="created")


@pytest.fixture
def hook() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP listener recording every path it is sent."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("name", ["RECONCILER_GIT_PASSWORD", "RECONCILER_WEBHOOK_SECRET"])
def test_validate_refuses_a_reserved_url_env(tmp_path: Path, name: str) -> None:
    files = config_files("https://r.example.com", [AppSpec("api", "acme/api", "r/api")])
    files["reconciler.yaml"] += f"notifications:\n  - kind: webhook\n    urlEnv: {name}\n"
    write_files(tmp_path, files)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert [str(p) for p in info.value.problems] == [
        f"reconciler.yaml:6: notifications[0].urlEnv: not allowed: {name} is one of the "
        "reconciler's own settings or secrets"
    ]


def test_a_reserved_url_env_is_never_posted_to(hook: tuple[str, list[str]]) -> None:
    url, seen = hook
    environ = {"RECONCILER_GIT_PASSWORD": f"{url}/s3cret-password", "HOOK_URL": f"{url}/hook"}
    targets = [
        NotificationTarget(kind="webhook", url_env="RECONCILER_GIT_PASSWORD"),
        NotificationTarget(kind="webhook", url_env="HOOK_URL"),
    ]
    with Notifier(targets, environ=environ) as notifier:
        assert notifier.notify(NOTE) == 1
    assert seen == ["/hook"]
