"""HTTP endpoints of the sidecar: webhooks, /healthz, /readyz, /metrics.

Webhook handlers do the minimum on the request thread (size check, read,
authenticate, parse) and hand events to ``on_event``, which should only put
them on the loop's queue: senders such as GitHub give up after 10 s, and the
poll they trigger can take longer than that.

Routes:

    POST /hooks/<endpoint>            registry or Git-host webhook (see webhooks.py)
    POST /hooks/dockerhub/<token>     Docker Hub: the secret is the last path segment
    GET  /healthz                     200 while the process serves requests
    GET  /readyz                      200 when a pass succeeded recently and the
                                      config repo was reachable, else 503 + reason
    GET  /metrics                     Prometheus text exposition
    GET  /                            the dashboard (run mode), read-only, from the last pass;
                                      also /releases/…, /environments/…, /feeds
    GET  /events                      Server-Sent Events: one message per finished pass
    POST /propose, /login             the dashboard's "propose promotion" (when configured;
                                      see dashboard_actions.py)
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from reconciler.dashboard import Dashboard
from reconciler.dashboard_actions import (
    BEARER_WRONG,
    CSRF_COOKIE,
    SESSION_COOKIE,
    ActionRefused,
    Actions,
    cookie_header,
    form_fields,
    read_cookies,
)
from reconciler.errors import WebhookRejected
from reconciler.logs import register_secret
from reconciler.metrics import Metrics
from reconciler.pubsubpush import AUDIENCE_VAR, EMAIL_VAR, PushTokenRules, PushTokenVerifier
from reconciler.webhooks import (
    PATH_TOKEN_ENDPOINTS,
    ReplayGuard,
    WebhookEvent,
    normalize_endpoint,
)
from reconciler.webhooks import receive as receive_webhook

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 1024 * 1024  # 1 MiB: registry and push payloads are a few KiB
# After refusing an oversized body we still read (and discard) up to this much,
# so the client sees our 413 instead of a connection reset.
_DRAIN_LIMIT = 8 * 1024 * 1024
_DRAIN_SECONDS = 2.0  # ... but for no longer than this, so a trickling client cannot hold a thread
_REQUEST_TIMEOUT = 10.0  # seconds per socket operation; stops slow clients holding threads
_STREAM_SECONDS = 600.0  # an event stream ends after this; EventSource reconnects by itself
_STREAM_KEEPALIVE = 15.0  # seconds between comments on an idle event stream
_MAX_STREAMS = 32  # concurrent event streams (each holds a thread)
_MAX_FORM = 16 * 1024  # a dashboard form: a few short fields


class Health:
    """Liveness/readiness state, updated by the loop after every pass. Thread-safe.

    Ready means: a pass succeeded within ``max_age`` seconds (normally a few
    poll intervals) and the last pass could reach the config repository.
    """

    def __init__(self, *, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._last_success: float | None = None
        self._repo_reachable = True
        self._last_problem = "no successful pass yet"

    def record_pass(self, *, ok: bool, repo_reachable: bool = True, problem: str = "") -> None:
        """Note the result of a pass; ``problem`` explains a failure in /readyz."""
        with self._lock:
            self._repo_reachable = repo_reachable
            if ok:
                self._last_success = self._clock()
            else:
                self._last_problem = problem or "last pass failed"

    def readiness(self) -> tuple[bool, str]:
        """``(ready, reason)``; the reason is shown in the /readyz body."""
        with self._lock:
            if not self._repo_reachable:
                return False, f"config repository unreachable: {self._last_problem}"
            if self._last_success is None:
                return False, self._last_problem
            age = self._clock() - self._last_success
            if age > self.max_age:
                return False, (
                    f"last successful pass {age:.0f}s ago (limit {self.max_age:.0f}s): "
                    f"{self._last_problem}"
                )
            return True, f"last successful pass {age:.0f}s ago"


def _read_secret_file(path: str) -> str | None:
    try:
        # Secret files from Kubernetes or editors often end with a newline.
        return Path(path).read_text(encoding="utf-8").strip("\r\n") or None
    except OSError as exc:
        log.warning("cannot read webhook secret file %s: %s", path, exc.strerror)
        return None


@dataclass(frozen=True)
class WebhookSecrets:
    """Where webhook secrets come from; read on every request so rotations apply at once.

    For endpoint ``github`` the lookup order is ``RECONCILER_WEBHOOK_SECRET_GITHUB``,
    ``RECONCILER_WEBHOOK_SECRET_GITHUB_FILE``, ``RECONCILER_WEBHOOK_SECRET``,
    ``RECONCILER_WEBHOOK_SECRET_FILE``. An endpoint without a secret is disabled
    (404): webhooks are never accepted unauthenticated. ``artifactregistry`` may
    instead be authenticated by Pub/Sub's push token (reconciler.pubsubpush), whose
    rules are read from the same ``environ``.
    """

    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    prefix: str = "RECONCILER_WEBHOOK_SECRET"

    def secret_for(self, endpoint: str) -> str | None:
        for name in (f"{self.prefix}_{endpoint.upper()}", self.prefix):
            value = self.environ.get(name)
            if value:
                register_secret(value)
                return value
            path = self.environ.get(f"{name}_FILE")
            if path:
                value = _read_secret_file(path)
                if value:
                    register_secret(value)
                    return value
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    app: ReconcilerServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log a request's failure through logging, never as plain text on stderr.

        socketserver's default prints a traceback to stderr, where the sidecar's JSON
        log goes. A client that disconnects or times out is routine (debug); anything
        else is a bug, logged with its traceback inside one JSON record.
        """
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            log.debug("client went away: %s %s", client_address[0], type(error).__name__)
        else:
            log.exception("request from %s failed", client_address[0])


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = _REQUEST_TIMEOUT
    server_version = "reconciler"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, document: Mapping[str, Any]) -> None:
        self._send(status, json.dumps(document).encode() + b"\n", "application/json")

    def _send_text(self, status: int, text: str) -> None:
        self._send(status, text.encode() + b"\n", "text/plain; charset=utf-8")

    def do_GET(self) -> None:
        app = self.server.app
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send_text(200, "ok")
        elif path == "/readyz":
            ready, reason = app.health.readiness() if app.health else (True, "no health state")
            self._send_text(200 if ready else 503, reason)
        elif path == "/metrics" and app.metrics is not None:
            body, content_type = app.metrics.exposition()
            self._send(200, body, content_type)
        elif path == "/events" and app.dashboard is not None:
            self._stream_events(app)
        elif app.dashboard is not None:
            self._dashboard_page(app.dashboard, app.actions, path)
        else:
            self._send_text(404, "not found")

    def _dashboard_page(
        self, dashboard: Dashboard, actions: Actions | None, path: str, status: int = 0,
        **values: Any,
    ) -> None:  # fmt: skip
        """A dashboard page; with actions on, its forms' CSRF token (and cookie)."""
        headers: list[tuple[str, str]] = [("Cache-Control", "no-store")]
        if actions is not None:
            cookie = read_cookies(self.headers.get("Cookie")).get(CSRF_COOKIE)
            if not cookie:
                cookie = actions.auth.new_csrf_cookie()
                headers.append(("Set-Cookie", cookie_header(CSRF_COOKIE, cookie,
                                                            secure=self._secure())))  # fmt: skip
            values["csrf"] = actions.auth.csrf_token(cookie)
            values["login"] = actions.auth.secret() is not None and not self._signed_in(actions)
        page = dashboard.page(path, **values)
        if page is None:
            self._send_text(404, "not found")
            return
        self._send(status or page.status, page.html.encode(), "text/html; charset=utf-8",
                   tuple(headers))  # fmt: skip

    def _secure(self) -> bool:
        """Whether the browser reached us over https (through a proxy that says so)."""
        return self.headers.get("X-Forwarded-Proto", "").split(",")[0].strip() == "https"

    def _lower_headers(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers.items()}

    def _signed_in(self, actions: Actions) -> bool:
        try:
            actions.auth.who(self._lower_headers(), read_cookies(self.headers.get("Cookie")))
        except ActionRefused:
            return False
        return True

    def _stream_events(self, app: ReconcilerServer) -> None:
        """Server-Sent Events: one ``data:`` line per finished pass, comments to keep
        the connection open; bounded in number and in length (browsers reconnect)."""
        assert app.dashboard is not None
        if not app.event_streams.acquire(blocking=False):
            self._send_text(503, "too many event streams")
            return
        try:
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            if self.command == "HEAD":
                return
            seen = app.dashboard.version
            deadline = time.monotonic() + _STREAM_SECONDS
            while time.monotonic() < deadline and not app.stopping.is_set():
                version = app.dashboard.wait_for_change(seen, _STREAM_KEEPALIVE)
                line = f"data: {version}\n\n" if version != seen else ": keep-alive\n\n"
                seen = version
                self.wfile.write(line.encode())
                self.wfile.flush()
        finally:
            app.event_streams.release()

    do_HEAD = do_GET

    def do_POST(self) -> None:
        app = self.server.app
        if self.path.split("?", 1)[0] in ("/propose", "/login"):
            self._dashboard_action(app, self.path.split("?", 1)[0])
            return
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if len(parts) not in (2, 3) or parts[0] != "hooks":
            self._send_text(404, "not found")
            return
        # Metric label from a fixed vocabulary: URL paths are attacker-controlled.
        label = parts[1] if parts[1] in app.known_endpoints else "unknown"
        try:
            endpoint = normalize_endpoint(parts[1])
            if len(parts) == 3 and endpoint not in PATH_TOKEN_ENDPOINTS:
                raise WebhookRejected(404, "not found")
            body = self._read_body(app.max_body)
            secret = app.secrets.secret_for(endpoint)
            push_tokens = app.push_tokens() if endpoint == PUBSUB_ENDPOINT else None
            if secret is None and push_tokens is None:
                raise WebhookRejected(404, f"webhook endpoint {endpoint!r} is not enabled")
            if secret is None and push_tokens is not None and push_tokens.rules.email is None:
                # Any Google account can mint a token for any audience: the token alone
                # proves nothing until the pushing service account is pinned too.
                raise WebhookRejected(404, f"webhook endpoint {endpoint!r} is not enabled")
            if push_tokens is not None:
                push_tokens.verify(self.headers.get("Authorization"))
            events, replayed = receive_webhook(
                endpoint,
                dict(self.headers.items()),
                body,
                secret or "",
                path_token=parts[2] if len(parts) == 3 else None,
                replays=app.replays,
                verified=secret is None,
            )
        except WebhookRejected as rejected:
            app.count_webhook(label, _OUTCOME_BY_STATUS.get(rejected.status, "malformed"))
            log.info("webhook %s rejected: %s", label, rejected.message)
            self._send_json(rejected.status, {"error": rejected.message})
            return
        for event in events:
            app.on_event(event)
        outcome = "accepted" if events else ("replayed" if replayed else "ignored")
        app.count_webhook(label, outcome)
        log.debug("webhook %s: %d event(s), %d replayed", label, len(events), replayed)
        self._send_json(202, {"accepted": len(events), "replayed": replayed})

    def _dashboard_action(self, app: ReconcilerServer, path: str) -> None:
        """``POST /login`` (the secret, for a session cookie) and ``POST /propose``:
        authenticated (401), CSRF-checked for ambient credentials (403), and only for a
        cell the last pass left waiting for a manual promotion (409)."""
        actions, dashboard = app.actions, app.dashboard
        if actions is None or dashboard is None:
            self._send_text(404, "dashboard actions are off")
            return
        auth = actions.auth
        headers = self._lower_headers()
        cookies = read_cookies(headers.get("cookie"))
        try:
            try:
                body = self._read_body(_MAX_FORM)
            except WebhookRejected as rejected:
                raise ActionRefused(rejected.status, rejected.message) from None
            client = str(self.client_address[0])
            auth.throttle(client)
            if path == "/login":
                fields = form_fields(body, ("token",), ("csrf",))
                auth.check_origin(headers)
                auth.check_csrf(cookies, fields.get("csrf", ""))
                session = auth.session_cookie()
                if session is None or not auth.check_secret(fields["token"]):
                    auth.note_failure(client)
                    raise ActionRefused(401, "token wrong")
                cookie = cookie_header(SESSION_COOKIE, session, secure=self._secure(),
                                       max_age=12 * 3600)  # fmt: skip
                self._send(303, b"", "text/plain", (("Location", "/"), ("Set-Cookie", cookie)))
                return
            fields = form_fields(body, ("project", "environment", "release"), ("csrf",))
            try:
                who, ambient = auth.who(headers, cookies)
            except ActionRefused as refused:
                if refused.message == BEARER_WRONG:
                    auth.note_failure(client)
                raise
            if ambient:
                auth.check_origin(headers)
                auth.check_csrf(cookies, fields.get("csrf", ""))
            project, environment, release = (fields["project"], fields["environment"],
                                             fields["release"])  # fmt: skip
            if dashboard.proposable(project, environment) != release:
                raise ActionRefused(409, f"{project}/{environment} is not waiting for a "
                                    f"manual promotion of {release}")  # fmt: skip
        except ActionRefused as refused:
            log.info("dashboard %s refused: %s", path, refused.message)
            self._dashboard_page(dashboard, actions, "/", refused.status,
                                 refused=refused.message)  # fmt: skip
            return
        log.info("dashboard: %s proposes %s %s to %s", who, project, release, environment)
        outcome = actions.propose(project, environment, release, who)
        if outcome.opened:
            dashboard.note_proposal(project, environment, outcome.message)
        self._dashboard_page(dashboard, actions, "/", 201 if outcome.opened else 502,
                             proposed=outcome)  # fmt: skip

    def _read_body(self, limit: int) -> bytes:
        length_header = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise WebhookRejected(411, "chunked bodies are not supported; send Content-Length")
        if length_header is None:
            self.close_connection = True
            raise WebhookRejected(411, "Content-Length required")
        try:
            length = int(length_header)
        except ValueError:
            self.close_connection = True
            raise WebhookRejected(400, "bad Content-Length") from None
        if length < 0:
            self.close_connection = True
            raise WebhookRejected(400, "bad Content-Length")
        if length > limit:
            self.close_connection = True
            self._discard(length)
            raise WebhookRejected(413, f"body of {length} bytes exceeds the {limit}-byte limit")
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            raise WebhookRejected(400, "body shorter than Content-Length")
        return body

    def _discard(self, length: int) -> None:
        """Read and drop part of an oversized body (bounded) so the client gets our answer."""
        remaining = min(length, _DRAIN_LIMIT)
        deadline = time.monotonic() + _DRAIN_SECONDS
        self.connection.settimeout(1.0)
        try:
            while remaining > 0 and time.monotonic() < deadline:
                chunk = self.rfile.read1(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass


PUBSUB_ENDPOINT = "artifactregistry"
"""Artifact Registry notifications arrive through Pub/Sub push, which can sign them."""

_OUTCOME_BY_STATUS = {401: "unauthorized", 413: "too-large", 400: "malformed", 411: "malformed"}


class ReconcilerServer:
    """The sidecar's HTTP server, serving on a background thread.

    ``address`` is ``(host, port)``; port 0 picks a free port (see :attr:`port`).
    """

    known_endpoints = (
        "quay",
        "acr",
        "artifactregistry",
        "ecr",
        "artifactory",
        "gitlab-registry",
        "argocd",
        "flux",
        "distribution",
        "registry",
        "dockerhub",
        "github",
        "harbor",
        "gitlab",
        "gitea",
    )

    def __init__(
        self,
        address: tuple[str, int],
        *,
        on_event: Callable[[WebhookEvent], None],
        secrets: WebhookSecrets | None = None,
        health: Health | None = None,
        metrics: Metrics | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        replays: ReplayGuard | None = None,
        dashboard: Dashboard | None = None,
        actions: Actions | None = None,
    ) -> None:
        self.on_event = on_event
        self.dashboard = dashboard  # None: no dashboard at /
        self.actions = actions  # None: the dashboard is read-only
        self.event_streams = threading.BoundedSemaphore(_MAX_STREAMS)
        self.stopping = threading.Event()
        self.secrets = secrets if secrets is not None else WebhookSecrets()
        self.health = health
        self.metrics = metrics
        self.max_body = max_body
        self.replays = replays if replays is not None else ReplayGuard()
        self._push: PushTokenVerifier | None = None
        self._push_lock = threading.Lock()
        server_class = _Server6 if ":" in address[0] else _Server  # IPv6 literal
        self._httpd = server_class(address, _Handler)
        self._httpd.app = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._httpd.server_address[0])
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def push_tokens(self) -> PushTokenVerifier | None:
        """The Pub/Sub push-token verifier for the operator's current rules (read from
        the same environment as the secrets), or None when not enabled. One verifier
        per set of rules, so its signing keys stay cached between deliveries."""
        rules = PushTokenRules.from_env(self.secrets.environ)
        with self._push_lock:
            if rules is None:
                self._push = None
            elif self._push is None or self._push.rules != rules:
                self._push = PushTokenVerifier(rules)
            return self._push

    def count_webhook(self, source: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.webhook_events.labels(source=source, outcome=outcome).inc()

    def start(self) -> None:
        """Serve on a daemon thread until :meth:`close`."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="reconciler-http",
            daemon=True,
        )
        self._thread.start()
        log.info("listening on %s", self.url)
        self._warn_of_a_reachable_proxy_header()
        self._warn_of_an_unpinned_push_audience()

    def _warn_of_an_unpinned_push_audience(self) -> None:
        """An audience without the pushing account (and no path secret) leaves the
        Pub/Sub endpoint off: say why, rather than 404 every delivery silently."""
        rules = PushTokenRules.from_env(self.secrets.environ)
        unpinned = rules is not None and rules.email is None
        if unpinned and self.secrets.secret_for(PUBSUB_ENDPOINT) is None:
            log.warning(
                "%s is set without %s: /hooks/%s stays off, since any Google account "
                "can mint a token for an audience; set the service account the "
                "subscription pushes as (or also a path secret)",
                AUDIENCE_VAR,
                EMAIL_VAR,
                PUBSUB_ENDPOINT,
            )

    def _warn_of_a_reachable_proxy_header(self) -> None:
        """The auth-proxy mode believes a header anyone could send: say so when the
        socket is reachable from other hosts. Not refused: an oauth2-proxy in another
        pod, with a NetworkPolicy letting only it in, is a sound setup."""
        header = self.actions.auth.user_header if self.actions is not None else None
        host = str(self._httpd.server_address[0])
        if header is not None and not ipaddress.ip_address(host).is_loopback:
            log.warning(
                "dashboard actions trust the %s header from any client that reaches %s: "
                "listen on 127.0.0.1 behind the auth proxy, or let only the proxy reach "
                "this port (a NetworkPolicy)",
                header,
                self.url,
            )

    def close(self) -> None:
        """Stop accepting requests and release the socket."""
        self.stopping.set()  # event streams end within a keep-alive period
        if self.dashboard is not None:
            self.dashboard.update(self.dashboard.snapshot)  # ... or at once
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> ReconcilerServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
