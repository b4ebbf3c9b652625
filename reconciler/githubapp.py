"""GitHub App authentication: an app id and a private key become installation tokens.

Organisations that will not hand a bot a personal token install a GitHub App on the
config repository instead. The reconciler then holds only the App's id and private
key (a mounted file) and, as GitHub documents ("Authenticating as a GitHub App
installation", docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app):

1. signs a JSON Web Token with the key (RS256; ``iss`` the app id, ``iat`` 60 s in
   the past against clock drift, ``exp`` at most 10 minutes ahead);
2. finds the App's installation on the config repository:
   ``GET /repos/{owner}/{repo}/installation`` (Bearer JWT), unless the operator
   names it (``RECONCILER_GITHUB_APP_INSTALLATION_ID``);
3. asks for an installation access token:
   ``POST /app/installations/{id}/access_tokens`` -> ``{"token", "expires_at"}``.

The token is good for one hour. :class:`GitHubApp` keeps it and asks for a new one
ten minutes before it expires, so a long ``run`` never pushes with a stale token.
It serves both sides of the Git host:

- HTTPS Git, as user ``x-access-token`` through gitrepo's askpass script (the
  token is the ``RECONCILER_GIT_PASSWORD`` that :func:`environment` answers);
- the pulls API (``RECONCILER_GIT_TOKEN``), for ``promotion: pull-request``.

GitHub Enterprise Server works the same at ``https://<host>/api/v3`` (or the
``RECONCILER_GIT_API_URL`` given). The key, the JWT and the tokens are registered
with :mod:`reconciler.logs` for redaction and never stored in the repository.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import jwt

from reconciler.errors import GitError
from reconciler.logs import register_secret, scrub
from reconciler.pullrequests.urls import default_api_url, detect_kind, parse_repo_url

__all__ = [
    "ENV_APP_ID",
    "ENV_APP_INSTALLATION_ID",
    "ENV_APP_PRIVATE_KEY_FILE",
    "REFRESH_MARGIN",
    "GitHubApp",
    "GitHubAppError",
    "environment",
]

ENV_APP_ID = "RECONCILER_GITHUB_APP_ID"
ENV_APP_PRIVATE_KEY_FILE = "RECONCILER_GITHUB_APP_PRIVATE_KEY_FILE"
ENV_APP_INSTALLATION_ID = "RECONCILER_GITHUB_APP_INSTALLATION_ID"
ENV_API_URL = "RECONCILER_GIT_API_URL"

REFRESH_MARGIN = 600.0
"""Seconds before expiry at which a new installation token is fetched."""
JWT_LIFETIME = 540
"""Seconds a JWT is valid (GitHub allows at most 600)."""
GIT_USERNAME = "x-access-token"

_TOKEN_KEYS = ("RECONCILER_GIT_PASSWORD", "RECONCILER_GIT_TOKEN")
"""Settings answered with the installation token: Git's password, the API token."""
_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class GitHubAppError(GitError):
    """The App's installation token could not be obtained (a Git host failure)."""


class GitHubApp:
    """Installation tokens for one App on one repository, refreshed before expiry."""

    def __init__(
        self,
        app_id: str,
        private_key_file: Path,
        repo_url: str,
        *,
        api_url: str | None = None,
        installation_id: str | None = None,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        location = parse_repo_url(repo_url)
        self.app_id = app_id
        self.private_key_file = private_key_file
        self.owner, _, self.repository = location.path.partition("/")
        self.api_url = (api_url or default_api_url("github", location)).rstrip("/")
        self.installation_id = installation_id
        self._clock = clock
        self._transport = transport
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()  # run mode: the webhook server and the loop share it

    def __repr__(self) -> str:
        return f"GitHubApp(app_id={self.app_id!r}, api_url={self.api_url!r})"

    def token(self) -> str:
        """A valid installation token, fetched again when it has < 10 minutes left."""
        with self._lock:
            if self._token is None or self._clock() >= self._expires - REFRESH_MARGIN:
                self._token, self._expires = self._new_token()
            return self._token

    # -- the GitHub side -------------------------------------------------------------

    def _jwt(self) -> str:
        try:
            key = self.private_key_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise GitHubAppError(
                f"cannot read the GitHub App private key {self.private_key_file}: "
                f"{getattr(error, 'strerror', None) or type(error).__name__}"
            ) from None
        register_secret(key.strip())
        now = int(self._clock())
        claims = {"iat": now - 60, "exp": now + JWT_LIFETIME, "iss": self.app_id}
        try:
            token = jwt.encode(claims, key, algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError) as error:
            raise GitHubAppError(
                f"the GitHub App private key {self.private_key_file} is not a PEM RSA key: "
                f"{type(error).__name__}"
            ) from None
        register_secret(token)
        return token

    def _new_token(self) -> tuple[str, float]:
        bearer = self._jwt()
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "Authorization": f"Bearer {bearer}",
            "User-Agent": "reconciler",
        }
        with httpx.Client(
            base_url=self.api_url + "/",
            transport=self._transport,
            timeout=_TIMEOUT,
            headers=headers,
            follow_redirects=False,
        ) as client:
            installation = self.installation_id or str(self._installation(client))
            answer = self._call(
                client, "POST", f"app/installations/{quote(installation, safe='')}/access_tokens"
            )
        token, expires_at = answer.get("token"), answer.get("expires_at")
        if not isinstance(token, str) or not token or not isinstance(expires_at, str):
            raise GitHubAppError(f"{self.api_url}: access token answer without token/expires_at")
        register_secret(token)
        try:
            expires = datetime.fromisoformat(expires_at.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise GitHubAppError(f"{self.api_url}: unreadable expires_at {expires_at!r}") from None
        return token, expires

    def _installation(self, client: httpx.Client) -> int:
        path = f"repos/{quote(self.owner, safe='')}/{quote(self.repository, safe='')}/installation"
        answer = self._call(client, "GET", path)
        installation = answer.get("id")
        if not isinstance(installation, int) or isinstance(installation, bool):
            raise GitHubAppError(f"{self.api_url}: installation answer without an id")
        return installation

    def _call(self, client: httpx.Client, method: str, path: str) -> dict[str, object]:
        try:
            response = client.request(method, path)
        except httpx.HTTPError as error:
            raise GitHubAppError(
                f"GitHub App {method} {self.api_url}/{path}: {type(error).__name__}"
            ) from None
        if not response.is_success:
            try:
                message = str(response.json().get("message", ""))
            except (ValueError, AttributeError):
                message = ""
            hint = {
                401: "check the app id and private key",
                404: f"is the App installed on {self.owner}/{self.repository}?",
            }.get(response.status_code, "")
            raise GitHubAppError(
                scrub(
                    f"GitHub App {method} {self.api_url}/{path}: HTTP {response.status_code}"
                    + (f": {message}" if message else "")
                    + (f"; {hint}" if hint else "")
                )
            )
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise GitHubAppError(f"GitHub App {method} {self.api_url}/{path}: answer not an object")
        return payload


class _AppEnvironment(Mapping[str, str]):
    """The process settings, with Git's password and the API token from the App.

    gitrepo and pullrequests read their settings at every remote call, so the
    token they get is always the App's current one.
    """

    def __init__(self, base: Mapping[str, str], app: GitHubApp) -> None:
        self._base = base
        self.app = app

    def __getitem__(self, key: str) -> str:
        if key in _TOKEN_KEYS and not self._base.get(key):
            return self.app.token()
        if key == "RECONCILER_GIT_USERNAME" and not self._base.get("RECONCILER_GIT_PASSWORD"):
            return GIT_USERNAME
        return self._base[key]

    def __iter__(self) -> Iterator[str]:
        yield from dict.fromkeys([*self._base, *_TOKEN_KEYS, "RECONCILER_GIT_USERNAME"])

    def __len__(self) -> int:
        return sum(1 for _ in self)


def environment(
    repo_url: str,
    base: Mapping[str, str] | None = None,
    *,
    clock: Callable[[], float] = time.time,
    transport: httpx.BaseTransport | None = None,
) -> Mapping[str, str]:
    """``base`` (default ``os.environ``), with GitHub App tokens when an App is set up.

    Without ``RECONCILER_GITHUB_APP_ID`` this is ``base`` itself. With it, the
    private key file must be set too, and the repository must be on GitHub (or a
    GHES named by ``RECONCILER_GIT_API_URL``); a mistake is a GitHubAppError now,
    not a failed push later.
    """
    settings: Mapping[str, str] = os.environ if base is None else base
    app_id = settings.get(ENV_APP_ID, "").strip()
    if not app_id:
        return settings
    key_file = settings.get(ENV_APP_PRIVATE_KEY_FILE, "").strip()
    if not key_file:
        raise GitHubAppError(f"{ENV_APP_ID} is set but {ENV_APP_PRIVATE_KEY_FILE} is not")
    try:
        location = parse_repo_url(repo_url)
    except ValueError as error:
        raise GitHubAppError(f"GitHub App: {error}") from None
    api_url = settings.get(ENV_API_URL, "").strip() or None
    on_github = detect_kind(location.hostname) == "github" or api_url is not None
    if location.path.count("/") != 1 or not on_github:
        raise GitHubAppError(
            f"GitHub App: {location.host}/{location.path} is not a GitHub owner/repository "
            f"(for GitHub Enterprise Server set {ENV_API_URL})"
        )
    app = GitHubApp(
        app_id,
        Path(key_file),
        repo_url,
        api_url=api_url,
        installation_id=settings.get(ENV_APP_INSTALLATION_ID, "").strip() or None,
        clock=clock,
        transport=transport,
    )
    return _AppEnvironment(settings, app)
