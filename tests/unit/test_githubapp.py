"""GitHub App authentication (reconciler/githubapp.py) against a fake of GitHub's API.

``FakeGitHubAppAPI`` answers the two calls an App makes, in the shapes GitHub
documents: "Get a repository installation for the authenticated app"
(``GET /repos/{owner}/{repo}/installation``) and "Create an installation access
token for an app" (``POST /app/installations/{installation_id}/access_tokens``),
docs.github.com/en/rest/apps/apps. Like GitHub, it verifies the JWT: RS256 with the
App's public key, ``iss`` the app id, ``exp`` at most ten minutes after ``iat``.

The Git side runs for real: a smart-HTTP server that accepts only
``x-access-token:<current installation token>``, pushed to through gitrepo's
askpass script.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from reconciler import githubapp
from reconciler.gitrepo import WorkTree
from reconciler.pullrequests import host_for
from tests.helpers.gitserver import GitHttpServer, run_git

APP_ID = "123456"
INSTALLATION = 987654
GHES_API = "https://ghes.example.com/api/v3"


@pytest.fixture(scope="module")
def app_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, rsa.RSAPublicKey]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("app") / "app.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return path, private.public_key()


class FakeGitHubAppAPI:
    """GitHub's App endpoints, per docs.github.com/en/rest/apps/apps (2022-11-28)."""

    def __init__(self, public_key: rsa.RSAPublicKey, clock: list[float], prefix: str = "") -> None:
        self.public_key = public_key
        self.clock = clock
        self.prefix = prefix  # "/api/v3" on GitHub Enterprise Server
        self.requests: list[httpx.Request] = []
        self.issued: list[str] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        auth = request.headers.get("authorization", "")
        try:
            claims = jwt.decode(
                auth.removeprefix("Bearer "),
                self.public_key,  # type: ignore[arg-type]
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError:
            return httpx.Response(401, json={"message": "A JSON web token could not be decoded"})
        if claims["iss"] != APP_ID or claims["exp"] - claims["iat"] > 600:
            return httpx.Response(401, json={"message": "'Expiration time' claim is too far"})
        if not claims["iat"] <= self.clock[0] < claims["exp"]:
            return httpx.Response(401, json={"message": "JWT expired or issued in the future"})
        path = request.url.path.removeprefix(self.prefix)
        if request.method == "GET" and re.fullmatch(
            r"/repos/octo-org/gitops-config[-\w]*/installation", path
        ):
            return httpx.Response(
                200,
                json={
                    "id": INSTALLATION,
                    "account": {"login": "octo-org", "id": 1, "type": "Organization"},
                    "app_id": int(APP_ID),
                    "target_type": "Organization",
                    "permissions": {"contents": "write", "pull_requests": "write"},
                    "repository_selection": "selected",
                },
            )
        if request.method == "POST" and path == f"/app/installations/{INSTALLATION}/access_tokens":
            token = f"ghs_{len(self.issued):04d}16C7e42F292c6912E7710c838347Ae178B4a"
            self.issued.append(token)
            expires = datetime.fromtimestamp(self.clock[0] + 3600, UTC)
            return httpx.Response(
                201,
                json={
                    "token": token,
                    "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "permissions": {"contents": "write", "pull_requests": "write"},
                    "repository_selection": "selected",
                },
            )
        return httpx.Response(404, json={"message": "Not Found"})


def _settings(key: Path, **extra: str) -> dict[str, str]:
    return {
        "RECONCILER_GITHUB_APP_ID": APP_ID,
        "RECONCILER_GITHUB_APP_PRIVATE_KEY_FILE": str(key),
        **extra,
    }


def test_tokens_come_from_the_installation_and_are_refreshed_before_expiry(app_key) -> None:
    key, public = app_key
    clock = [1_700_000_000.0]
    api = FakeGitHubAppAPI(public, clock)
    env = githubapp.environment(
        "https://github.com/octo-org/gitops-config.git",
        _settings(key, PATH="/bin"),
        clock=lambda: clock[0],
        transport=httpx.MockTransport(api.handler),
    )
    first = env["RECONCILER_GIT_PASSWORD"]
    assert first == api.issued[0]
    assert env["RECONCILER_GIT_TOKEN"] == first  # the pulls API uses the same token
    assert env["RECONCILER_GIT_USERNAME"] == "x-access-token"
    assert env["PATH"] == "/bin"
    assert [r.url.host for r in api.requests] == ["api.github.com", "api.github.com"]
    clock[0] += 3600 - githubapp.REFRESH_MARGIN - 1  # 11 minutes left: still good
    assert env["RECONCILER_GIT_PASSWORD"] == first
    assert len(api.issued) == 1
    clock[0] += 2  # under ten minutes left: a new one, before the old one expires
    assert env["RECONCILER_GIT_PASSWORD"] == api.issued[1] != first


def test_github_enterprise_server_api_url_and_explicit_installation(app_key) -> None:
    key, public = app_key
    clock = [1_700_000_000.0]
    api = FakeGitHubAppAPI(public, clock, prefix="/api/v3")
    env = githubapp.environment(
        "https://github.acme.internal/octo-org/gitops-config.git",
        _settings(
            key,
            RECONCILER_GIT_API_URL=GHES_API,
            RECONCILER_GITHUB_APP_INSTALLATION_ID=str(INSTALLATION),
        ),
        clock=lambda: clock[0],
        transport=httpx.MockTransport(api.handler),
    )
    assert env["RECONCILER_GIT_TOKEN"] == api.issued[0]
    assert [str(r.url) for r in api.requests] == [
        f"{GHES_API}/app/installations/{INSTALLATION}/access_tokens"
    ]


def test_the_pulls_api_is_called_with_the_installation_token(app_key) -> None:
    key, public = app_key
    clock = [1_700_000_000.0]
    api = FakeGitHubAppAPI(public, clock)
    pulls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if "/pulls" in request.url.path:
            pulls.append(request)
            return httpx.Response(200, json=[])
        return api.handler(request)

    transport = httpx.MockTransport(handler)
    url = "https://github.com/octo-org/gitops-config.git"
    env = githubapp.environment(url, _settings(key), clock=lambda: clock[0], transport=transport)
    host = host_for(url, env=env, transport=transport)
    assert host.find("promote/shop/prod/1.0.0", "main") is None
    assert pulls[0].headers["authorization"] == f"Bearer {api.issued[0]}"


def test_misconfiguration_is_a_clear_git_error(app_key, tmp_path) -> None:
    key, _ = app_key
    url = "https://github.com/octo-org/gitops-config.git"
    assert githubapp.environment(url, {"X": "1"}) == {"X": "1"}  # no App: settings as given
    with pytest.raises(githubapp.GitHubAppError, match="PRIVATE_KEY_FILE is not"):
        githubapp.environment(url, {"RECONCILER_GITHUB_APP_ID": APP_ID})
    with pytest.raises(githubapp.GitHubAppError, match="not a GitHub owner/repository"):
        githubapp.environment("https://gitlab.com/g/sub/p.git", _settings(key))
    bad_key = tmp_path / "bad.pem"
    bad_key.write_text("not a key")
    env = githubapp.environment(
        url, _settings(bad_key), transport=httpx.MockTransport(lambda r: httpx.Response(500))
    )
    with pytest.raises(githubapp.GitHubAppError, match="is not a PEM RSA key"):
        env["RECONCILER_GIT_PASSWORD"]
    env = githubapp.environment(
        url,
        _settings(key),
        transport=httpx.MockTransport(lambda r: httpx.Response(404, json={"message": "Not Found"})),
    )
    with pytest.raises(
        githubapp.GitHubAppError, match="is the App installed on octo-org/gitops-config"
    ):
        env["RECONCILER_GIT_TOKEN"]


def test_https_git_pushes_as_x_access_token_through_askpass_and_never_logs_it(
    app_key, tmp_path, caplog
) -> None:
    key, public = app_key
    clock = [1_700_000_000.0]
    api = FakeGitHubAppAPI(public, clock, prefix="/api/v3")
    server = GitHttpServer(tmp_path / "git", username="x-access-token", password="unset")
    try:
        remote = server.create_repo("octo-org/gitops-config", seed={"README.md": "hi\n"})
        env = githubapp.environment(
            remote.url,
            _settings(key, RECONCILER_GIT_API_URL=GHES_API, PATH="/usr/bin:/bin"),
            clock=lambda: clock[0],
            transport=httpx.MockTransport(api.handler),
        )
        server.password = "ghs_0000" + "16C7e42F292c6912E7710c838347Ae178B4a"  # the 1st token
        tree = WorkTree(remote.url, tmp_path / "work", "main", author=("bot", "b@x"), env=env)
        with caplog.at_level(logging.DEBUG):
            tree.sync()
            (tree.root / "a.txt").write_text("a\n")
            assert tree.commit("first") is not None
            tree.push()
            # An hour later the first token is gone; the server only takes the new one.
            clock[0] += 3600
            server.password = "ghs_0001" + "16C7e42F292c6912E7710c838347Ae178B4a"
            tree.sync()
            (tree.root / "b.txt").write_text("b\n")
            assert tree.commit("second") is not None
            tree.push()
        tree.close()
        assert remote.subjects()[:2] == ["second", "first"]
        users = {r.user for r in server.requests_for(remote) if r.status == 200}
        assert users == {"x-access-token"}
        config = run_git("config", "--list", cwd=tmp_path / "work")
        logged = caplog.text + config + json.dumps([str(r.url) for r in api.requests])
        assert not any(token in logged for token in api.issued)
    finally:
        server.close()
