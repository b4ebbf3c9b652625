"""The dashboard's "propose promotion" (issue 23): authenticated like the webhooks (a
bearer token, a session signed in with it, or an auth proxy's header), CSRF-protected,
and opening the same pull request ``promotion: pull-request`` opens, against the fake
GitHub of the pull-request mode tests. The config repository is the demo's (real Git,
an OCI image layout): its prod waits for a manual promotion of shop 1.0.1 and billing
2.1.0."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.commands.demo import run_demo
from reconciler.dashboard import Dashboard, snapshot_after_pass
from reconciler.dashboard_actions import MAX_FAILED_SECRETS, ActionAuth, Actions, actions_for
from reconciler.grants import OCI_LAYOUT_DIRS_VAR
from reconciler.pullrequests import host_for
from reconciler.reconcile import Injected, PassOptions, PassSettings, Reconciler
from reconciler.server import ReconcilerServer, WebhookSecrets
from tests.integration.test_pull_request_mode import FakeGitHub

SECRET = "dash-s3cret-0123456789"
HOSTILE = '<img src=x onerror="alert(1)">'


class Setup:
    def __init__(
        self, base: Path, reconciler: Reconciler, github: FakeGitHub, bodies: list[Any]
    ) -> None:
        self.base = base
        self.bodies = bodies  # JSON bodies POSTed to the fake
        self.reconciler = reconciler
        self.github = github
        self.dashboard = Dashboard(actions_on=True)
        self.refresh()

    def refresh(self) -> None:
        result = self.reconciler.run_pass()
        assert result.ok
        self.dashboard.update(snapshot_after_pass(self.reconciler, result, can_propose=True))

    def serve(self, actions: Actions | None) -> ReconcilerServer:
        return ReconcilerServer(("127.0.0.1", 0), on_event=lambda e: None,
                                secrets=WebhookSecrets(environ={}), dashboard=self.dashboard,
                                actions=actions)  # fmt: skip

    def branches(self) -> str:
        return subprocess.run(["git", "-C", str(self.base / "remote.git"), "branch", "--list"],
                              capture_output=True, text=True, check=True).stdout  # fmt: skip


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    assert run_demo(tmp_path) == 0
    os.environ[OCI_LAYOUT_DIRS_VAR] = str(tmp_path / "feed")
    github = FakeGitHub()
    bodies: list[dict[str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:  # the fake, and what was asked
        if request.method == "POST":
            bodies.append(json.loads(request.content))
        return github.handle(request)

    host = host_for("https://github.com/acme/config", env={"RECONCILER_GIT_TOKEN": "t0ken"},
                    transport=httpx.MockTransport(handle))  # fmt: skip
    reconciler = Reconciler(PassOptions(
        PassSettings(repo_url=(tmp_path / "remote.git").as_uri(), work_dir=tmp_path / "d"),
        Injected(pr_host=host)))  # fmt: skip
    try:
        yield Setup(tmp_path, reconciler, github, bodies)
    finally:
        reconciler.close()
        del os.environ[OCI_LAYOUT_DIRS_VAR]


def _token_actions(setup: Setup) -> Actions:
    actions = actions_for(setup.reconciler, lambda: SECRET, {})
    assert actions is not None
    return actions


def _csrf(client: httpx.Client, url: str) -> str:
    page = client.get(f"{url}/").text
    return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def _propose(client: httpx.Client, url: str, csrf: str, release: str = "1.0.1",
             project: str = "shop", **headers: str) -> httpx.Response:  # fmt: skip
    form = {"project": project, "environment": "prod", "release": release, "csrf": csrf}
    return client.post(f"{url}/propose", data=form, headers=headers)


def test_a_signed_in_browser_proposes_a_promotion_as_a_pull_request(setup: Setup) -> None:
    with setup.serve(_token_actions(setup)) as app, httpx.Client(timeout=30) as client:
        first = client.get(f"{app.url}/")
        assert "HttpOnly; SameSite=Strict" in first.headers["set-cookie"]
        assert '<button type="submit">Propose 1.0.1</button>' in first.text
        assert 'id="login"' in first.text
        csrf = _csrf(client, app.url)
        # Nobody signed in: 401, and the Git host hears nothing.
        assert _propose(client, app.url, csrf).status_code == 401
        assert client.post(f"{app.url}/login", data={"token": "wrong", "csrf": csrf}
                           ).status_code == 401  # fmt: skip
        signed = client.post(f"{app.url}/login", data={"token": SECRET, "csrf": csrf})
        assert signed.status_code == 303
        assert "reconciler_session=" in signed.headers["set-cookie"]
        # Signed in, but a forged form (no or a wrong token) or another site: 403.
        assert _propose(client, app.url, "").status_code == 403
        assert _propose(client, app.url, csrf[::-1]).status_code == 403
        evil = _propose(client, app.url, csrf, origin="https://evil.example")
        assert evil.status_code == 403
        assert setup.github.requests == []
        # Only what the last pass left waiting for a manual promotion: 409.
        assert _propose(client, app.url, csrf, release="9.9.9").status_code == 409
        opened = _propose(client, app.url, csrf, origin=app.url)
        assert opened.status_code == 201, opened.text
        assert '<a href="https://github.com/acme/config/pull/1">pull request #1 opened</a>' in (
            opened.text)  # fmt: skip
        assert "Propose 1.0.1" not in opened.text
    [pull] = setup.github.pulls
    assert pull["head"]["ref"] == "promote/shop/prod/1.0.1" and pull["base"]["ref"] == "main"
    assert "promote/shop/prod/1.0.1" in setup.branches()
    assert setup.reconciler.local.data["pullRequests"]["shop/prod"]["number"] == 1
    setup.refresh()  # the next pass knows the proposal too
    assert "pull request #1 for 1.0.1" in setup.dashboard.page("/").html  # type: ignore[union-attr]


def test_a_bearer_token_needs_no_csrf_token(setup: Setup) -> None:
    with setup.serve(_token_actions(setup)) as app, httpx.Client(timeout=30) as client:
        wrong = _propose(client, app.url, "", authorization="Bearer nope")
        assert wrong.status_code == 401
        opened = _propose(client, app.url, "", release="2.1.0", project="billing",
                          authorization=f"Bearer {SECRET}")  # fmt: skip
        assert opened.status_code == 201, opened.text
    [pull] = setup.github.pulls
    assert pull["head"]["ref"] == "promote/billing/prod/2.1.0"


def test_an_auth_proxy_header_names_the_user_and_csrf_still_applies(setup: Setup) -> None:
    opened: list[tuple[str, ...]] = []
    actions = _token_actions(setup)
    proxy = Actions(ActionAuth(lambda: None, "x-forwarded-email"),
                    lambda *args: (opened.append(args), actions.propose(*args))[1])  # fmt: skip
    with setup.serve(proxy) as app, httpx.Client(timeout=30) as client:
        page = client.get(f"{app.url}/").text
        assert 'id="login"' not in page  # no secret: nothing to sign in with
        csrf = _csrf(client, app.url)
        assert _propose(client, app.url, csrf).status_code == 401  # not through the proxy
        user = {"x-forwarded-email": "alice@example.com"}
        assert _propose(client, app.url, "", **user).status_code == 403
        assert _propose(client, app.url, csrf, **user).status_code == 201
    assert opened == [("shop", "prod", "1.0.1", "alice@example.com")]
    assert "Proposed from the dashboard by alice@example.com." in setup.bodies[0]["body"]


def test_refusals_echo_the_request_as_text(setup: Setup) -> None:
    with setup.serve(_token_actions(setup)) as app, httpx.Client(timeout=30) as client:
        refused = _propose(client, app.url, "", release=HOSTILE,
                           authorization=f"Bearer {SECRET}")  # fmt: skip
    assert refused.status_code == 409
    assert HOSTILE not in refused.text and "&lt;img src=x" in refused.text


def test_without_actions_the_dashboard_is_read_only(setup: Setup) -> None:
    setup.dashboard.update(setup.dashboard.snapshot)
    with setup.serve(None) as app, httpx.Client(timeout=30) as client:
        page = client.get(f"{app.url}/")
        assert "set-cookie" not in page.headers
        answer = _propose(client, app.url, "", authorization=f"Bearer {SECRET}")
        assert answer.status_code == 404
    assert setup.github.requests == []


def test_actions_need_a_git_host_token_and_an_authentication(tmp_path: Path) -> None:
    settings = PassSettings(repo_url="https://github.com/acme/config", work_dir=tmp_path,
                            git_env={"RECONCILER_GIT_TOKEN": "t"})  # fmt: skip
    with_token = Reconciler(PassOptions(settings))
    without = Reconciler(PassOptions(PassSettings(repo_url=settings.repo_url,
                                                  work_dir=tmp_path, git_env={})))  # fmt: skip
    try:
        assert actions_for(with_token, lambda: SECRET, {}) is not None
        assert actions_for(with_token, lambda: None, {}) is None
        proxy: dict[str, Any] = {"RECONCILER_DASHBOARD_USER_HEADER": "X-Forwarded-Email"}
        actions = actions_for(with_token, lambda: None, proxy)
        assert actions is not None and actions.auth.user_header == "x-forwarded-email"
        assert actions_for(without, lambda: SECRET, {}) is None
    finally:
        with_token.close()
        without.close()


@pytest.mark.parametrize(("host", "warned"), [("0.0.0.0", True), ("127.0.0.1", False)])
def test_a_proxy_header_on_a_reachable_socket_is_warned_of(
    host: str, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = Actions(ActionAuth(lambda: None, "x-forwarded-email"), lambda *args: None)  # type: ignore[arg-type,return-value]
    caplog.set_level("WARNING", logger="reconciler")
    with ReconcilerServer((host, 0), on_event=lambda e: None, actions=proxy):
        pass
    said = [r.getMessage() for r in caplog.records if "x-forwarded-email" in r.getMessage()]
    assert bool(said) is warned, said


def test_guessing_the_secret_is_throttled_per_client(setup: Setup) -> None:
    """After MAX_FAILED_SECRETS wrong secrets (sign-in or bearer) in a minute, a client
    gets 429 and even the right secret is not checked until the window passes."""
    with setup.serve(_token_actions(setup)) as app, httpx.Client(timeout=30) as client:
        csrf = _csrf(client, app.url)
        for n in range(MAX_FAILED_SECRETS):
            if n % 2:
                wrong = client.post(f"{app.url}/login", data={"token": f"guess{n}", "csrf": csrf})
            else:
                wrong = _propose(client, app.url, "", authorization=f"Bearer guess{n}")
            assert wrong.status_code == 401
        right = client.post(f"{app.url}/login", data={"token": SECRET, "csrf": csrf})
        assert right.status_code == 429
        assert "too many wrong secrets" in right.text
        assert _propose(client, app.url, "", authorization=f"Bearer {SECRET}").status_code == 429
    assert setup.github.requests == []
