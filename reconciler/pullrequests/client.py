"""What every Git host client shares: the host-independent pull request, the error,
the protocol the pass uses, and the HTTP plumbing (token from the environment at
every request, error mapping, rate limits, token hygiene).

The API token is read from the environment (``RECONCILER_GIT_TOKEN`` by default,
or a file named by ``<variable>_FILE``) at every request, so rotated secrets are
picked up without a restart. It is never stored on an object, so it cannot show
up in a repr; it is registered with :mod:`reconciler.logs` for redaction and
scrubbed from every error message.

Every failure is a :class:`PullRequestError` naming the host, the HTTP status and
the API's own message. ``retry_after`` is set when trying again later can help
(rate limits, 5xx, network errors) and None when it cannot (401, 404, 422...).
"""

from __future__ import annotations

import base64
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal, Protocol, Self
from urllib.parse import quote, urlsplit

import httpx

from reconciler.errors import PullRequestError
from reconciler.feeds._http import parse_retry_after
from reconciler.logs import register_secret, scrub
from reconciler.pullrequests.urls import HostKind

__all__ = [
    "DEFAULT_TOKEN_ENV",
    "LIST_PAGE_SIZE",
    "MAX_ERROR_MESSAGE",
    "RATE_LIMIT_RETRY_AFTER",
    "TRANSIENT_RETRY_AFTER",
    "HostClient",
    "PullRequest",
    "PullRequestError",
    "PullRequestHost",
    "PullRequestState",
    "RepoPullsClient",
    "basic_auth",
    "field",
    "pick_newest",
]

log = logging.getLogger(__name__)

PullRequestState = Literal["open", "closed", "merged"]
DEFAULT_TOKEN_ENV = "RECONCILER_GIT_TOKEN"  # noqa: S105 - a variable name, not a secret
ENV_USERNAME = "RECONCILER_GIT_USERNAME"

TRANSIENT_RETRY_AFTER = 30.0
"""Suggested delay after a 5xx answer, a timeout or a connection failure."""
RATE_LIMIT_RETRY_AFTER = 60.0
"""GitHub's advice for a secondary rate limit that names no time: at least a minute."""
MAX_ERROR_MESSAGE = 500
"""API error messages are cut to this many characters (some hosts echo whole bodies)."""
LIST_PAGE_SIZE = 100
"""GitHub and GitLab filter by branch on the server, so one page of this size is plenty."""

_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


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


def pick_newest(requests: Iterable[PullRequest]) -> PullRequest | None:
    """The open request if there is one (hosts allow one per head/base), else the newest."""
    candidates = list(requests)
    open_ones = [pr for pr in candidates if pr.state == "open"]
    pool = open_ones or candidates
    return max(pool, key=lambda pr: pr.number) if pool else None


def field(obj: Any, *keys: str) -> Any:
    """``obj[k1][k2]...``, None where any level is missing or not an object."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


class HostClient:
    """HTTP, auth, error mapping and token hygiene shared by the host classes."""

    kind: ClassVar[HostKind]
    base_headers: ClassVar[Mapping[str, str]] = {"Accept": "application/json"}
    label: ClassVar[str] = "pull request #"
    """How the host's web UI names a request, before its number (for logs)."""
    description_field: ClassVar[str] = "body"
    update_method: ClassVar[str] = "PATCH"
    conflict_status: ClassVar[int] = 409
    """The status of the answer to opening a request that is already open."""
    existing_hint: ClassVar[re.Pattern[str] | None] = None
    """Where that answer names the open request's number, if it does."""
    conflict_text: ClassVar[str] = "already exists"
    """What that answer's message says (lower case), to tell it from other refusals."""
    default_params: ClassVar[Mapping[str, str]] = {}
    """Query parameters every request carries (Azure DevOps: ``api-version``)."""

    _pulls: str
    """The API path of the repository's request list, set by ``_configure_paths``."""

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

    def _parse(self, response: httpx.Response, payload: Any) -> PullRequest:
        """A PullRequest from one of the host's JSON objects."""
        raise NotImplementedError

    def _item(self, number: int) -> str:
        """The API path of the request with this number (below ``_pulls`` on most hosts)."""
        return f"{self._pulls}/{number}"

    def find(self, head: str, base: str) -> PullRequest | None:
        raise NotImplementedError

    def open(self, head: str, base: str, title: str, body: str) -> PullRequest:
        raise NotImplementedError

    def close(self, number: int, comment: str | None = None) -> PullRequest:
        raise NotImplementedError

    # -- what the hosts share ------------------------------------------------------------

    def get(self, number: int) -> PullRequest:
        return self._one(self._request("GET", self._item(number)))

    def update(
        self, number: int, *, title: str | None = None, body: str | None = None
    ) -> PullRequest:
        changes = {
            k: v for k, v in (("title", title), (self.description_field, body)) if v is not None
        }
        if not changes:
            return self.get(number)  # GitLab answers 400 to an empty update
        return self._one(self._request(self.update_method, self._item(number), json=changes))

    def _one(self, response: httpx.Response) -> PullRequest:
        return self._parse(response, self._json(response))

    def _match(
        self, response: httpx.Response, items: Any, head: str, base: str
    ) -> PullRequest | None:
        """Of the listed requests ``items``, the one from ``head`` into ``base`` (see
        ``pick_newest``)."""
        if not isinstance(items, list):
            raise self._malformed(response, "expected a list of pull requests")
        found = (self._parse(response, item) for item in items)
        return pick_newest(pr for pr in found if pr.head == head and pr.base == base)

    def _bearer_or_basic(self, token: str) -> dict[str, str]:
        """``Bearer`` for access tokens; Basic when a user name goes with the secret
        (``RECONCILER_GIT_USERNAME``: Bitbucket app passwords, user passwords)."""
        username = self._env.get(ENV_USERNAME, "").strip()
        return basic_auth(username, token) if username else {"Authorization": f"Bearer {token}"}

    def _create(self, path: str, payload: Mapping[str, Any], head: str, base: str) -> PullRequest:
        """POST a new request; when the host says one is already open, return that one."""
        try:
            return self._one(self._request("POST", path, json=payload))
        except PullRequestError as error:
            if error.status != self.conflict_status:
                raise
            if self.conflict_text not in error.api_message.lower():
                raise
            existing = self._existing(error.api_message, head, base)
            if existing is None:
                raise
            log.info("%s: %s%d already open for %s", self.host, self.label, existing.number, head)
            return existing

    def _existing(self, api_message: str, head: str, base: str) -> PullRequest | None:
        """The open request an "already exists" answer names, else a lookup.

        The number in the message (``existing_hint``) is only trusted when head and
        base match: older Gitea versions put a database id there.
        """
        match = self.existing_hint.search(api_message) if self.existing_hint else None
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
        params: Mapping[str, str | int] | Sequence[tuple[str, str | int]] | None = None,
    ) -> httpx.Response:
        """Send one request; a 2xx response is returned, anything else raised."""
        token = self._token()
        action = f"{method} {path}"
        try:
            response = self._client.request(
                method,
                path.lstrip("/"),
                json=json,
                params=[*self.default_params.items(), *_pairs(params)],
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


class RepoPullsClient(HostClient):
    """GitHub and Gitea: the same ``/repos/{owner}/{repo}/pulls`` API shape.

    Both name a request by ``number``, give ``head.ref``/``base.ref`` and
    ``html_url``, close by PATCHing ``state`` and take comments on the issue of the
    same number (the review-comment API needs a diff line).
    """

    merged_at_counts: ClassVar[bool] = False
    """Whether a set ``merged_at`` alone means merged (GitHub), besides ``merged: true``."""

    def _configure_paths(self) -> None:
        parts = self.repository.split("/")
        if len(parts) != 2:
            raise PullRequestError(self.host, f"{self.repository!r} is not owner/repository")
        self.owner, self.name = parts
        prefix = f"/repos/{quote(self.owner, safe='')}/{quote(self.name, safe='')}"
        self._pulls = f"{prefix}/pulls"
        self._issues = f"{prefix}/issues"

    def _parse(self, response: httpx.Response, payload: Any) -> PullRequest:
        state: PullRequestState | None = None
        merged_at = self.merged_at_counts and field(payload, "merged_at")
        if merged_at or field(payload, "merged") is True:
            state = "merged"
        elif field(payload, "state") in ("open", "closed"):
            state = field(payload, "state")
        return self._build(
            response,
            payload,
            number=field(payload, "number"),
            url=field(payload, "html_url"),
            state=state,
            head=field(payload, "head", "ref"),
            base=field(payload, "base", "ref"),
            title=field(payload, "title"),
        )

    def open(self, head: str, base: str, title: str, body: str) -> PullRequest:
        payload = {"title": title, "head": head, "base": base, "body": body}
        return self._create(self._pulls, payload, head, base)

    def close(self, number: int, comment: str | None = None) -> PullRequest:
        if comment:
            self._request("POST", f"{self._issues}/{number}/comments", json={"body": comment})
        return self._one(self._request("PATCH", self._item(number), json={"state": "closed"}))


def _pairs(
    params: Mapping[str, str | int] | Sequence[tuple[str, str | int]] | None,
) -> list[tuple[str, str | int]]:
    """Query parameters as pairs (a name may repeat: Bitbucket's ``state``)."""
    if params is None:
        return []
    return list(params.items()) if isinstance(params, Mapping) else list(params)


def basic_auth(username: str, secret: str) -> dict[str, str]:
    """An HTTP Basic ``Authorization`` header."""
    pair = base64.b64encode(f"{username}:{secret}".encode()).decode("ascii")
    return {"Authorization": f"Basic {pair}"}
