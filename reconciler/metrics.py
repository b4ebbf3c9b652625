"""Prometheus metrics of the reconciler, kept in one dedicated registry.

A dedicated :class:`CollectorRegistry` (not the process-global default) lets
tests create as many :class:`Metrics` as they like, and keeps /metrics free of
anything a library registers globally.

/metrics also carries ``reconciler_build_info`` and the standard process, Python
platform and GC metrics (``process_*``, ``python_*``) that dashboards and alerts
expect, and no ``*_created`` series: they double the series count of every
counter and histogram for a start time that ``process_start_time_seconds`` gives.

Label values are bounded by the config (feed, project, channel, environment
names) or by small fixed vocabularies (outcome, kind, status class); never put
tags, digests or error messages in labels.
"""

from __future__ import annotations

import platform
import time

import httpx
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from reconciler import __version__

disable_created_metrics()  # type: ignore[no-untyped-call]

# Passes range from milliseconds (nothing changed, webhook-scoped) to minutes
# (thousands of tags behind a slow registry).
_PASS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """Every metric object, registered in ``self.registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        reg = self.registry
        # The library's standard collectors, shared by every registry that wants them.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            reg.register(collector)
        self.build_info = Gauge(
            "reconciler_build_info",
            "Always 1; the labels say which reconciler and Python are running.",
            ["version", "python_version"],
            registry=reg,
        )
        self.build_info.labels(version=__version__, python_version=platform.python_version()).set(1)
        self.pass_duration = Histogram(
            "reconciler_pass_duration_seconds",
            "Wall time of one reconcile pass.",
            buckets=_PASS_BUCKETS,
            registry=reg,
        )
        self.passes = Counter(
            "reconciler_passes",
            "Reconcile passes by outcome (ok, partial: some feeds failed, failed, crashed).",
            ["outcome"],
            registry=reg,
        )
        self.feed_requests = Counter(
            "reconciler_feed_requests",
            "HTTP requests to feeds by feed, request kind (tags, manifest, blob, token, index)"
            " and status code.",
            ["feed", "kind", "status"],
            registry=reg,
        )
        self.feed_errors = Counter(
            "reconciler_feed_errors",
            "Feed polls that failed, by feed and error class.",
            ["feed", "error"],
            registry=reg,
        )
        self.feed_request_duration = Histogram(
            "reconciler_feed_request_duration_seconds",
            "Latency of HTTP requests to feeds.",
            ["feed", "kind"],
            buckets=_REQUEST_BUCKETS,
            registry=reg,
        )
        self.releases_created = Counter(
            "reconciler_releases_created",
            "Releases created, by project and channel.",
            ["project", "channel"],
            registry=reg,
        )
        self.promotions = Counter(
            "reconciler_promotions",
            "Releases promoted into an environment, by project and environment.",
            ["project", "environment"],
            registry=reg,
        )
        self.last_success = Gauge(
            "reconciler_last_successful_pass_timestamp_seconds",
            "Unix time at which the last successful pass finished.",
            registry=reg,
        )
        self.verifications = Counter(
            "reconciler_verifications",
            "Verification verdicts on deployments (verified, failed), by project and environment.",
            ["result", "project", "environment"],
            registry=reg,
        )
        self.git_push_retries = Counter(
            "reconciler_git_push_retries",
            "Pushes retried after the remote rejected them as non-fast-forward.",
            registry=reg,
        )
        self.signature_refusals = Counter(
            "reconciler_signature_refusals",
            "Versions the signature gate refused, counted at each pass that judged them,"
            " by project, package and refusal kind (unsigned, invalid, no-matching-key,"
            " digest-mismatch).",
            ["project", "package", "reason"],
            registry=reg,
        )
        self.webhook_events = Counter(
            "reconciler_webhook_events",
            "Webhook deliveries by endpoint and outcome.",
            ["source", "outcome"],
            registry=reg,
        )

    def observe_feed_request(self, feed: str, kind: str, status: int | str, seconds: float) -> None:
        """Count one feed HTTP request and record its latency (``status`` may be "error")."""
        self.feed_requests.labels(feed=feed, kind=kind, status=str(status)).inc()
        self.feed_request_duration.labels(feed=feed, kind=kind).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition of every metric and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def request_kind(path: str) -> str:
    """A low-cardinality label for a feed request path."""
    if path.endswith("/tags/list"):
        return "tags"
    if "/manifests/" in path:
        return "manifest"
    if "/blobs/" in path:
        return "blob"
    if path.endswith("index.yaml"):
        return "index"
    if path.rstrip("/").endswith("/v2"):
        return "ping"
    return "token"


class InstrumentedTransport(httpx.BaseTransport):
    """Wraps a feed's transport to count requests, errors and latency per feed."""

    def __init__(self, inner: httpx.BaseTransport, metrics: Metrics, feed: str) -> None:
        self.inner = inner
        self.metrics = metrics
        self.feed = feed

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        kind = request_kind(request.url.path)
        started = time.monotonic()
        try:
            response = self.inner.handle_request(request)
        except httpx.TransportError as exc:
            self.metrics.observe_feed_request(
                self.feed, kind, type(exc).__name__, time.monotonic() - started
            )
            raise
        self.metrics.observe_feed_request(
            self.feed, kind, response.status_code, time.monotonic() - started
        )
        return response

    def close(self) -> None:
        self.inner.close()
