"""OCI distribution client: tags, digests and image creation times (read side only).

One ``RegistryClient`` per feed. It is safe to share between threads: in-flight
requests are bounded by ``feed.limits.concurrency``, optionally paced by
``requests_per_second``, and a 429's ``Retry-After`` blocks every further request
to the registry until the deadline (callers get ``FeedRateLimited`` at once instead
of a sleeping thread).

Frugality: digests come from ``HEAD`` (free on Docker Hub); bearer tokens are
cached per scope and requested up front once the registry's challenge is known;
everything derived from a manifest digest (image config, created time) is cached,
since content addressed data never changes. ``requests_made`` and
``requests_by_kind`` count what was sent, for tests and benchmarks.

Every failure is a ``FeedError`` subclass naming the feed; messages never contain
credentials or ``Authorization`` values.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import importlib.util
import json
import logging
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from reconciler import model
from reconciler.errors import (
    FeedAuthError,
    FeedError,
    FeedNotFound,
    FeedRateLimited,
    PlatformNotFound,
)
from reconciler.feeds import http_error_text, warn_if_insecure
from reconciler.feeds.auth import CredentialResolver, Secret, TokenCache, TokenKey

log = logging.getLogger(__name__)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
IMAGE_MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))
"""Without the full list, distribution 2.x answers 404 for OCI manifests and rewrites
Docker v2 manifests to schema 1 (a different digest)."""

DEFAULT_PLATFORM = "linux/amd64"
DIGEST_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")

MAX_BODY_BYTES = 20 * 1024 * 1024
"""Budget for one tag listing (all pages together) or one manifest/config body."""
MAX_TAG_PAGES = 1000
MAX_INDEX_DEPTH = 3
CACHE_ENTRIES = 4096
TRANSIENT_RETRY_AFTER = 30.0
"""Suggested retry delay for 5xx, timeouts and malformed answers."""


_CHALLENGE_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')
_LINK_NEXT = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` challenge (RFC 6750 §3 syntax)."""

    scheme: str  # lower case: "basic" or "bearer"
    params: Mapping[str, str]

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.params.get("scope", "").split())

    @property
    def error(self) -> str:
        return self.params.get("error", "")


def parse_challenge(header: str) -> Challenge | None:
    """Parse the first challenge of a ``WWW-Authenticate`` value; None if unusable."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params: dict[str, str] = {}
    position = 0
    while position < len(rest):
        match = _CHALLENGE_PARAM.match(rest, position)
        if match is None or match.end() == position:
            break
        quoted, bare = match.group(2), match.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare or ""
        params[match.group(1).lower()] = value
        position = match.end()
    return Challenge(scheme.lower(), params)


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


def parse_retry_after(value: str | None, *, now: float, default: float) -> float:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or HTTP-date)."""
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


def parse_platform(platform: str | None) -> tuple[str, str, str | None]:
    """``"os/arch[/variant]"`` -> (os, arch, variant); default linux/amd64."""
    parts = (platform or DEFAULT_PLATFORM).strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"platform {platform!r} is not os/arch[/variant]")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _is_json_type(media_type: str) -> bool:
    return media_type in ("application/json", "text/json") or media_type.endswith("+json")


class _TokenBucket:
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
class _Response:
    status: int
    headers: httpx.Headers
    body: bytes
    url: httpx.URL


class _LRU:
    """A small thread-safe LRU map for content-addressed results."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            if key not in self._data:
                return None
            self._data.move_to_end(key)
            return self._data[key]

    def __contains__(self, key: Any) -> bool:
        with self._lock:
            return key in self._data

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)


class RegistryClient:
    """Reads one OCI registry feed (``feed.type == "oci"``). See the module docstring.

    ``feed.url`` is ``https://host[:port]`` (``oci://`` and a bare host are read as
    https); a path after the host is a namespace prefixed to every repository.
    ``transport`` replaces the network (tests); ``env`` replaces ``os.environ`` for
    credentials; ``clock``/``wall_clock``/``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        feed: model.Feed,
        *,
        transport: httpx.BaseTransport | None = None,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        token_cache: TokenCache | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.feed = feed
        self._clock = clock
        self._wall_clock = wall_clock
        self._max_body = max_body_bytes
        self._config_error: str | None = None
        self._base, self._prefix = self._parse_url(feed)
        host = self._base.netloc.decode("ascii") if self._base else ""
        self._credentials = CredentialResolver(feed.name, feed.credentials, host, env=env)
        self._tokens = token_cache if token_cache is not None else TokenCache(clock=clock)
        self._slots = threading.BoundedSemaphore(max(1, feed.limits.concurrency))
        rate = feed.limits.requests_per_second
        self._bucket = _TokenBucket(rate, clock, sleep) if rate > 0 else None
        self._state_lock = threading.Lock()
        self._blocked_until = 0.0
        self._challenge: Challenge | None = None  # the registry's last auth challenge
        self._manifests = _LRU(CACHE_ENTRIES)  # digest -> (media type, parsed json)
        self._configs = _LRU(CACHE_ENTRIES)  # (manifest digest, platform) -> (type, json)
        self.requests_made = 0
        self.requests_by_kind: Counter[str] = Counter()
        self._http = httpx.Client(
            transport=transport,
            http2=transport is None and importlib.util.find_spec("h2") is not None,
            timeout=httpx.Timeout(feed.timeout),
            verify=not feed.insecure,
            follow_redirects=True,
            limits=httpx.Limits(
                max_connections=max(1, feed.limits.concurrency),
                max_keepalive_connections=max(1, feed.limits.concurrency),
            ),
            headers={"User-Agent": "reconciler"},
        )

    def _parse_url(self, feed: model.Feed) -> tuple[httpx.URL | None, str]:
        raw = feed.url.strip()
        if "://" not in raw:
            raw = "https://" + raw
        elif raw.startswith("oci://"):
            raw = ("http://" if feed.insecure else "https://") + raw[len("oci://") :]
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self._config_error = f"url {feed.url!r} is not https://host[:port]"
            return None, ""
        if parts.scheme == "http" and not feed.insecure:
            self._config_error = f"url {feed.url!r} uses plain http; set insecure: true to allow it"
            return None, ""
        warn_if_insecure(feed)
        prefix = parts.path.strip("/")
        return httpx.URL(f"{parts.scheme}://{parts.netloc}"), prefix

    # -- FeedClient protocol ---------------------------------------------------

    def list_tags(self, repository: str) -> list[str]:
        """Every tag of ``repository``, in the registry's order, without duplicates."""
        name = self._name(repository)
        url = self._url(f"/v2/{name}/tags/list")
        seen: dict[str, None] = {}
        budget = self._max_body
        for _ in range(MAX_TAG_PAGES):
            response = self._request(
                "GET", url, name=name, kind="tags", accept="application/json", budget=budget
            )
            budget -= len(response.body)
            document = self._json(response, what=f"tag list of {repository}")
            tags = document.get("tags") if isinstance(document, dict) else None
            if tags is not None and not (
                isinstance(tags, list) and all(isinstance(t, str) for t in tags)
            ):
                raise self._malformed(f"tag list of {repository}: 'tags' is not a list of strings")
            for tag in tags or ():
                seen.setdefault(tag, None)
            following = next_link(response.headers.get("link"), response.url)
            if following is None:
                return list(seen)
            if following.netloc != url.netloc or following.scheme != url.scheme:
                raise self._malformed(f"tag list of {repository}: next page on another host")
            url = following
        raise FeedError(
            self.feed.name,
            f"tag list of {repository}: more than {MAX_TAG_PAGES} pages",
            retry_after=TRANSIENT_RETRY_AFTER,
        )

    def digest(self, repository: str, tag: str) -> str | None:
        """The manifest digest ``tag`` points at (the index digest for multi-arch tags)."""
        name = self._name(repository)
        url = self._url(f"/v2/{name}/manifests/{tag}")
        response = self._request(
            "HEAD", url, name=name, kind="manifest_head", accept=MANIFEST_ACCEPT
        )
        found = response.headers.get("docker-content-digest")
        if found is None:
            # The header is only a SHOULD in distribution-spec 1.1: hash the exact body.
            response = self._request(
                "GET", url, name=name, kind="manifest_get", accept=MANIFEST_ACCEPT
            )
            return "sha256:" + hashlib.sha256(response.body).hexdigest()
        if not DIGEST_PATTERN.fullmatch(found.strip()):
            raise self._malformed(f"{repository}:{tag}: unusable digest {found[:80]!r}")
        return str(found).strip()

    def created(self, repository: str, tag: str, platform: str | None = None) -> datetime | None:
        """The image's creation time from its config blob (None when not recorded).

        For a multi-arch tag the image of ``platform`` (default linux/amd64) is used.
        Falls back to the manifest's ``org.opencontainers.image.created`` annotation
        (Helm charts set only that).
        """
        _media_type, config, manifest = self._image(repository, tag, platform)
        created = parse_created(config.get("created")) if isinstance(config, dict) else None
        if created is None:
            annotations = manifest.get("annotations")
            if isinstance(annotations, dict):
                created = parse_created(annotations.get("org.opencontainers.image.created"))
        return created

    def has_platform(self, repository: str, tag: str, platform: str) -> bool:
        """Whether ``repository:tag`` has an image for ``platform`` (os/arch[/variant]):
        an entry of its index, or a single image whose config names that platform.
        Images that say nothing about their platform (charts) count as having it."""
        try:
            _media_type, config, _manifest = self._image(repository, tag, platform)
        except PlatformNotFound:
            return False
        want_os, want_arch, want_variant = parse_platform(platform)
        if not isinstance(config, dict) or not config.get("os") or not config.get("architecture"):
            return True
        if (config["os"], config["architecture"]) != (want_os, want_arch):
            return False
        return want_variant is None or config.get("variant") in (None, want_variant)

    def manifest_config(
        self, repository: str, reference: str, platform: str | None = None
    ) -> tuple[str, Any]:
        """(config media type, parsed config JSON) of ``repository:reference``.

        Helm charts are recognised by ``HELM_CONFIG``; their config is Chart.yaml as JSON.
        """
        media_type, config, _manifest = self._image(repository, reference, platform)
        return media_type, config

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- manifests -------------------------------------------------------------

    def _image(
        self, repository: str, reference: str, platform: str | None
    ) -> tuple[str, Any, dict[str, Any]]:
        """Resolve to (config media type, config json, image manifest json), cached."""
        try:
            wanted = parse_platform(platform)
        except ValueError as exc:
            raise FeedError(self.feed.name, str(exc)) from None
        name = self._name(repository)
        if DIGEST_PATTERN.fullmatch(reference):
            top_digest = reference
        else:
            top_digest = self.digest(repository, reference) or ""
        cache_key = (top_digest, wanted)
        cached = self._configs.get(cache_key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        media_type, manifest = self._manifest(name, top_digest)
        for _ in range(MAX_INDEX_DEPTH):
            if media_type not in INDEX_TYPES:
                break
            child = self._choose_platform(manifest, wanted, f"{repository}:{reference}")
            media_type, manifest = self._manifest(name, child)
        if media_type not in IMAGE_MANIFEST_TYPES:
            raise self._malformed(
                f"{repository}:{reference}: unexpected manifest type {media_type}"
            )
        descriptor = manifest.get("config")
        if not isinstance(descriptor, dict) or not isinstance(descriptor.get("digest"), str):
            raise self._malformed(f"{repository}:{reference}: manifest has no config descriptor")
        config_digest = descriptor["digest"]
        config_type = str(descriptor.get("mediaType") or "")
        response = self._request(
            "GET",
            self._url(f"/v2/{name}/blobs/{config_digest}"),
            name=name,
            kind="blob",
            accept="*/*",
        )
        self._verify_digest(response.body, config_digest, f"config of {repository}:{reference}")
        try:
            config = json.loads(response.body)
        except ValueError:
            raise self._malformed(f"config of {repository}:{reference} is not JSON") from None
        result = (config_type, config, manifest)
        self._configs.put(cache_key, result)
        return result

    def _manifest(self, name: str, digest: str) -> tuple[str, dict[str, Any]]:
        """GET a manifest by digest (verified), cached: content addressed, never changes."""
        cached = self._manifests.get(digest)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        response = self._request(
            "GET",
            self._url(f"/v2/{name}/manifests/{digest}"),
            name=name,
            kind="manifest_get",
            accept=MANIFEST_ACCEPT,
        )
        self._verify_digest(response.body, digest, f"manifest {name}@{digest}")
        document = self._json(response, what=f"manifest {name}@{digest}", manifest=True)
        if not isinstance(document, dict):
            raise self._malformed(f"manifest {name}@{digest} is not a JSON object")
        header_type = _media_type(response.headers.get("content-type"))
        body_type = document.get("mediaType")
        if header_type in INDEX_TYPES | IMAGE_MANIFEST_TYPES:
            if isinstance(body_type, str) and body_type and body_type != header_type:
                raise self._malformed(
                    f"manifest {name}@{digest}: Content-Type {header_type} "
                    f"disagrees with mediaType {body_type}"
                )
            media_type = header_type
        elif isinstance(body_type, str) and body_type:
            media_type = body_type
        else:
            # OCI manifests may omit mediaType; the shape tells them apart.
            media_type = OCI_INDEX if "manifests" in document else OCI_MANIFEST
        self._manifests.put(digest, (media_type, document))
        return media_type, document

    def _choose_platform(
        self, index: dict[str, Any], wanted: tuple[str, str, str | None], what: str
    ) -> str:
        want_os, want_arch, want_variant = wanted
        offered: list[str] = []
        fallback: str | None = None
        for entry in index.get("manifests") or ():
            if not isinstance(entry, dict) or not isinstance(entry.get("digest"), str):
                continue
            if entry.get("mediaType") not in INDEX_TYPES | IMAGE_MANIFEST_TYPES:
                continue  # unknown entries MUST be ignored (image-spec)
            annotations = entry.get("annotations") or {}
            if annotations.get("vnd.docker.reference.type") == "attestation-manifest":
                continue
            platform = entry.get("platform") or {}
            entry_os, entry_arch = platform.get("os"), platform.get("architecture")
            if entry_os == "unknown" and entry_arch == "unknown":
                continue
            variant = platform.get("variant")
            offered.append("/".join(str(p) for p in (entry_os, entry_arch, variant) if p))
            if entry_os != want_os or entry_arch != want_arch:
                continue
            if want_variant is None or variant == want_variant:
                return str(entry["digest"])
            if variant is None and want_arch == "arm64" and want_variant == "v8":
                fallback = fallback or str(entry["digest"])  # arm64 implies v8
        if fallback is not None:
            return fallback
        wanted_text = "/".join(p for p in wanted if p)
        offered_text = ", ".join(offered) or "none"
        raise PlatformNotFound(
            self.feed.name,
            f"{what}: no image for platform {wanted_text} (offered: {offered_text})",
            retry_after=3600.0,
        )

    # -- HTTP ------------------------------------------------------------------

    def _name(self, repository: str) -> str:
        name = repository.strip("/")
        return f"{self._prefix}/{name}" if self._prefix else name

    def _url(self, path: str) -> httpx.URL:
        if self._base is None:
            raise FeedError(
                self.feed.name, self._config_error or "unusable url", retry_after=3600.0
            )
        return self._base.join(path)

    def _malformed(self, message: str) -> FeedError:
        return FeedError(self.feed.name, message, retry_after=TRANSIENT_RETRY_AFTER)

    def _verify_digest(self, body: bytes, digest: str, what: str) -> None:
        if not digest.startswith("sha256:"):
            raise self._malformed(f"{what}: unsupported digest algorithm")
        if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise self._malformed(f"{what}: content does not match its digest")

    def _json(self, response: _Response, *, what: str, manifest: bool = False) -> Any:
        media_type = _media_type(response.headers.get("content-type"))
        if (
            media_type
            and not _is_json_type(media_type)
            and not (manifest and media_type.startswith("application/vnd."))
        ):
            raise self._malformed(f"{what}: expected JSON, got Content-Type {media_type}")
        try:
            return json.loads(response.body)
        except ValueError:
            raise self._malformed(f"{what}: malformed JSON") from None

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

    def _request(
        self,
        method: str,
        url: httpx.URL,
        *,
        name: str,
        kind: str,
        accept: str,
        budget: int | None = None,
    ) -> _Response:
        """Send with authentication, answering up to two challenges; map errors.

        The first 401 teaches the client the registry's challenge (kept, so later
        requests authenticate up front). A second 401 after answering it means the
        credentials or the token were rejected, except for a bearer challenge naming
        a different scope (``insufficient_scope``), which gets a token for that scope.
        """
        scope = f"repository:{name}:pull"
        refreshed_once = False
        for _attempt in range(3):
            authorization = self._authorization(scope)
            response = self._send(
                method, url, kind=kind, accept=accept, authorization=authorization, budget=budget
            )
            if response.status != 401:
                return self._check_status(response)
            challenge = parse_challenge(response.headers.get("www-authenticate", ""))
            if challenge is None or challenge.scheme not in ("basic", "bearer"):
                break
            with self._state_lock:
                self._challenge = challenge
            if challenge.scheme == "basic":
                if authorization is not None or not self._has_basic_secret():
                    break
                continue
            asked = scope
            if challenge.scopes:
                scope = " ".join(challenge.scopes)
            if authorization is None or not authorization.startswith("Bearer "):
                continue  # first bearer challenge: fetch a token and retry
            if scope != asked:
                continue  # insufficient_scope naming another scope: new token
            if refreshed_once:
                break
            # Revoked or expired early: drop it and fetch one fresh token.
            self._tokens.invalidate(self._token_key(challenge, scope), authorization[7:])
            refreshed_once = True
        raise self._auth_failure(name)

    def _has_basic_secret(self) -> bool:
        secret = self._credentials.resolve()
        return secret is not None and secret.has_basic

    def _auth_failure(self, name: str) -> FeedAuthError:
        secret = self._credentials.resolve()
        if secret is None:
            message = (
                f"{name}: the registry requires authentication and no credentials are configured"
            )
        else:
            message = f"{name}: the registry rejected the credentials"
        return FeedAuthError(self.feed.name, message, retry_after=600.0)

    def _send(
        self,
        method: str,
        url: httpx.URL,
        *,
        kind: str,
        accept: str,
        authorization: str | None,
        budget: int | None,
        form: dict[str, str] | None = None,
    ) -> _Response:
        self._check_deadline()
        headers = {"Accept": accept}
        if authorization is not None:
            headers["Authorization"] = authorization
        limit = self._max_body if budget is None else budget
        with self._slot():
            self._count(kind)
            try:
                # A form carries a secret (a refresh token): never re-sent to wherever
                # a redirect points (httpx drops Authorization on redirects, not bodies).
                with self._http.stream(
                    method, url, headers=headers, data=form, follow_redirects=form is None
                ) as response:
                    body = self._read_limited(response, limit, url)
                    return _Response(response.status_code, response.headers, body, response.url)
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

    def _check_status(self, response: _Response) -> _Response:
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

    @staticmethod
    def _error_detail(response: _Response) -> str:
        """``: CODE message`` from a distribution error body, if it has one."""
        try:
            errors = json.loads(response.body).get("errors")
            first = errors[0]
            text = f"{first.get('code', '')} {first.get('message', '')}".strip()
        except (ValueError, AttributeError, TypeError, IndexError, KeyError):
            return ""
        return f": {text[:200]}" if text else ""

    # -- authentication --------------------------------------------------------

    def _token_key(self, challenge: Challenge, scope: str) -> TokenKey:
        secret = self._credentials.resolve()
        identity = ""
        if secret is not None:
            # Tokens are per identity; a refresh token is one identity (kept in the
            # key only as a hash, so no secret sits in the cache's keys).
            identity = secret.username or ""
            if not identity and secret.identity_token:
                digest = hashlib.sha256(secret.identity_token.encode()).hexdigest()[:16]
                identity = f"<token>{digest}"
        return (challenge.realm, challenge.service, tuple(sorted(scope.split())), identity)

    def _authorization(self, scope: str) -> str | None:
        """The Authorization value for ``scope`` given the last challenge, or None."""
        with self._state_lock:
            challenge = self._challenge
        secret = self._credentials.resolve()
        if secret is not None and (secret.registry_token is not None or challenge is not None):
            # Anything derived from a secret (Basic, a registry token, a token fetched
            # with credentials) travels in clear only where the operator allows it.
            self._require_secure()
        if secret is not None and secret.registry_token is not None:
            return f"Bearer {secret.registry_token}"
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            if secret is None or not secret.has_basic:
                return None
            return _basic(secret)
        key = self._token_key(challenge, scope)
        token = self._tokens.get_or_fetch(key, lambda: self._fetch_token(challenge, scope, secret))
        return f"Bearer {token}"

    def _require_secure(self) -> None:
        """Refuse to send credentials over plain http or unverified TLS unless the
        operator allowed this host (``insecure: true`` in the config is not enough)."""
        host = self._credentials.host
        in_clear = self._base is None or self._base.scheme != "https" or self.feed.insecure
        if in_clear and not self._credentials.policy().http_credentials_allowed(host):
            raise FeedAuthError(
                self.feed.name,
                f"refusing to send credentials to {host} over plain http or unverified TLS;"
                " the operator allows it with --allow-http-credentials",
                retry_after=3600.0,
            )

    def _check_realm(self, realm: httpx.URL, secret: Secret | None) -> None:
        """A token realm gets the registry's credentials only on the registry's own host
        or one the operator paired with it (docker and containerd send them to any
        realm; we follow go-containerregistry in keeping them on their host)."""
        if secret is None:
            return
        registry_host = self._credentials.host
        realm_host = realm.netloc.decode("ascii")
        policy = self._credentials.policy()
        if not policy.realm_allowed(registry_host, realm_host):
            raise FeedAuthError(
                self.feed.name,
                f"the registry sends its token requests to {realm.host}, another host;"
                f" credentials for {registry_host} are not sent there unless the operator"
                " allows it with --token-realm",
                retry_after=3600.0,
            )
        clear = realm.scheme != "https" or self.feed.insecure
        if clear and not policy.http_credentials_allowed(realm_host):
            raise FeedAuthError(
                self.feed.name,
                f"refusing to send credentials to token realm {realm.host} over plain http"
                " or unverified TLS; the operator allows it with --allow-http-credentials",
                retry_after=3600.0,
            )

    def _fetch_token(
        self, challenge: Challenge, scope: str, secret: Secret | None
    ) -> tuple[str, float]:
        """GET a bearer token from the challenge's realm (RFC-6750 token flow)."""
        try:
            realm = httpx.URL(challenge.realm)
        except httpx.InvalidURL:
            realm = httpx.URL("")
        if realm.scheme not in ("http", "https") or not realm.host:
            raise FeedAuthError(self.feed.name, f"unusable token realm {challenge.realm[:100]!r}")
        if realm.scheme != "https" and not self.feed.insecure:
            raise FeedAuthError(
                self.feed.name, "token realm uses plain http; set insecure: true to allow it"
            )
        self._check_realm(realm, secret)
        if secret is not None and secret.identity_token is not None:
            return self._exchange_refresh_token(realm, challenge, scope, secret.identity_token)
        params: list[tuple[str, str | int | float | bool | None]] = []
        if challenge.service:
            params.append(("service", challenge.service))
        params.extend(("scope", s) for s in scope.split())
        headers = {"Accept": "application/json"}
        if secret is not None and secret.has_basic:
            headers["Authorization"] = _basic(secret)
            if secret.username:
                params.append(("account", secret.username))
        url = realm.copy_merge_params(params)
        response = self._send(
            "GET",
            url,
            kind="token",
            accept="application/json",
            authorization=headers.get("Authorization"),
            budget=None,
        )
        if response.status in (401, 403):
            raise FeedAuthError(
                self.feed.name,
                f"token server {realm.host} rejected the "
                + ("credentials" if secret is not None else "anonymous request"),
                retry_after=600.0,
            )
        return self._token_from(response, realm)

    def _exchange_refresh_token(
        self, realm: httpx.URL, challenge: Challenge, scope: str, refresh_token: str
    ) -> tuple[str, float]:
        """POST an OAuth2 refresh-token grant (the distribution token spec's OAuth2
        flow, what ``docker login`` with an identity token does)."""
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": "reconciler",
            "scope": scope,
        }
        if challenge.service:
            form["service"] = challenge.service
        response = self._send(
            "POST",
            realm,
            kind="token",
            accept="application/json",
            authorization=None,
            budget=None,
            form=form,
        )
        if response.status in (400, 401, 403):
            raise FeedAuthError(
                self.feed.name,
                f"token server {realm.host} rejected the identity token",
                retry_after=600.0,
            )
        return self._token_from(response, realm)

    def _token_from(self, response: _Response, realm: httpx.URL) -> tuple[str, float]:
        self._check_status(response)
        document = self._json(response, what=f"token from {realm.host}")
        token = None
        if isinstance(document, dict):
            token = document.get("token") or document.get("access_token")
        if not isinstance(token, str) or not token:
            raise self._malformed(f"token server {realm.host} answered without a token")
        expires_in = document.get("expires_in")
        usable = isinstance(expires_in, int | float) and expires_in > 0
        lifetime = float(expires_in) if usable else 60.0
        return token, lifetime


def _basic(secret: Secret) -> str:
    raw = f"{secret.username or ''}:{secret.password or ''}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")
