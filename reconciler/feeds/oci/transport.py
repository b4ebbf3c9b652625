"""One OCI feed's HTTP side: the connection pool, its limits, and error mapping.

``Transport`` bounds in-flight requests by ``feed.limits.concurrency``, paces them by
``requests_per_second``, and after a 429 (or a 503 with ``Retry-After``) refuses every
request to the registry until the deadline: callers get ``FeedRateLimited`` at once
instead of a sleeping thread. Bodies are read against a byte budget. Every failure is a
``FeedError`` subclass naming the feed; messages never carry credentials.
"""

from __future__ import annotations

import importlib.util
import json
import re
import ssl
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from reconciler import model
from reconciler.errors import FeedAuthError, FeedError, FeedNotFound, FeedRateLimited
from reconciler.feeds._http import http_error_text, parse_retry_after

__all__ = [
    "MAX_BODY_BYTES",
    "TRANSIENT_RETRY_AFTER",
    "Response",
    "TokenBucket",
    "Transport",
    "content_media_type",
    "next_link",
]

MAX_BODY_BYTES = 20 * 1024 * 1024
"""Budget for one tag listing (all pages together) or one manifest/config body."""
TRANSIENT_RETRY_AFTER = 30.0
"""Suggested retry delay for 5xx, timeouts and malformed answers."""

_LINK_NEXT = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")


def next_link(header: str | None, request_url: httpx.URL) -> httpx.URL | None:
    """The ``rel="next"`` target of an RFC 5988 ``Link`` header, resolved, else None.

    The URL is used verbatim (relative ones resolved against the request URL): some
    registries put opaque tokens in it, so the query must never be rebuilt.
    """
    if not header:
        return None
    for match in _LINK_NEXT.finditer(header):
        params = match.group(2).lower().replace(" ", "")
        if 'rel="next"' in params or "rel=next" in params:
            return request_url.join(match.group(1).strip())
    return None


def content_media_type(content_type: str | None) -> str:
    """The media type of a ``Content-Type`` value, parameters dropped, lower case."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _is_json_type(media: str) -> bool:
    return media in ("application/json", "text/json") or media.endswith("+json")


class TokenBucket:
    """Paces requests to ``rate`` per second with bursts of up to ``max(1, rate)``."""

    def __init__(
        self, rate: float, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        self._rate = rate
        self._capacity = max(1.0, rate)
        self._tokens = self._capacity
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = threading.Lock()

    def take(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(
                    self._capacity, self._tokens + (now - self._updated) * self._rate
                )
                self._updated = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                wait = (1.0 - self._tokens) / self._rate
            self._sleep(wait)


@dataclass
class Response:
    status: int
    headers: httpx.Headers
    body: bytes
    url: httpx.URL


class Transport:
    """Sends one feed's requests; see the module docstring.

    ``transport`` replaces the network (tests); ``clock`` (monotonic) times deadlines
    and pacing, ``wall_clock`` reads ``Retry-After`` dates, ``sleep`` paces.
    ``requests_made`` and ``requests_by_kind`` count what was sent. ``verify`` is
    ``_http.tls_context``'s answer.
    """

    def __init__(
        self,
        feed: model.Feed,
        *,
        transport: httpx.BaseTransport | None,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
        sleep: Callable[[float], None],
        max_body_bytes: int,
        verify: ssl.SSLContext | bool,
    ) -> None:
        self.feed = feed
        self.max_body = max_body_bytes
        self._clock = clock
        self._wall_clock = wall_clock
        self._slots = threading.BoundedSemaphore(max(1, feed.limits.concurrency))
        rate = feed.limits.requests_per_second
        self._bucket = TokenBucket(rate, clock, sleep) if rate > 0 else None
        self._state_lock = threading.Lock()
        self._blocked_until = 0.0
        self.requests_made = 0
        self.requests_by_kind: Counter[str] = Counter()
        self._http = httpx.Client(
            transport=transport,
            http2=transport is None and importlib.util.find_spec("h2") is not None,
            timeout=httpx.Timeout(feed.timeout),
            verify=verify,
            follow_redirects=True,
            limits=httpx.Limits(
                max_connections=max(1, feed.limits.concurrency),
                max_keepalive_connections=max(1, feed.limits.concurrency),
            ),
            headers={"User-Agent": "reconciler"},
        )

    def close(self) -> None:
        self._http.close()

    def malformed(self, message: str) -> FeedError:
        return FeedError(self.feed.name, message, retry_after=TRANSIENT_RETRY_AFTER)

    def json(self, response: Response, *, what: str, manifest: bool = False) -> Any:
        media = content_media_type(response.headers.get("content-type"))
        if (
            media
            and not _is_json_type(media)
            and not (manifest and media.startswith("application/vnd."))
        ):
            raise self.malformed(f"{what}: expected JSON, got Content-Type {media}")
        try:
            return json.loads(response.body)
        except ValueError:
            raise self.malformed(f"{what}: malformed JSON") from None

    def send(
        self,
        method: str,
        url: httpx.URL,
        *,
        kind: str,
        accept: str,
        authorization: str | None,
        budget: int | None,
        form: dict[str, str] | None = None,
    ) -> Response:
        self._check_deadline()
        headers = {"Accept": accept}
        if authorization is not None:
            headers["Authorization"] = authorization
        limit = self.max_body if budget is None else budget
        with self._slot():
            self._count(kind)
            try:
                # A form carries a secret (a refresh token): never re-sent to wherever
                # a redirect points (httpx drops Authorization on redirects, not bodies).
                with self._http.stream(
                    method, url, headers=headers, data=form, follow_redirects=form is None
                ) as response:
                    body = self._read_limited(response, limit, url)
                    return Response(response.status_code, response.headers, body, response.url)
            except httpx.TimeoutException:
                raise FeedError(
                    self.feed.name,
                    f"{method} {url.path}: timed out after {self.feed.timeout:g} s",
                    retry_after=TRANSIENT_RETRY_AFTER,
                ) from None
            except httpx.HTTPError as exc:
                raise FeedError(
                    self.feed.name,
                    f"{method} {url.path}: {http_error_text(exc)}",
                    retry_after=TRANSIENT_RETRY_AFTER,
                ) from None

    def check_status(self, response: Response) -> Response:
        """``response`` if it is a 2xx; else the FeedError its status means."""
        status = response.status
        if 200 <= status < 300:
            return response
        detail = self._error_detail(response)
        path = response.url.path
        if status == 403:
            raise FeedAuthError(self.feed.name, f"{path}: access denied{detail}", retry_after=600.0)
        if status == 404:
            raise FeedNotFound(self.feed.name, f"{path}: not found{detail}", retry_after=600.0)
        if status == 429 or (status == 503 and "retry-after" in response.headers):
            delay = parse_retry_after(
                response.headers.get("retry-after"), now=self._wall_clock(), default=60.0
            )
            with self._state_lock:
                self._blocked_until = max(self._blocked_until, self._clock() + delay)
            error = FeedRateLimited if status == 429 else FeedError
            raise error(
                self.feed.name,
                f"{path}: HTTP {status}, retry after {delay:.0f} s{detail}",
                retry_after=delay,
            )
        raise FeedError(
            self.feed.name, f"{path}: HTTP {status}{detail}", retry_after=TRANSIENT_RETRY_AFTER
        )

    def _count(self, kind: str) -> None:
        with self._state_lock:
            self.requests_made += 1
            self.requests_by_kind[kind] += 1

    def _check_deadline(self) -> None:
        with self._state_lock:
            remaining = self._blocked_until - self._clock()
        if remaining > 0:
            raise FeedRateLimited(
                self.feed.name,
                f"rate limited by the registry; next request allowed in {remaining:.0f} s",
                retry_after=remaining,
            )

    @contextmanager
    def _slot(self) -> Iterator[None]:
        with self._slots:
            if self._bucket is not None:
                self._bucket.take()
            yield

    def _read_limited(self, response: httpx.Response, limit: int, url: httpx.URL) -> bytes:
        too_big = FeedError(
            self.feed.name,
            f"{url.path}: response larger than {limit} bytes refused",
            retry_after=3600.0,
        )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit and response.request.method != "HEAD":
            raise too_big
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise too_big
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _error_detail(response: Response) -> str:
        """``: CODE message`` from a distribution error body, if it has one."""
        try:
            errors = json.loads(response.body).get("errors")
            first = errors[0]
            text = f"{first.get('code', '')} {first.get('message', '')}".strip()
        except (ValueError, AttributeError, TypeError, IndexError, KeyError):
            return ""
        return f": {text[:200]}" if text else ""
