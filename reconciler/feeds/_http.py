"""Pieces every HTTP feed client shares (OCI registries and Helm repositories).

Error text, the once-per-feed insecure warning, ``Retry-After`` arithmetic and RFC 3339
creation times. No client lives here, so the clients and ``reconciler.feeds`` (which
picks one) import this module without importing each other.
"""

from __future__ import annotations

import email.utils
import logging
import os
import ssl
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import httpx
import truststore

from reconciler.errors import FeedError
from reconciler.feeds.auth import granted_file_problem
from reconciler.grants import feed_host, policy_from_env
from reconciler.logs import scrub
from reconciler.model import Feed

__all__ = [
    "feed_transport",
    "http_error_text",
    "parse_created",
    "parse_retry_after",
    "tls_context",
    "warn_if_insecure",
]

log = logging.getLogger("reconciler.feeds")
_warned_insecure: set[str] = set()
_warned_lock = threading.Lock()


def http_error_text(exc: httpx.HTTPError) -> str:
    """An HTTP failure for an error message: its class and its text (a TLS failure says
    why), scrubbed of URL user info and known secrets before it is shortened, and the
    text left out if it still has an @ in it."""
    detail = scrub(str(exc))
    if not detail or "@" in detail.replace("***@", ""):
        return type(exc).__name__
    return f"{type(exc).__name__}: {detail[:200]}"


def warn_if_insecure(feed: Feed) -> None:
    """Log once per feed (per process) that it allows plain http and unverified TLS."""
    if not feed.insecure:
        return
    with _warned_lock:
        if feed.name in _warned_insecure:
            return
        _warned_insecure.add(feed.name)
    log.warning(
        "feed %s is insecure: plain http and unverified TLS are allowed",
        feed.name,
        extra={"feed": feed.name},
    )


def parse_retry_after(value: str | None, *, now: float, default: float) -> float:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or HTTP-date);
    ``now`` is the wall clock (seconds since the epoch), injected by the caller."""
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def parse_created(value: object) -> datetime | None:
    """An RFC 3339 time as an aware UTC datetime; None when absent, null or unusable.

    Go's zero time (year 1) means "not set" in images built by some tools.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if parsed.year <= 1:
        return None
    return parsed.astimezone(UTC)


def tls_context(feed: Feed, env: Mapping[str, str] | None = None) -> ssl.SSLContext | bool:
    """How httpx verifies ``feed``'s server: not at all for ``insecure: true``; else the
    operating system's trust store (truststore: a CA added with update-ca-certificates
    just works), plus the feed's ``tls.caFile``, presenting ``tls.clientCert``/``clientKey``.

    The files must be granted to the feed like credentials (reconciler.grants). Raises
    FeedError naming the file and why, never its contents.
    """
    if feed.insecure:
        return False
    context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls = feed.tls
    if tls is None:
        return context
    policy = policy_from_env(env if env is not None else os.environ)
    host = feed_host(feed.url)
    for key, path in tls.files():
        problem = granted_file_problem(policy, path, host)
        if problem is not None:
            raise FeedError(feed.name, f"tls.{key} refused: {problem}", retry_after=3600.0)
    if tls.ca_file:
        _load(feed, "caFile", tls.ca_file, lambda: context.load_verify_locations(tls.ca_file))
    if tls.client_cert:
        cert, key_file = tls.client_cert, tls.client_key
        _load(feed, "clientCert", cert, lambda: context.load_cert_chain(cert, key_file))
    return context


def _load(feed: Feed, key: str, path: str, load: Callable[[], None]) -> None:
    """Run ``load``; a failure is a FeedError naming ``tls.<key>`` and the file."""
    try:
        load()
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise FeedError(feed.name, f"tls.{key} {path}: {reason}", retry_after=3600.0) from None


def env_proxy(url: str, env: Mapping[str, str]) -> str | None:
    """The proxy ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` (either case) name for
    ``url``, unless ``NO_PROXY`` exempts its host (``*``, the host, or a domain suffix):
    what httpx does for the clients it builds itself."""
    parts = httpx.URL(url)
    proxies = {
        name[: -len("_proxy")].lower(): value
        for name, value in env.items()
        if name.lower().endswith("_proxy") and value
    }
    host = parts.host.lower()
    for entry in proxies.pop("no", "").split(","):
        domain = entry.strip().lower().split(":", 1)[0].lstrip(".")
        if domain == "*" or (domain and (host == domain or host.endswith("." + domain))):
            return None
    return proxies.get(parts.scheme) or proxies.get("all")


def feed_transport(
    feed: Feed, *, concurrency: int, http2: bool, env: Mapping[str, str] | None = None
) -> httpx.HTTPTransport:
    """An httpx transport for ``feed`` with its TLS settings and the environment's proxy,
    for callers that wrap the transport (metrics): httpx ignores both for a transport
    it did not build. A TLS problem is left for the feed's client to report."""
    environ = env if env is not None else os.environ
    try:
        verify = tls_context(feed, environ)
    except FeedError:
        verify = True  # the client's own context fails the same way, per request
    url = (
        feed.url
        if "://" in feed.url and not feed.url.startswith("oci://")
        else "https://" + feed.url.split("://")[-1]
    )
    return httpx.HTTPTransport(
        http2=http2,
        verify=verify,
        proxy=env_proxy(url, environ),
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
    )
