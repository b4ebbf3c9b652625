"""Retry-After arithmetic (reconcile/deadlines.py), pure: which deadlines a pass keeps,
how a new Retry-After moves one, and the error a feed gets before its deadline."""

from __future__ import annotations

from reconciler.errors import FeedRateLimited
from reconciler.reconcile.deadlines import (
    MAX_RETRY_AFTER,
    kept_deadline,
    live_deadlines,
    rate_limited,
)

NOW = 1_000_000.0


def test_live_deadlines_drop_passed_unknown_and_impossibly_far_ones() -> None:
    deadlines = {
        "waiting": NOW + 60,
        "passed": NOW - 1,
        "now": NOW,
        "gone": NOW + 60,  # the feed is no longer in the config
        "clock-set-back": NOW + MAX_RETRY_AFTER + 1,
        "at-the-cap": NOW + MAX_RETRY_AFTER,
    }
    feeds = {"waiting", "passed", "now", "clock-set-back", "at-the-cap"}
    assert live_deadlines(deadlines, NOW, feeds) == {
        "waiting": NOW + 60,
        "at-the-cap": NOW + MAX_RETRY_AFTER,
    }


def test_a_retry_after_is_capped_and_never_shortens_a_kept_deadline() -> None:
    assert kept_deadline({}, "reg", NOW, 120) == NOW + 120
    assert kept_deadline({}, "reg", NOW, 99_999_999) == NOW + MAX_RETRY_AFTER
    assert kept_deadline({"reg": NOW + 600}, "reg", NOW, 5) == NOW + 600
    assert kept_deadline({"reg": NOW + 5}, "reg", NOW, 600) == NOW + 600


def test_before_the_deadline_a_feed_is_rate_limited_without_a_request() -> None:
    error = rate_limited("reg", NOW + 90.4, NOW)
    assert isinstance(error, FeedRateLimited)
    assert error.retry_after == 90.4 or abs(error.retry_after - 90.4) < 1e-6
    assert "next request allowed in 90 s" in error.message
