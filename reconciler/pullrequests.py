"""Pull (merge) requests on the Git host, for ``promotion: pull-request`` mode.

In pull-request mode a promotion is not committed to the target branch directly:
the reconciler pushes ``promote/<project>/<env>/<version>`` (``gitrepo.WorkTree``
does the git side) and opens a pull request here. Merging it *is* the approval;
later passes look the request up with :meth:`PullRequestHost.find` and act on
``merged`` or ``closed``. A request for a superseded release is closed with a
comment, or updated in place.

One class per host API, all behind :class:`PullRequestHost`:

* GitHub and GitHub Enterprise Server (REST, ``/api/v3`` on GHES),
* GitLab (``/api/v4``; merge requests are addressed by their per-project ``iid``),
* Gitea and Forgejo (``/api/v1``).

:func:`host_for` picks the class from the config repository's URL (https, ssh or
scp-like ``git@host:owner/repo.git``), or from explicit settings for self-hosted
servers whose name says nothing (``RECONCILER_GIT_HOST_KIND``,
``RECONCILER_GIT_API_URL``).

The API token is read from the environment (``RECONCILER_GIT_TOKEN`` by default,
or a file named by ``<variable>_FILE``) at every request, so rotated secrets are
picked up without a restart. It is never stored on an object, so it cannot show
up in a repr; it is registered with :mod:`reconciler.logs` for redaction and
scrubbed from every error message.

Every failure is a :class:`PullRequestError` naming the host, the HTTP status and
the API's own message. ``retry_after`` is set when trying again later can help
(rate limits, 5xx, network errors) and None when it cannot (401, 404, 422...).
Creating requests quickly trips GitHub's secondary rate limits, so the caller
must honour it.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal, Protocol, Self, get_args
from urllib.parse import quote, urlsplit

import httpx

from reconciler.errors import ReconcilerError
from reconciler.feeds.registry import parse_retry_after
from reconciler.logs import register_secret, scrub

__all__ = [
    "ENV_API_URL",
    "ENV_HOST_KIND",
    "GitHubPullRequests",
    "GitLabMergeRequests",
    "GiteaPullRequests",
    "HostKind",
    "PullRequest",
    "PullRequestError",
    "PullRequestHost",
    "PullRequestState",
    "RepoLocation",
    "host_for",
    "parse_repo_url",
]

log = logging.getLogger(__name__)

PullRequestState = Literal["open", "closed", "merged"]
HostKind = Literal["github", "gitlab", "gitea"]
HOST_KINDS: tuple[HostKind, ...] = get_args(HostKind)

ENV_HOST_KIND = "RECONCILER_GIT_HOST_KIND"
ENV_API_URL = "RECONCILER_GIT_API_URL"
DEFAULT_TOKEN_ENV = "RECONCILER_GIT_TOKEN"  # noqa: S105 - a variable name, not a secret

TRANSIENT_RETRY_AFTER = 30.0
"""Suggested delay after a 5xx answer, a timeout or a connection failure."""
RATE_LIMIT_RETRY_AFTER = 60.0
"""GitHub's advice for a secondary rate limit that names no time: at least a minute."""
MAX_ERROR_MESSAGE = 500
"""API error messages are cut to this many characters (some hosts echo whole bodies)."""

GITEA_PAGE_SIZE = 50
"""Gitea's default ``MAX_RESPONSE_ITEMS``; larger pages are cut to it anyway."""
GITEA_MAX_PAGES = 20
"""Bound on the pull request listing (1,000 requests): ``find`` must stay cheap per pass."""
LIST_PAGE_SIZE = 100
"""GitHub and GitLab filter by branch on the server, so one page of this size is plenty."""

_TIMEOUT = httpx.Timeout(30.0, connect=10.0)

_GITLAB_EXISTING_IID = re.compile(r"!(\d+)")
_GITEA_EXISTING_INDEX = re.compile(r"issue_id:\s*(\d+)")
_API_VERSION_SUFFIX = re.compile(r"/api/v\d+/?$")


@dataclass(frozen=True)
class PullRequest:
    """A pull request (GitHub, Gitea) or merge request (GitLab), host independent.

    ``number`` is what the host's web UI shows: ``#12`` on GitHub and Gitea, the
    per-project ``iid`` (``!12``) on GitLab. ``head`` and ``base`` are branch names.
    """

    number: int
    url: str
    state: PullRequestState
    head: str
    base: str
    title: str


class PullRequestError(ReconcilerError):
    """A Git host API call failed.

    ``host`` names the API (``"github api.github.com"``), ``status`` is the HTTP
    status (None for network failures and local problems such as a missing token),
    ``api_message`` the host's own explanation. ``retry_after`` is a delay in
    seconds when the failure is temporary (rate limit, server error, network),
    None when repeating the call unchanged cannot succeed.
    """

    def __init__(
        self,
        host: str,
        message: str,
        *,
        status: int | None = None,
        api_message: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.host = host
        self.message = message
        self.status = status
        self.api_message = api_message
        self.retry_after = retry_after
        super().__init__(f"{host}: {message}")


class PullRequestHost(Protocol):
    """What the reconciler needs from a Git host in pull-request mode."""

    def find(self, head: str, base: str) -> PullRequest | None:
        """The request from ``head`` into ``base``: the open one, else the newest."""
        ...

    def open(self, head: str, base: str, title: str, body: str) -> PullRequest:
        """Open a request; when one is already open for head/base, return that one."""
        ...

    def update(
        self, number: int, *, title: str | None = None, body: str | None = None
    ) -> PullRequest:
        """Change the title and/or description; with neither, just fetch it."""
        ...

    def close(self, number: int, comment: str | None = None) -> PullRequest:
        """Close without merging, after posting ``comment`` (the reason) if given."""
        ...

    def get(self, number: int) -> PullRequest:
        """The request with this number (``iid`` on GitLab)."""
        ...


# -- repository URLs ---------------------------------------------------------------


@dataclass(frozen=True)
class RepoLocation:
    """Where a repository lives on its host's web side.

    ``scheme`` is the scheme of the web/API side (ssh URLs give ``https``),
    ``host`` the host name (with the port for http(s) URLs only: an ssh port says
    nothing about the API's), ``path`` the repository path without ``.git``:
    ``owner/repo``, or ``group/sub/project`` on GitLab.
    """

    scheme: str
    host: str
    path: str

    @property
    def hostname(self) -> str:
        return self.host.rsplit(":", 1)[0] if self.host.count(":") == 1 else self.host


_URL_SCHEMES = ("https", "http", "ssh", "git", "git+ssh", "ssh+git")
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>(?!//).+)$")


def parse_repo_url(url: str) -> RepoLocation:
    """Split a clone URL into web scheme, host and repository path.

    Accepts ``https://[user[:pass]@]host[:port]/path[.git]``, ``http://``,
    ``ssh://[user@]host[:port]/path[.git]``, ``git://`` and the scp-like
    ``[user@]host:path[.git]``. Credentials in the URL are dropped.
    """
    text = url.strip()
    if "://" in text:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme not in _URL_SCHEMES or not parts.hostname:
            raise ValueError(f"cannot tell the Git host from {scrub(text)!r}")
        host = parts.hostname.lower()
        web_scheme = scheme if scheme in ("http", "https") else "https"
        if web_scheme == scheme and parts.port is not None:
            host = f"{host}:{parts.port}"
        path = parts.path
    else:
        match = _SCP_LIKE.match(text)
        if match is None:
            raise ValueError(f"cannot tell the Git host from {scrub(text)!r}")
        web_scheme, host, path = "https", match.group("host").lower(), match.group("path")
    path = path.strip("/")
    path = path.removesuffix(".git").strip("/")
    if not path or "/" not in path:
        raise ValueError(f"{scrub(text)!r} names no owner/repository path")
    return RepoLocation(web_scheme, host, path)


def _as_kind(value: str | None) -> HostKind | None:
    for kind in HOST_KINDS:
        if value == kind:
            return kind
    return None


def _detect_kind(hostname: str) -> HostKind | None:
    """The host kind implied by well-known host names; None when the name says nothing."""
    if hostname in ("github.com", "www.github.com", "ssh.github.com"):
        return "github"
    if hostname.startswith("gitlab.") or hostname == "altssh.gitlab.com":
        return "gitlab"
    if hostname in ("gitea.com", "codeberg.org") or hostname.startswith("gitea."):
        return "gitea"
    return None


def _kind_from_api_url(api_url: str | None) -> HostKind | None:
    """``/api/v3`` is GHES, ``/api/v4`` GitLab, ``/api/v1`` Gitea; nothing else is guessed."""
    if not api_url:
        return None
    path = urlsplit(api_url).path.rstrip("/")
    if urlsplit(api_url).hostname == "api.github.com" or path.endswith("/api/v3"):
        return "github"
    if path.endswith("/api/v4"):
        return "gitlab"
    if path.endswith("/api/v1"):
        return "gitea"
    return None


def _default_api_url(kind: HostKind, location: RepoLocation) -> str:
    if kind == "github":
        if location.hostname in ("github.com", "www.github.com", "ssh.github.com"):
            return "https://api.github.com"
        return f"{location.scheme}://{location.host}/api/v3"
    version = "v4" if kind == "gitlab" else "v1"
    return f"{location.scheme}://{location.host}/api/{version}"


def _repository_path(location: RepoLocation, api_url: str) -> str:
    """The repository path relative to the host's web root.

    A server under a sub-path (``https://example.com/gitea/api/v1`` with clone URL
    ``https://example.com/gitea/owner/repo.git``) has that sub-path in the clone URL
    too; it is not part of the repository's name.
    """
    api = urlsplit(api_url)
    prefix = _API_VERSION_SUFFIX.sub("", api.path).strip("/")
    if (
        prefix
        and (api.hostname or "") == location.hostname
        and location.path.startswith(prefix + "/")
    ):
        return location.path[len(prefix) + 1 :]
    return location.path


def host_for(
    repo_url: str,
    *,
    kind: HostKind | None = None,
    api_url: str | None = None,
    token_env: str = DEFAULT_TOKEN_ENV,
    env: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> PullRequestHost:
    """The pull request client for the host serving ``repo_url``.

    ``kind`` and ``api_url`` default to ``RECONCILER_GIT_HOST_KIND`` and
    ``RECONCILER_GIT_API_URL`` from ``env`` (default ``os.environ``), then to what
    the URL says: github.com, ``gitlab.*``, gitea.com, codeberg.org and ``gitea.*``
    are recognised; an API URL ending in ``/api/v3``, ``/api/v4`` or ``/api/v1``
    names GHES, GitLab or Gitea. Anything else needs the kind configured.
    """
    environment: Mapping[str, str] = os.environ if env is None else env
    try:
        location = parse_repo_url(repo_url)
    except ValueError as error:
        raise PullRequestError("git host", str(error)) from None
    api_url = api_url or environment.get(ENV_API_URL, "").strip() or None
    configured_kind = kind or environment.get(ENV_HOST_KIND, "").strip().lower() or None
    if configured_kind is not None and _as_kind(configured_kind) is None:
        raise PullRequestError(
            location.host,
            f"unknown Git host kind {configured_kind!r} (expected one of {', '.join(HOST_KINDS)})",
        )
    resolved = (
        _as_kind(configured_kind) or _detect_kind(location.hostname) or _kind_from_api_url(api_url)
    )
    if resolved is None:
        raise PullRequestError(
            location.host,
            "cannot tell which kind of Git host this is: set "
            f"{ENV_HOST_KIND} to github, gitlab or gitea (and {ENV_API_URL} if the "
            "API is not at the usual place)",
        )
    api_url = (api_url or _default_api_url(resolved, location)).rstrip("/")
    path = _repository_path(location, api_url)
    host_class = _HOST_CLASSES[resolved]
    return host_class(api_url, path, token_env=token_env, env=environment, transport=transport)


# -- shared HTTP plumbing --------------------------------------------------------------


def _api_error_message(payload: Any) -> str:
    """The human part of a host's error body, whatever its shape.

    GitHub: ``{"message", "errors": [{"message"} | {"resource", "field", "code"}]}``;
    GitLab: ``{"message": str | [str] | {field: [str]}}`` or ``{"error", "error_description"}``;
    Gitea: ``{"message", "url"}`` (validation errors add ``"errors": [str]``).
    """
    if isinstance(payload, str):
        return payload
    if not isinstance(payload, dict):
        return ""
    parts: list[str] = []

    def add(value: Any, prefix: str = "") -> None:
        if isinstance(value, str) and value:
            parts.append(f"{prefix}{value}")
        elif isinstance(value, list):
            for item in value:
                add(item, prefix)
        elif isinstance(value, dict):
            if isinstance(value.get("message"), str):
                add(value["message"], prefix)
            elif "code" in value:
                field = ".".join(str(value[k]) for k in ("resource", "field") if k in value)
                parts.append(f"{prefix}{field} {value['code']}".strip())
            else:
                for key, inner in value.items():
                    add(inner, f"{prefix}{key} ")

    add(payload.get("message"))
    add(payload.get("error"))
    add(payload.get("error_description"))
    add(payload.get("errors"))
    return "; ".join(dict.fromkeys(parts))


def _short_text(response: httpx.Response) -> str:
    """A readable excerpt of a non-JSON error body; nothing for HTML pages."""
    content_type = response.headers.get("content-type", "").lower()
    if "html" in content_type:
        return ""
    try:
        text = response.text.strip()
    except UnicodeDecodeError:
        return ""
    return text.splitlines()[0] if text else ""


def _pick_newest(requests: Iterable[PullRequest]) -> PullRequest | None:
    """The open request if there is one (hosts allow one per head/base), else the newest."""
    candidates = list(requests)
    open_ones = [pr for pr in candidates if pr.state == "open"]
    pool = open_ones or candidates
    return max(pool, key=lambda pr: pr.number) if pool else None


def _field(obj: Any, *keys: str) -> Any:
    """``obj[k1][k2]...``, None where any level is missing or not an object."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


class _HostClient:
    """HTTP, auth, error mapping and token hygiene shared by the host classes."""

    kind: ClassVar[HostKind]
    base_headers: ClassVar[Mapping[str, str]] = {"Accept": "application/json"}

    def __init__(
        self,
        api_url: str,
        repository: str,
        *,
        token_env: str = DEFAULT_TOKEN_ENV,
        env: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.repository = repository.strip("/")
        self.token_env = token_env
        self._env: Mapping[str, str] = os.environ if env is None else env
        self._clock = clock
        self.host = f"{self.kind} {urlsplit(self.api_url).netloc}"
        self._configure_paths()
        self._client = httpx.Client(
            base_url=self.api_url + "/",
            transport=transport,
            timeout=_TIMEOUT,
            headers={**self.base_headers, "User-Agent": "reconciler"},
            follow_redirects=False,  # custom token headers would follow a cross-host redirect
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(api_url={self.api_url!r}, repository={self.repository!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        """Close the HTTP connections (``close`` is taken: it closes pull requests)."""
        self._client.close()

    # -- to be provided by each host --------------------------------------------------

    def _configure_paths(self) -> None:
        """Check ``self.repository`` and derive the API paths from it."""
        raise NotImplementedError

    def _auth_headers(self, token: str) -> dict[str, str]:
        raise NotImplementedError

    # -- requests --------------------------------------------------------------------

    def _token(self) -> str:
        token = self._env.get(self.token_env, "").strip()
        token_file = self._env.get(f"{self.token_env}_FILE", "").strip()
        if not token and token_file:
            try:
                token = Path(token_file).read_text(encoding="utf-8").strip()
            except OSError as error:
                raise PullRequestError(
                    self.host, f"cannot read the API token from {token_file}: {error.strerror}"
                ) from None
        if not token:
            raise PullRequestError(
                self.host,
                f"no API token: set {self.token_env} (or {self.token_env}_FILE) to a token "
                "allowed to open pull requests",
            )
        register_secret(token)
        return token

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str | int] | None = None,
    ) -> httpx.Response:
        """Send one request; a 2xx response is returned, anything else raised."""
        token = self._token()
        action = f"{method} {path}"
        try:
            response = self._client.request(
                method,
                path.lstrip("/"),
                json=json,
                params=params,
                headers=self._auth_headers(token),
            )
        except httpx.HTTPError as error:
            raise PullRequestError(
                self.host,
                scrub(f"{action} failed: {type(error).__name__}: {error}", [token]),
                retry_after=TRANSIENT_RETRY_AFTER,
            ) from None
        log.debug("%s %s -> %s", self.host, action, response.status_code)
        if response.is_success:
            return response
        raise self._error(response, action, token)

    def _error(self, response: httpx.Response, action: str, token: str) -> PullRequestError:
        status = response.status_code
        try:
            api_message = _api_error_message(response.json())
        except ValueError:
            api_message = _short_text(response)
        api_message = scrub(api_message, [token])[:MAX_ERROR_MESSAGE]
        explanation = api_message or response.reason_phrase or "no explanation"
        retry_after = self._rate_limit_delay(response, api_message)
        if retry_after is not None:
            summary = f"rate limited (HTTP {status}); retry in {retry_after:.0f} s: {explanation}"
        elif status == 401:
            summary = (
                f"authentication failed (HTTP 401): {explanation}; check the token in "
                f"{self.token_env}"
            )
        elif status == 403:
            summary = f"forbidden (HTTP 403): {explanation}; the token lacks a permission"
        elif status == 404:
            summary = (
                f"not found (HTTP 404): {explanation}; check the repository "
                f"{self.repository!r} and that the token can see it"
            )
        elif 300 <= status < 400:
            location = response.headers.get("location", "")
            summary = f"redirected (HTTP {status}) to {scrub(location, [token])!r}: fix the API URL"
        else:
            summary = f"HTTP {status}: {explanation}"
            if status >= 500:
                retry_after = TRANSIENT_RETRY_AFTER
        return PullRequestError(
            self.host,
            f"{action} {summary}",
            status=status,
            api_message=api_message,
            retry_after=retry_after,
        )

    def _rate_limit_delay(self, response: httpx.Response, api_message: str) -> float | None:
        """Seconds to wait when the answer is a rate limit, else None.

        429 always is one. GitHub also answers 403 for both limits: primary with
        ``x-ratelimit-remaining: 0``, secondary with ``retry-after`` or only a
        message. Waiting order as GitHub documents it: ``retry-after``, then the
        reset time (``x-ratelimit-reset``; GitLab's ``ratelimit-reset``), then a minute.
        """
        headers = response.headers
        remaining = headers.get("x-ratelimit-remaining", headers.get("ratelimit-remaining"))
        limited = response.status_code == 429 or (
            response.status_code == 403
            and (
                "retry-after" in headers or remaining == "0" or "rate limit" in api_message.lower()
            )
        )
        if not limited:
            return None
        now = self._clock()
        if "retry-after" in headers:
            return parse_retry_after(
                headers["retry-after"], now=now, default=RATE_LIMIT_RETRY_AFTER
            )
        reset = headers.get("x-ratelimit-reset", headers.get("ratelimit-reset", "")).strip()
        if remaining == "0" and reset.isdigit():
            return max(1.0, float(reset) - now)
        return RATE_LIMIT_RETRY_AFTER

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise PullRequestError(
                self.host,
                f"{response.request.method} {response.request.url.path}: the answer is not JSON",
                status=response.status_code,
                retry_after=TRANSIENT_RETRY_AFTER,
            ) from None

    def _json_list(self, response: httpx.Response) -> list[Any]:
        payload = self._json(response)
        if not isinstance(payload, list):
            raise self._malformed(response, "expected a JSON list")
        return payload

    def _malformed(self, response: httpx.Response, what: str) -> PullRequestError:
        return PullRequestError(
            self.host,
            f"{response.request.method} {response.request.url.path}: unexpected answer: {what}",
            status=response.status_code,
            retry_after=TRANSIENT_RETRY_AFTER,
        )

    def _build(
        self,
        response: httpx.Response,
        payload: Any,
        *,
        number: Any,
        url: Any,
        state: PullRequestState | None,
        head: Any,
        base: Any,
        title: Any,
    ) -> PullRequest:
        """A PullRequest from fields a host's JSON gave, or a clear error naming the gap."""
        values = {"number": number, "url": url, "head": head, "base": base, "title": title}
        missing = [
            name
            for name, value in values.items()
            if not (isinstance(value, int) if name == "number" else isinstance(value, str))
            or isinstance(value, bool)
        ]
        if state is None:
            missing.append("state")
        if missing or state is None:
            raise self._malformed(response, f"pull request without {', '.join(missing)}")
        return PullRequest(int(number), url, state, head, base, title)


# -- GitHub ------------------------------------------------------------------------------


class GitHubPullRequests(_HostClient):
    """GitHub.com and GitHub Enterprise Server (REST API version 2022-11-28)."""

    kind: ClassVar[HostKind] = "github"
    base_headers: ClassVar[Mapping[str, str]] = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }

    def _configure_paths(self) -> None:
        parts = self.repository.split("/")
        if len(parts) != 2:
            raise PullRequestError(self.host, f"{self.repository!r} is not owner/repository")
        self.owner, self.name = parts
        self._pulls = f"/repos/{quote(self.owner, safe='')}/{quote(self.name, safe='')}/pulls"
        self._issues = f"/repos/{quote(self.owner, safe='')}/{quote(self.name, safe='')}/issues"

    def _auth_headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def _parse(self, response: httpx.Response, payload: Any) -> PullRequest:
        state: PullRequestState | None = None
        if _field(payload, "merged_at") or _field(payload, "merged") is True:
            state = "merged"
        elif _field(payload, "state") in ("open", "closed"):
            state = _field(payload, "state")
        return self._build(
            response,
            payload,
            number=_field(payload, "number"),
            url=_field(payload, "html_url"),
            state=state,
            head=_field(payload, "head", "ref"),
            base=_field(payload, "base", "ref"),
            title=_field(payload, "title"),
        )

    def _one(self, response: httpx.Response) -> PullRequest:
        return self._parse(response, self._json(response))

    def find(self, head: str, base: str) -> PullRequest | None:
        response = self._request(
            "GET",
            self._pulls,
            params={
                "state": "all",
                "head": f"{self.owner}:{head}",  # without the owner GitHub ignores the filter
                "base": base,
                "sort": "created",
                "direction": "desc",
                "per_page": LIST_PAGE_SIZE,
            },
        )
        found = (self._parse(response, item) for item in self._json_list(response))
        return _pick_newest(pr for pr in found if pr.head == head and pr.base == base)

    def open(self, head: str, base: str, title: str, body: str) -> PullRequest:
        payload = {"title": title, "head": head, "base": base, "body": body}
        try:
            return self._one(self._request("POST", self._pulls, json=payload))
        except PullRequestError as error:
            if error.status != 422 or "already exists" not in error.api_message.lower():
                raise
            existing = self.find(head, base)
            if existing is None or existing.state != "open":
                raise
            log.info("%s: pull request #%d already open for %s", self.host, existing.number, head)
            return existing

    def update(
        self, number: int, *, title: str | None = None, body: str | None = None
    ) -> PullRequest:
        changes = {k: v for k, v in (("title", title), ("body", body)) if v is not None}
        if not changes:
            return self.get(number)
        return self._one(self._request("PATCH", f"{self._pulls}/{number}", json=changes))

    def close(self, number: int, comment: str | None = None) -> PullRequest:
        if comment:
            # Pull requests are issues for comments: the review-comment API needs a diff line.
            self._request("POST", f"{self._issues}/{number}/comments", json={"body": comment})
        response = self._request("PATCH", f"{self._pulls}/{number}", json={"state": "closed"})
        return self._one(response)

    def get(self, number: int) -> PullRequest:
        return self._one(self._request("GET", f"{self._pulls}/{number}"))


# -- GitLab --------------------------------------------------------------------------------


class GitLabMergeRequests(_HostClient):
    """GitLab merge requests (API v4), addressed by the per-project ``iid``."""

    kind: ClassVar[HostKind] = "gitlab"

    _STATES: ClassVar[Mapping[str, PullRequestState]] = {
        "opened": "open",
        "locked": "open",  # briefly, while GitLab merges it
        "merged": "merged",
        "closed": "closed",
    }

    def _configure_paths(self) -> None:
        # The project id may be the URL-encoded full path: every "/" becomes %2F.
        self.project_id = quote(self.repository, safe="")
        self._merge_requests = f"/projects/{self.project_id}/merge_requests"

    def _auth_headers(self, token: str) -> dict[str, str]:
        return {"PRIVATE-TOKEN": token}

    def _parse(self, response: httpx.Response, payload: Any) -> PullRequest:
        return self._build(
            response,
            payload,
            number=_field(payload, "iid"),
            url=_field(payload, "web_url"),
            state=self._STATES.get(str(_field(payload, "state"))),
            head=_field(payload, "source_branch"),
            base=_field(payload, "target_branch"),
            title=_field(payload, "title"),
        )

    def _one(self, response: httpx.Response) -> PullRequest:
        return self._parse(response, self._json(response))

    @staticmethod
    def _same_project(payload: Any) -> bool:
        """False for merge requests from forks that happen to use the same branch name."""
        source, target = _field(payload, "source_project_id"), _field(payload, "target_project_id")
        return source is None or target is None or source == target

    def find(self, head: str, base: str) -> PullRequest | None:
        response = self._request(
            "GET",
            self._merge_requests,
            params={
                "source_branch": head,
                "target_branch": base,
                "state": "all",
                "order_by": "created_at",
                "sort": "desc",
                "per_page": LIST_PAGE_SIZE,
            },
        )
        found = (
            self._parse(response, item)
            for item in self._json_list(response)
            if self._same_project(item)
        )
        return _pick_newest(pr for pr in found if pr.head == head and pr.base == base)

    def open(self, head: str, base: str, title: str, body: str) -> PullRequest:
        payload = {
            "source_branch": head,
            "target_branch": base,
            "title": title,
            "description": body,
            "remove_source_branch": True,
        }
        try:
            return self._one(self._request("POST", self._merge_requests, json=payload))
        except PullRequestError as error:
            if error.status != 409 or "already exists" not in error.api_message.lower():
                raise
            existing = self._existing(error.api_message, head, base)
            if existing is None:
                raise
            log.info("%s: merge request !%d already open for %s", self.host, existing.number, head)
            return existing

    def _existing(self, api_message: str, head: str, base: str) -> PullRequest | None:
        """The open request the 409 names (``...source branch: !12``), else a lookup."""
        match = _GITLAB_EXISTING_IID.search(api_message)
        if match:
            try:
                named = self.get(int(match.group(1)))
            except PullRequestError as error:
                if error.status != 404:
                    raise
            else:
                if named.state == "open" and named.head == head and named.base == base:
                    return named
        # GitLab refuses a second open MR per source branch, whatever its target.
        found = self.find(head, base)
        return found if found is not None and found.state == "open" else None

    def update(
        self, number: int, *, title: str | None = None, body: str | None = None
    ) -> PullRequest:
        changes = {k: v for k, v in (("title", title), ("description", body)) if v is not None}
        if not changes:
            return self.get(number)  # GitLab answers 400 to an empty update
        return self._one(self._request("PUT", f"{self._merge_requests}/{number}", json=changes))

    def close(self, number: int, comment: str | None = None) -> PullRequest:
        if comment:
            self._request("POST", f"{self._merge_requests}/{number}/notes", json={"body": comment})
        response = self._request(
            "PUT", f"{self._merge_requests}/{number}", json={"state_event": "close"}
        )
        return self._one(response)

    def get(self, number: int) -> PullRequest:
        return self._one(self._request("GET", f"{self._merge_requests}/{number}"))


# -- Gitea ---------------------------------------------------------------------------------


class GiteaPullRequests(_HostClient):
    """Gitea and Forgejo pull requests (API v1)."""

    kind: ClassVar[HostKind] = "gitea"

    def _configure_paths(self) -> None:
        parts = self.repository.split("/")
        if len(parts) != 2:
            raise PullRequestError(self.host, f"{self.repository!r} is not owner/repository")
        self.owner, self.name = parts
        prefix = f"/repos/{quote(self.owner, safe='')}/{quote(self.name, safe='')}"
        self._pulls = f"{prefix}/pulls"
        self._issues = f"{prefix}/issues"

    def _auth_headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"token {token}"}

    def _parse(self, response: httpx.Response, payload: Any) -> PullRequest:
        state: PullRequestState | None = None
        if _field(payload, "merged") is True:
            state = "merged"
        elif _field(payload, "state") in ("open", "closed"):
            state = _field(payload, "state")
        return self._build(
            response,
            payload,
            number=_field(payload, "number"),
            url=_field(payload, "html_url"),
            state=state,
            head=_field(payload, "head", "ref"),
            base=_field(payload, "base", "ref"),
            title=_field(payload, "title"),
        )

    def _one(self, response: httpx.Response) -> PullRequest:
        return self._parse(response, self._json(response))

    @staticmethod
    def _same_repository(payload: Any) -> bool:
        head_repo = _field(payload, "head", "repo_id")
        base_repo = _field(payload, "base", "repo_id")
        return head_repo is None or base_repo is None or head_repo == base_repo

    def find(self, head: str, base: str) -> PullRequest | None:
        """List the repository's requests page by page and filter on head and base.

        Older Gitea versions cannot filter by head branch (and the by-base/head route
        is recent and cannot take ``/`` in branch names), so this walks the list, at
        most ``GITEA_MAX_PAGES`` pages; ``base_branch`` narrows it where supported.
        The walk stops at the first open match: only one can be open per head/base.
        """
        matches: list[PullRequest] = []
        seen = 0
        for page in range(1, GITEA_MAX_PAGES + 1):
            response = self._request(
                "GET",
                self._pulls,
                params={
                    "state": "all",
                    "base_branch": base,
                    "page": page,
                    "limit": GITEA_PAGE_SIZE,
                },
            )
            items = self._json_list(response)
            for item in items:
                pr = self._parse(response, item)
                if pr.head == head and pr.base == base and self._same_repository(item):
                    if pr.state == "open":
                        return pr
                    matches.append(pr)
            seen += len(items)
            total = response.headers.get("x-total-count", "")
            if not items or (total.isdigit() and seen >= int(total)):
                break
        else:
            log.warning(
                "%s: stopped looking for %s -> %s after %d pages of pull requests",
                self.host,
                head,
                base,
                GITEA_MAX_PAGES,
            )
        return _pick_newest(matches)

    def open(self, head: str, base: str, title: str, body: str) -> PullRequest:
        payload = {"head": head, "base": base, "title": title, "body": body}
        try:
            return self._one(self._request("POST", self._pulls, json=payload))
        except PullRequestError as error:
            if error.status != 409 or "already exists" not in error.api_message.lower():
                raise
            existing = self._existing(error.api_message, head, base)
            if existing is None:
                raise
            log.info("%s: pull request #%d already open for %s", self.host, existing.number, head)
            return existing

    def _existing(self, api_message: str, head: str, base: str) -> PullRequest | None:
        """The open request the 409 names, else a lookup.

        Recent Gitea puts the pull request's number in ``issue_id``; older versions put
        a database id there, so the hint is only trusted when head and base match.
        """
        match = _GITEA_EXISTING_INDEX.search(api_message)
        if match:
            try:
                named = self.get(int(match.group(1)))
            except PullRequestError as error:
                if error.status != 404:
                    raise
            else:
                if named.state == "open" and named.head == head and named.base == base:
                    return named
        found = self.find(head, base)
        return found if found is not None and found.state == "open" else None

    def update(
        self, number: int, *, title: str | None = None, body: str | None = None
    ) -> PullRequest:
        changes = {k: v for k, v in (("title", title), ("body", body)) if v is not None}
        if not changes:
            return self.get(number)
        return self._one(self._request("PATCH", f"{self._pulls}/{number}", json=changes))

    def close(self, number: int, comment: str | None = None) -> PullRequest:
        if comment:
            self._request("POST", f"{self._issues}/{number}/comments", json={"body": comment})
        response = self._request("PATCH", f"{self._pulls}/{number}", json={"state": "closed"})
        return self._one(response)

    def get(self, number: int) -> PullRequest:
        return self._one(self._request("GET", f"{self._pulls}/{number}"))


_HOST_CLASSES: Mapping[
    HostKind, type[GitHubPullRequests] | type[GitLabMergeRequests] | type[GiteaPullRequests]
] = {
    "github": GitHubPullRequests,
    "gitlab": GitLabMergeRequests,
    "gitea": GiteaPullRequests,
}
