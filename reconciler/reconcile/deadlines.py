"""Retry-After arithmetic, pure: which deadlines a pass keeps, how a new Retry-After
moves one, and the error a feed gets before its deadline (no request is sent)."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from reconciler.errors import FeedRateLimited

__all__ = ["MAX_RETRY_AFTER", "kept_deadline", "live_deadlines", "rate_limited"]

MAX_RETRY_AFTER = 3600.0
"""A registry's Retry-After is honoured up to an hour (as by the sidecar's backoff):
one bad header must not park a feed for days, across restarts least of all."""


def live_deadlines(
    deadlines: Mapping[str, float], now: float, feeds: Collection[str]
) -> dict[str, float]:
    """The Retry-After deadlines still to keep: not passed, for a feed that exists, and
    not further than any deadline is stored (further: the wall clock was set back)."""
    return {
        feed: deadline
        for feed, deadline in deadlines.items()
        if now < deadline <= now + MAX_RETRY_AFTER and feed in feeds
    }


def kept_deadline(
    deadlines: Mapping[str, float], feed: str, now: float, retry_after: float
) -> float:
    """The feed's deadline after a Retry-After of ``retry_after`` seconds at ``now``:
    capped at ``MAX_RETRY_AFTER``, and never earlier than the one already kept."""
    return max(deadlines.get(feed, 0.0), now + min(retry_after, MAX_RETRY_AFTER))


def rate_limited(feed: str, deadline: float, now: float) -> FeedRateLimited:
    """The error a feed gets, without a request, before its Retry-After deadline."""
    remaining = deadline - now
    return FeedRateLimited(
        feed,
        f"rate limited by the registry; next request allowed in {remaining:.0f} s",
        retry_after=remaining,
    )
