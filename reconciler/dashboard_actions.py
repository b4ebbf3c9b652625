"""The dashboard's one action, "propose promotion": who may, and CSRF protection.

The action opens the pull request that ``promotion: pull-request`` opens (the merge
stays the approval; ``reconcile.proposals`` does the work). It is on only where a Git
host token is configured and a way to authenticate is:

* **token**: the webhooks' secret scheme, endpoint ``dashboard``
  (``RECONCILER_WEBHOOK_SECRET_DASHBOARD[_FILE]``, else ``RECONCILER_WEBHOOK_SECRET[_FILE]``).
  A script sends ``Authorization: Bearer <secret>``; a browser signs in once with the
  secret at ``/login`` and gets a session cookie (an HMAC of its issue time keyed with
  the secret: rotating the secret ends every session; 12 hours at most).
* **proxy**: ``RECONCILER_DASHBOARD_USER_HEADER`` names the header an auth proxy in
  front (oauth2-proxy: ``X-Forwarded-Email``) sets to the signed-in user. Only for a
  sidecar the proxy alone can reach (listen on 127.0.0.1 in the pod).

Ambient credentials (the session cookie, a proxy's cookie) need CSRF protection: every
form carries a token bound to the browser's ``reconciler_csrf`` cookie (an HMAC keyed
with a per-process secret), and a request whose ``Origin`` (or ``Referer``) is not the
dashboard's own is refused. Cookies are ``HttpOnly; SameSite=Strict``. A bearer token is
never sent by a browser on its own, so bearer requests need no CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "CSRF_COOKIE",
    "SESSION_COOKIE",
    "ActionAuth",
    "ActionRefused",
    "Actions",
    "Proposal",
    "actions_for",
    "cookie_header",
    "form_fields",
    "proposal_outcome",
    "read_cookies",
]

CSRF_COOKIE = "reconciler_csrf"
SESSION_COOKIE = "reconciler_session"
SESSION_SECONDS = 12 * 3600
MAX_FAILED_SECRETS = 10
"""Wrong secrets (sign-in or bearer) one client address may send per
``FAILURE_WINDOW`` seconds before it gets 429 without its guess being checked."""
FAILURE_WINDOW = 60.0
_MAX_CLIENTS_REMEMBERED = 10_000
BEARER_WRONG = "bearer token wrong"
USER_HEADER_ENV = "RECONCILER_DASHBOARD_USER_HEADER"
ORIGIN_ENV = "RECONCILER_DASHBOARD_ORIGIN"


class ActionRefused(Exception):
    """An action request refused: ``status`` 401 (who?), 403 (CSRF), 404, 409 ..."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


@dataclass(frozen=True)
class Proposal:
    """What the action did: the pull request's number and web page, or why not."""

    opened: bool
    message: str
    url: str | None = None


@dataclass(frozen=True)
class Actions:
    """The dashboard's actions as the server sees them: who may act, and the proposal
    itself (``propose(project, environment, release, by)``, run under the pass lock)."""

    auth: ActionAuth
    propose: Callable[[str, str, str, str], Proposal]


def _sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def read_cookies(header: str | None) -> dict[str, str]:
    """The request's cookies (a malformed header: none)."""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header or "")
    except CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def cookie_header(name: str, value: str, *, secure: bool, max_age: int | None = None) -> str:
    """A ``Set-Cookie`` value: HttpOnly, SameSite=Strict, the whole site."""
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


@dataclass
class ActionAuth:
    """Who may act, and the CSRF tokens of the forms. ``secret``: read per request
    (rotations apply at once); ``user_header``: the auth proxy's header, lower-case."""

    secret: Callable[[], str | None]
    user_header: str | None = None
    origin: str | None = None  # the dashboard's public origin, when a proxy rewrites Host
    clock: Callable[[], float] = time.time
    _csrf_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _failures: dict[str, list[float]] = field(default_factory=dict)
    _failures_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str], secret: Callable[[], str | None]
    ) -> ActionAuth | None:
        """The configured authentication, or None when there is none (the action is off)."""
        header = environ.get(USER_HEADER_ENV, "").strip().lower() or None
        if header is None and secret() is None:
            return None
        return cls(secret, header, environ.get(ORIGIN_ENV, "").strip().rstrip("/") or None)

    # -- CSRF --------------------------------------------------------------------------

    def csrf_token(self, cookie: str) -> str:
        """The token a form carries for a browser whose CSRF cookie is ``cookie``."""
        return _sign(self._csrf_key, "csrf:" + cookie)

    @staticmethod
    def new_csrf_cookie() -> str:
        return secrets.token_hex(16)

    def check_csrf(self, cookies: Mapping[str, str], given: str) -> None:
        cookie = cookies.get(CSRF_COOKIE, "")
        expected = self.csrf_token(cookie)
        if not cookie or not hmac.compare_digest(given.encode(), expected.encode()):
            raise ActionRefused(403, "CSRF token missing or wrong: reload the page and retry")

    def check_origin(self, headers: Mapping[str, str]) -> None:
        """Refuse a request a browser sent from another site (``headers`` lower-case)."""
        seen = headers.get("origin") or headers.get("referer")
        if not seen:
            return  # not a browser's cross-site request (browsers send Origin with POST)
        parts = urlsplit(seen)
        came_from = f"{parts.scheme}://{parts.netloc}" if parts.scheme else seen
        proto = headers.get("x-forwarded-proto", "http").split(",")[0].strip()
        expected = self.origin or f"{proto}://{headers.get('host', '')}"
        if came_from != expected:
            raise ActionRefused(403, f"request from another origin ({came_from}) refused")

    # -- who -----------------------------------------------------------------------------

    def session_cookie(self) -> str | None:
        """A new session (after a sign-in with the secret); None without a secret."""
        secret = self.secret()
        if secret is None:
            return None
        issued = str(int(self.clock()))
        return f"{issued}.{_sign(secret.encode(), 'session:' + issued)}"

    def _session_valid(self, value: str) -> bool:
        secret = self.secret()
        issued, _, signature = value.partition(".")
        # ASCII and short: '²'.isdigit() is true but int() refuses it, as it does 4,301 digits
        if secret is None or not (issued.isascii() and issued.isdigit() and len(issued) <= 12):
            return False
        expected = _sign(secret.encode(), "session:" + issued)
        fresh = 0 <= self.clock() - int(issued) <= SESSION_SECONDS
        return hmac.compare_digest(signature.encode(), expected.encode()) and fresh

    def throttle(self, client: str) -> None:
        """429 for a client that sent ``MAX_FAILED_SECRETS`` wrong secrets within the
        last ``FAILURE_WINDOW`` seconds: guessing the secret stays slow."""
        now = self.clock()
        with self._failures_lock:
            recent = [t for t in self._failures.get(client, ()) if now - t < FAILURE_WINDOW]
            if recent:
                self._failures[client] = recent
            else:
                self._failures.pop(client, None)
            if len(recent) >= MAX_FAILED_SECRETS:
                wait = int(FAILURE_WINDOW - (now - recent[0])) + 1
                raise ActionRefused(429, f"too many wrong secrets; try again in {wait} s")

    def note_failure(self, client: str) -> None:
        with self._failures_lock:
            if len(self._failures) >= _MAX_CLIENTS_REMEMBERED and client not in self._failures:
                self._failures.pop(next(iter(self._failures)))  # the oldest client
            self._failures.setdefault(client, []).append(self.clock())

    def check_secret(self, given: str) -> bool:
        secret = self.secret()
        # Compare even without a secret, so timing does not tell which case it was.
        same = hmac.compare_digest(given.encode(), (secret or "\0").encode())
        return same and secret is not None and bool(given)

    def who(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> tuple[str, bool]:
        """``(user, ambient)``: who sends the request, and whether the browser attached
        the credential by itself (a cookie or a proxy's; then CSRF checks apply).
        Raises 401 when nobody is signed in."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            if self.check_secret(token.strip()):
                return "dashboard token", False
            raise ActionRefused(401, BEARER_WRONG)
        if self.user_header is not None:
            user = headers.get(self.user_header, "").strip()
            if user:
                return user, True
        session = cookies.get(SESSION_COOKIE)
        if session and self._session_valid(session):
            return "dashboard session", True
        raise ActionRefused(401, "sign in first")


def form_fields(
    body: bytes, names: tuple[str, ...], optional: tuple[str, ...] = ()
) -> dict[str, str]:
    """The form's ``names`` and, when given, ``optional`` fields
    (application/x-www-form-urlencoded; a field given twice, or missing when required,
    is an error)."""
    from urllib.parse import parse_qs

    try:
        parsed: dict[str, Any] = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise ActionRefused(400, "form is not UTF-8") from None
    fields = {}
    for name in (*names, *optional):
        values = parsed.get(name, [])
        if len(values) > 1 or (not values and name in names):
            raise ActionRefused(400, f"form field {name!r} missing or repeated")
        if values:
            fields[name] = values[0]
    return fields


def proposal_outcome(result: Any) -> Proposal:
    """What ``Reconciler.propose_promotion``'s PassResult says happened."""
    for opened in result.pull_requests:
        if opened.get("action") == "opened":
            url = str(opened.get("url") or "")  # the host's answer: only a web page is linked
            web = url if url.startswith(("https://", "http://")) else None
            return Proposal(True, f"pull request #{opened['number']} opened", web)
    if result.git_error:
        return Proposal(False, str(result.git_error))
    for _, _, reason in result.waiting:  # kept open, or closed without merging earlier
        return Proposal("waiting for" in reason, str(reason))
    return Proposal(False, "the release has no record")


def actions_for(
    reconciler: Any, secret: Callable[[], str | None], environ: Mapping[str, str]
) -> Actions | None:
    """The dashboard's actions for a ``reconcile.Reconciler``, or None (read-only) when no
    Git host token or no authentication is configured."""
    if not reconciler.can_open_pull_requests():
        return None
    auth = ActionAuth.from_environment(environ, secret)
    if auth is None:
        return None

    def propose(project: str, environment: str, release: str, by: str) -> Proposal:
        return proposal_outcome(reconciler.propose_promotion(project, environment, release, by=by))

    return Actions(auth, propose)
