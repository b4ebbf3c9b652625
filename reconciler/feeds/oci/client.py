"""OCI distribution client: tags, digests and image creation times (read side only).

One ``RegistryClient`` per feed, safe to share between threads. The HTTP side (limits,
pacing, ``Retry-After`` deadlines, error mapping) is ``oci.transport``; answering the
registry's challenges is ``oci.challenge``. This module speaks the distribution API.

Frugality: digests come from ``HEAD`` (free on Docker Hub); bearer tokens are cached per
scope and requested up front once the registry's challenge is known; everything derived
from a manifest digest (image config, created time) is cached, since content addressed
data never changes. ``requests_made`` and ``requests_by_kind`` count what was sent.
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from reconciler import model
from reconciler.errors import FeedError, FeedNotFound, PlatformNotFound
from reconciler.feeds._http import parse_created, tls_context, warn_if_insecure
from reconciler.feeds.auth import CredentialResolver, TokenCache
from reconciler.feeds.oci.challenge import Authenticator, parse_challenge
from reconciler.feeds.oci.transport import (
    MAX_BODY_BYTES,
    TRANSIENT_RETRY_AFTER,
    Response,
    Transport,
    content_media_type,
    next_link,
)
from reconciler.grants import DOCKER_HUB_ALIASES

__all__ = [
    "DEFAULT_PLATFORM",
    "DIGEST_PATTERN",
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "IMAGE_MANIFEST_TYPES",
    "INDEX_TYPES",
    "MANIFEST_ACCEPT",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "RegistryClient",
    "parse_platform",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
IMAGE_MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))
"""Without the full list, distribution 2.x answers 404 for OCI manifests and rewrites
Docker v2 manifests to schema 1 (a different digest)."""

DEFAULT_PLATFORM = "linux/amd64"
DOCKER_HUB_API = "registry-1.docker.io"
DIGEST_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")

MAX_TAG_PAGES = 1000
MAX_INDEX_DEPTH = 3
CACHE_ENTRIES = 4096


def parse_platform(platform: str | None) -> tuple[str, str, str | None]:
    """``"os/arch[/variant]"`` -> (os, arch, variant); default linux/amd64."""
    parts = (platform or DEFAULT_PLATFORM).strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"platform {platform!r} is not os/arch[/variant]")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


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
        self._max_body = max_body_bytes
        self._config_error: str | None = None
        self._base, self._prefix = self._parse_url(feed)
        host = self._base.netloc.decode("ascii") if self._base else ""
        verify: ssl.SSLContext | bool = True
        try:
            verify = tls_context(feed, env)
        except FeedError as exc:
            self._config_error = self._config_error or exc.message  # raised by each request
        self._transport = Transport(
            feed,
            transport=transport,
            clock=clock,
            wall_clock=wall_clock,
            sleep=sleep,
            max_body_bytes=max_body_bytes,
            verify=verify,
        )
        secure = self._base is not None and self._base.scheme == "https" and not feed.insecure
        self._auth = Authenticator(
            feed,
            CredentialResolver(
                feed.name,
                feed.credentials,
                host,
                env=env,
                scheme=self._base.scheme if self._base else "https",
            ),
            token_cache if token_cache is not None else TokenCache(clock=clock),
            self._transport,
            secure=secure,
        )
        self._manifests = _LRU(CACHE_ENTRIES)  # digest -> (media type, parsed json)
        self._configs = _LRU(CACHE_ENTRIES)  # (manifest digest, platform) -> (type, json)

    @property
    def requests_made(self) -> int:
        return self._transport.requests_made

    @property
    def requests_by_kind(self) -> Counter[str]:
        return self._transport.requests_by_kind

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
        netloc = parts.netloc
        if netloc.lower() in DOCKER_HUB_ALIASES:
            # docker.io is the registry's name; its API answers on registry-1.docker.io.
            netloc = DOCKER_HUB_API
        return httpx.URL(f"{parts.scheme}://{netloc}"), prefix

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
            document = self._transport.json(response, what=f"tag list of {repository}")
            tags = document.get("tags") if isinstance(document, dict) else None
            if tags is not None and not (
                isinstance(tags, list) and all(isinstance(t, str) for t in tags)
            ):
                raise self._transport.malformed(
                    f"tag list of {repository}: 'tags' is not a list of strings"
                )
            for tag in tags or ():
                seen.setdefault(tag, None)
            following = next_link(response.headers.get("link"), response.url)
            if following is None:
                return list(seen)
            if following.netloc != url.netloc or following.scheme != url.scheme:
                raise self._transport.malformed(
                    f"tag list of {repository}: next page on another host"
                )
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
            raise self._transport.malformed(f"{repository}:{tag}: unusable digest {found[:80]!r}")
        return str(found).strip()

    def created(self, repository: str, tag: str, platform: str | None = None) -> datetime | None:
        """The image's creation time from its config blob (None when not recorded).

        For a multi-arch tag the image of ``platform`` (default linux/amd64) is used.
        Falls back to the manifest's ``org.opencontainers.image.created`` annotation
        (Helm charts set only that).
        """
        _config_type, config, manifest = self._image(repository, tag, platform)
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
            _config_type, config, _manifest = self._image(repository, tag, platform)
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

    def manifest(self, repository: str, reference: str) -> tuple[str, dict[str, Any]]:
        """(media type, document) of ``repository@reference`` (a tag or a digest),
        verified against its digest and cached."""
        name = self._name(repository)
        digest = (
            reference if DIGEST_PATTERN.fullmatch(reference) else self.digest(repository, reference)
        )
        return self._manifest(name, digest or "")

    def blob(self, repository: str, digest: str) -> bytes:
        """A blob's bytes, verified against ``digest`` (within the body budget)."""
        name = self._name(repository)
        response = self._request(
            "GET", self._url(f"/v2/{name}/blobs/{digest}"), name=name, kind="blob", accept="*/*"
        )
        self._verify_digest(response.body, digest, f"blob {name}@{digest}")
        return response.body

    def referrers(
        self, repository: str, digest: str, artifact_type: str
    ) -> list[dict[str, Any]] | None:
        """Descriptors of ``artifact_type`` whose subject is ``digest`` (OCI 1.1 referrers
        API); None when the registry has no referrers API (404)."""
        name = self._name(repository)
        url = self._url(f"/v2/{name}/referrers/{digest}").copy_merge_params(
            {"artifactType": artifact_type}
        )
        try:
            response = self._request("GET", url, name=name, kind="referrers", accept=OCI_INDEX)
        except FeedNotFound:
            return None
        document = self._transport.json(
            response, what=f"referrers of {name}@{digest}", manifest=True
        )
        entries = document.get("manifests") if isinstance(document, dict) else None
        return [
            entry
            for entry in entries or ()
            if isinstance(entry, dict) and entry.get("artifactType") == artifact_type
        ]

    def close(self) -> None:
        self._transport.close()

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
            raise self._transport.malformed(
                f"{repository}:{reference}: unexpected manifest type {media_type}"
            )
        descriptor = manifest.get("config")
        if not isinstance(descriptor, dict) or not isinstance(descriptor.get("digest"), str):
            raise self._transport.malformed(
                f"{repository}:{reference}: manifest has no config descriptor"
            )
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
            raise self._transport.malformed(
                f"config of {repository}:{reference} is not JSON"
            ) from None
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
        document = self._transport.json(response, what=f"manifest {name}@{digest}", manifest=True)
        if not isinstance(document, dict):
            raise self._transport.malformed(f"manifest {name}@{digest} is not a JSON object")
        header_type = content_media_type(response.headers.get("content-type"))
        body_type = document.get("mediaType")
        if header_type in INDEX_TYPES | IMAGE_MANIFEST_TYPES:
            if isinstance(body_type, str) and body_type and body_type != header_type:
                raise self._transport.malformed(
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
        name = f"{self._prefix}/{name}" if self._prefix else name
        if self._base is not None and self._base.host == DOCKER_HUB_API and "/" not in name:
            return f"library/{name}"  # Docker Hub's official images: nginx = library/nginx
        return name

    def _url(self, path: str) -> httpx.URL:
        if self._base is None or self._config_error is not None:
            raise FeedError(
                self.feed.name, self._config_error or "unusable url", retry_after=3600.0
            )
        return self._base.join(path)

    def _verify_digest(self, body: bytes, digest: str, what: str) -> None:
        if not digest.startswith("sha256:"):
            raise self._transport.malformed(f"{what}: unsupported digest algorithm")
        if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise self._transport.malformed(f"{what}: content does not match its digest")

    def _request(
        self,
        method: str,
        url: httpx.URL,
        *,
        name: str,
        kind: str,
        accept: str,
        budget: int | None = None,
    ) -> Response:
        """Send with authentication, answering up to two challenges; map errors.

        The first 401 teaches the client the registry's challenge (kept, so later
        requests authenticate up front). A second 401 after answering it means the
        credentials or the token were rejected, except for a bearer challenge naming
        a different scope (``insufficient_scope``), which gets a token for that scope.
        """
        scope = f"repository:{name}:pull"
        refreshed_once = False
        for _attempt in range(3):
            authorization = self._auth.authorization(scope)
            response = self._transport.send(
                method, url, kind=kind, accept=accept, authorization=authorization, budget=budget
            )
            if response.status != 401:
                return self._transport.check_status(response)
            challenge = parse_challenge(response.headers.get("www-authenticate", ""))
            if challenge is None or challenge.scheme not in ("basic", "bearer"):
                break
            self._auth.learn(challenge)
            if challenge.scheme == "basic":
                if authorization is not None or not self._auth.has_basic_secret():
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
            self._auth.invalidate(challenge, scope, authorization)
            refreshed_once = True
        raise self._auth.failure(name)
