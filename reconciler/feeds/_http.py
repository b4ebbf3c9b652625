"""Pieces every HTTP feed client shares (OCI registries and Helm repositories).

Error text, the once-per-feed insecure warning, ``Retry-After`` arithmetic and RFC 3339
creation times. No client lives here, so the clients and ``reconciler.feeds`` (which
picks one) import this module without importing each other.
"""

from __future__ import annotations

import email.utils
import logging
import threading
from datetime import UTC, datetime

import httpx

from reconciler.logs import scrub
from reconciler.model import Feed

__all__ = ["http_error_text", "parse_created", "parse_retry_after", "warn_if_insecure"]

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
