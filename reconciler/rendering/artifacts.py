"""What rendering writes: artifacts (a release's packages as manifests name them), what a
file currently says about them, and the grammar every registry-supplied value must
match before it may be spliced into YAML.

Every value written comes from a registry, so it is validated against the OCI
tag / digest grammar first: a hostile tag holding a newline, quote or ``#`` must
not be able to inject YAML.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from reconciler.errors import RenderError

__all__ = ["Artifact", "Current", "validate_artifacts"]


@dataclass(frozen=True)
class Artifact:
    """One package version of a release, as it should appear in manifests."""

    package: str  # package name in the project
    kind: Literal["image", "chart"]
    name: str  # image name as written in manifests (kustomize images[].name), or chart name
    version: str  # tag exactly as in the registry / chart version
    digest: str | None = None  # "sha256:<64 hex>"
    new_name: str | None = None  # kustomize images[].newName to set, if any


@dataclass(frozen=True)
class Current:
    """What a file currently says about one artifact (None: not written there)."""

    version: str | None = None  # tag or chart version, exactly as written
    digest: str | None = None
    name: str | None = None  # kustomize newName, or the image name of a marker


_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
"""OCI distribution tag grammar."""
_CHART_VERSION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}")
"""A chart version is SemVer 2, which may carry ``+build`` metadata."""
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_IMAGE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._/:-]{0,253}[A-Za-z0-9])?")
"""Loose reference name (host[:port]/path); enough to rule out YAML syntax."""


def validate_artifacts(artifacts: Sequence[Artifact], file: str) -> None:
    seen: dict[tuple[str, str], Artifact] = {}
    for artifact in artifacts:
        grammar = _TAG if artifact.kind == "image" else _CHART_VERSION
        if not grammar.fullmatch(artifact.version):
            raise RenderError(
                file,
                f"{artifact.package}: refusing invalid {artifact.kind} version "
                f"{artifact.version!r}",
            )
        if artifact.digest is not None and not _DIGEST.fullmatch(artifact.digest):
            raise RenderError(
                file, f"{artifact.package}: refusing invalid digest {artifact.digest!r}"
            )
        for name in (artifact.name, artifact.new_name):
            if name is not None and not _IMAGE_NAME.fullmatch(name):
                raise RenderError(file, f"{artifact.package}: refusing invalid name {name!r}")
        key = (artifact.kind, artifact.name)
        other = seen.setdefault(key, artifact)
        if (other.version, other.digest, other.new_name) != (
            artifact.version,
            artifact.digest,
            artifact.new_name,
        ):
            raise RenderError(
                file,
                f"packages {other.package} and {artifact.package} both name "
                f"{artifact.name} with different versions",
            )
