"""An OCI image-layout directory as a feed: offline, for ``reconciler demo`` and tests.

``feed.url`` names a directory. The config is untrusted: a relative path resolves
inside the work tree (``base_dir``) and is read through reconciler.safepaths (no
``..``, no symlink anywhere along the way); an absolute one must lie under a
directory the operator grants (``RECONCILER_OCI_LAYOUT_DIRS``, reconciler.grants). Each
repository is a layout of its own at ``<dir>/<repository>/`` (``oci-layout``,
``index.json``, ``blobs/sha256/``), whose ``index.json`` manifests carry the tag in
the ``org.opencontainers.image.ref.name`` annotation. A single layout at ``<dir>``
whose ref names are full references (``<repository>:<tag>``) works too.

This module also builds images (``build_image``) and writes them into layouts
(``write_image``), so the demo can create its sample feed without a registry; the
test helpers push the same bytes to a real registry.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler import model, safepaths
from reconciler.errors import FeedError, FeedNotFound, UnsafePathError
from reconciler.feeds._http import parse_created
from reconciler.feeds.oci.client import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    INDEX_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    parse_platform,
)
from reconciler.grants import OCI_LAYOUT_DIRS_VAR, oci_layout_problem

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}
MAX_JSON_BYTES = 20 * 1024 * 1024
MAX_INDEX_DEPTH = 3

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


@dataclass(frozen=True)
class Blob:
    """Bytes plus the media type a descriptor gives them."""

    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)} | extra


@dataclass(frozen=True)
class BuiltImage:
    """A manifest (or index) and every blob and child manifest it references."""

    manifest: Blob
    blobs: tuple[Blob, ...] = ()  # configs and layers
    children: tuple[Blob, ...] = field(default=())  # platform manifests of an index

    @property
    def digest(self) -> str:
        return self.manifest.digest


def _canonical(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_image(
    *,
    created: datetime | None = None,
    content: bytes | None = None,
    platforms: Sequence[str] = ("linux/amd64",),
    index: bool = False,
    docker: bool = False,
    config_media_type: str | None = None,
    config_extra: Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
    platform_created: Mapping[str, datetime] | None = None,
    attestation: bool = False,
) -> BuiltImage:
    """A tiny image: one config blob and one layer per platform.

    ``index`` (or more than one platform) wraps the platform manifests in an OCI
    index (Docker manifest list when ``docker``); ``attestation`` adds a BuildKit
    style ``unknown/unknown`` attestation entry that platform selection must skip.
    ``content`` makes the layer (and so every digest) distinct per tag.
    """
    manifest_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    layer_type = DOCKER_LAYER if docker else OCI_LAYER
    default_config_type = DOCKER_CONFIG if docker else OCI_CONFIG
    layer = Blob(layer_type, content if content is not None else b"reconciler test layer")
    blobs: list[Blob] = [layer]
    children: list[tuple[str, Blob]] = []
    for platform in platforms:
        os_name, arch, variant = parse_platform(platform)
        when = (platform_created or {}).get(platform, created)
        config: dict[str, Any] = {
            "architecture": arch,
            "os": os_name,
            "created": _rfc3339(when) if when is not None else None,
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]},
        }
        if variant:
            config["variant"] = variant
        config.update(config_extra or {})
        config_blob = Blob(config_media_type or default_config_type, _canonical(config))
        blobs.append(config_blob)
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": config_blob.descriptor(),
            "layers": [layer.descriptor()],
        }
        if annotations and not docker:
            manifest["annotations"] = dict(annotations)
        children.append((platform, Blob(manifest_type, _canonical(manifest))))
    if not index and len(children) == 1 and not attestation:
        return BuiltImage(children[0][1], tuple(blobs))
    entries = []
    for platform, child in children:
        os_name, arch, variant = parse_platform(platform)
        described = {"os": os_name, "architecture": arch} | (
            {"variant": variant} if variant else {}
        )
        entries.append(child.descriptor(platform=described))
    child_blobs = [child for _platform, child in children]
    if attestation:
        statement = Blob("application/vnd.in-toto+json", b'{"_type":"attestation"}')
        blobs.append(statement)
        attest_config = Blob(OCI_CONFIG, b"{}")
        blobs.append(attest_config)
        attest = Blob(
            OCI_MANIFEST,
            _canonical(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": attest_config.descriptor(),
                    "layers": [statement.descriptor()],
                }
            ),
        )
        child_blobs.append(attest)
        # BuildKit lists attestations first on some builds; selection must still skip them.
        entries.insert(
            0,
            attest.descriptor(
                platform={"os": "unknown", "architecture": "unknown"},
                annotations={
                    "vnd.docker.reference.type": "attestation-manifest",
                    "vnd.docker.reference.digest": children[0][1].digest,
                },
            ),
        )
    index_type = DOCKER_LIST if docker else OCI_INDEX
    document: dict[str, Any] = {"schemaVersion": 2, "mediaType": index_type, "manifests": entries}
    if annotations and not docker:
        document["annotations"] = dict(annotations)
    return BuiltImage(Blob(index_type, _canonical(document)), tuple(blobs), tuple(child_blobs))


_write_lock = threading.Lock()


def write_image(layout: Path, tag: str, image: BuiltImage) -> str:
    """Store ``image`` in the layout at ``layout`` under ``tag``; returns its digest.

    Creates the layout when missing and replaces an existing entry for ``tag``.
    """
    blob_dir = layout / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text(json.dumps(LAYOUT_VERSION))
    for blob in (*image.blobs, *image.children, image.manifest):
        (blob_dir / blob.digest.removeprefix("sha256:")).write_bytes(blob.data)
    with _write_lock:
        index_path = layout / "index.json"
        if index_path.exists():
            index = json.loads(index_path.read_text())
        else:
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        index["manifests"] = [
            entry
            for entry in index["manifests"]
            if (entry.get("annotations") or {}).get(REF_NAME) != tag
        ]
        index["manifests"].append(image.manifest.descriptor(annotations={REF_NAME: tag}))
        temporary = index_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(index, indent=2) + "\n")
        os.replace(temporary, index_path)
    return image.digest


def _real_grants(env: Mapping[str, str]) -> dict[str, str]:
    """The operator's layout grants with symlinks resolved, to check a resolved path."""
    dirs = (d.strip() for d in env.get(OCI_LAYOUT_DIRS_VAR, "").split(","))
    return {OCI_LAYOUT_DIRS_VAR: ",".join(os.path.realpath(d) for d in dirs if d)}


class OciLayoutClient:
    """``FeedClient`` over OCI image-layout directories (no network)."""

    def __init__(
        self,
        feed: model.Feed,
        *,
        base_dir: Path | str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.feed = feed
        env = os.environ if env is None else env
        problem = oci_layout_problem(feed.url, env)
        if problem is not None:
            raise FeedError(feed.name, f"url: not granted: {problem}")
        raw = feed.url.strip().removeprefix("file://")
        root = Path(raw).expanduser()
        self._tree: Path | None = None  # the work tree, when the layout lies inside it
        if not root.is_absolute():
            self._tree = Path(base_dir if base_dir is not None else os.getcwd())
            root = self._tree / root
        elif oci_layout_problem(os.path.realpath(root), _real_grants(env)) is not None:
            raise FeedError(feed.name, f"url: not granted: {root} leads outside the granted dirs")
        self.root = root
        self.requests_made = 0  # files read; mirrors RegistryClient for benchmarks

    def list_tags(self, repository: str) -> list[str]:
        return [tag for tag, _descriptor in self._entries(repository)[1]]

    def digest(self, repository: str, tag: str) -> str | None:
        return str(self._descriptor(repository, tag)[1]["digest"])

    def created(self, repository: str, tag: str, platform: str | None = None) -> datetime | None:
        _media_type, config, manifest = self._image(repository, tag, platform)
        created = parse_created(config.get("created")) if isinstance(config, dict) else None
        if created is None:
            annotations = manifest.get("annotations") or {}
            created = parse_created(annotations.get("org.opencontainers.image.created"))
        return created

    def manifest_config(
        self, repository: str, reference: str, platform: str | None = None
    ) -> tuple[str, Any]:
        media_type, config, _manifest = self._image(repository, reference, platform)
        return media_type, config

    def close(self) -> None:
        """Nothing to release; part of the FeedClient protocol."""

    # -- reading ---------------------------------------------------------------

    def _error(self, message: str) -> FeedError:
        return FeedError(self.feed.name, message, retry_after=60.0)

    def _read(self, path: Path, limit: int | None = None) -> bytes:
        """``path``'s bytes (at most ``limit + 1``); inside the work tree never through
        a symlink or out of it."""
        if self._tree is None:
            with path.open("rb") as file:
                return file.read() if limit is None else file.read(limit + 1)
        try:
            return safepaths.read_bytes(
                self._tree, path.relative_to(self._tree).as_posix(), limit=limit
            )
        except UnsafePathError as exc:
            raise FeedError(self.feed.name, str(exc)) from None

    def _is_file(self, path: Path) -> bool:
        if self._tree is None:
            return path.is_file()
        try:  # a symlink says so instead of "not found"
            self._read(path, 0)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return False
        return True

    def _read_json(self, path: Path) -> Any:
        self.requests_made += 1
        try:
            data = self._read(path, MAX_JSON_BYTES)
            if len(data) > MAX_JSON_BYTES:
                raise self._error(f"{path}: larger than {MAX_JSON_BYTES} bytes")
            return json.loads(data)
        except FileNotFoundError:
            raise FeedNotFound(self.feed.name, f"{path}: missing") from None
        except OSError as exc:
            raise self._error(f"{path}: {exc.strerror or exc}") from None
        except ValueError:
            raise self._error(f"{path}: malformed JSON") from None

    def _layout_for(self, repository: str) -> tuple[Path, str | None]:
        """(layout directory, ref-name prefix to match or None for plain tags)."""
        if ".." in repository.split("/") or repository.startswith("/"):
            raise self._error(f"repository {repository[:80]!r} is not a repository name")
        own = self.root / repository
        if self._is_file(own / "index.json"):
            return own, None
        if self._is_file(self.root / "index.json"):
            return self.root, f"{repository}:"
        raise FeedNotFound(self.feed.name, f"repository {repository} not found in {self.root}")

    def _entries(self, repository: str) -> tuple[Path, list[tuple[str, dict[str, Any]]]]:
        layout, prefix = self._layout_for(repository)
        index = self._read_json(layout / "index.json")
        manifests = index.get("manifests") if isinstance(index, dict) else None
        if not isinstance(manifests, list):
            raise self._error(f"{layout / 'index.json'}: no manifests list")
        found: dict[str, dict[str, Any]] = {}
        for entry in manifests:
            if not isinstance(entry, dict) or not isinstance(entry.get("digest"), str):
                continue
            name = (entry.get("annotations") or {}).get(REF_NAME)
            if not isinstance(name, str):
                continue
            if prefix is not None:
                if not name.startswith(prefix):
                    continue
                name = name[len(prefix) :]
            found.setdefault(name, entry)
        if prefix is not None and not found:
            raise FeedNotFound(self.feed.name, f"repository {repository} not found in {layout}")
        return layout, list(found.items())

    def _descriptor(self, repository: str, tag: str) -> tuple[Path, dict[str, Any]]:
        layout, entries = self._entries(repository)
        for name, descriptor in entries:
            if name == tag:
                return layout, descriptor
        raise FeedNotFound(self.feed.name, f"{repository}:{tag} not found")

    def _blob(self, layout: Path, digest: str) -> bytes:
        algorithm, _, hex_digest = digest.partition(":")
        if algorithm != "sha256" or len(hex_digest) != 64 or not hex_digest.isalnum():
            raise self._error(f"unsupported digest {digest[:80]!r}")
        path = layout / "blobs" / "sha256" / hex_digest
        self.requests_made += 1
        try:
            data = self._read(path)
        except FileNotFoundError:
            raise FeedNotFound(self.feed.name, f"blob {digest} missing in {layout}") from None
        if hashlib.sha256(data).hexdigest() != hex_digest:
            raise self._error(f"blob {digest} in {layout} does not match its digest")
        return data

    def _blob_json(self, layout: Path, digest: str) -> Any:
        try:
            return json.loads(self._blob(layout, digest))
        except ValueError:
            raise self._error(f"blob {digest} in {layout} is not JSON") from None

    def _image(
        self, repository: str, tag: str, platform: str | None
    ) -> tuple[str, Any, dict[str, Any]]:
        try:
            want_os, want_arch, want_variant = parse_platform(platform)
        except ValueError as exc:
            raise self._error(str(exc)) from None
        layout, descriptor = self._descriptor(repository, tag)
        media_type = str(descriptor.get("mediaType") or "")
        manifest = self._blob_json(layout, descriptor["digest"])
        for _ in range(MAX_INDEX_DEPTH):
            if media_type not in INDEX_TYPES:
                break
            chosen = None
            for entry in manifest.get("manifests") or ():
                described = entry.get("platform") or {}
                if (
                    described.get("os") == want_os
                    and described.get("architecture") == want_arch
                    and (want_variant is None or described.get("variant") == want_variant)
                ):
                    chosen = entry
                    break
            if chosen is None:
                raise FeedNotFound(
                    self.feed.name, f"{repository}:{tag}: no image for platform {platform}"
                )
            media_type = str(chosen.get("mediaType") or "")
            manifest = self._blob_json(layout, chosen["digest"])
        config_descriptor = manifest.get("config") if isinstance(manifest, dict) else None
        if not isinstance(config_descriptor, dict) or "digest" not in config_descriptor:
            raise self._error(f"{repository}:{tag}: manifest has no config")
        config = self._blob_json(layout, config_descriptor["digest"])
        return str(config_descriptor.get("mediaType") or ""), config, manifest
