"""Write versions into manifest files with byte-exact edits.

The generic engine is ``yamlsplice`` (find scalars, splice text, verify the
result); one module per format says which scalars hold versions:

- ``kustomize``: ``kustomize-images`` / ``kustomize-helm``, a kustomization's
  ``images[]`` (``newTag``, ``digest``, ``newName``; missing entries are
  appended) and ``helmCharts[]`` (``version``);
- ``flux``: ``helmrelease``, Flux ``HelmRelease`` ``spec.chart.spec.version``;
- ``argocd``: ``application``, Argo CD ``Application``
  ``spec.source(s).targetRevision``;
- ``markers``: any scalar followed by a
  ``# {"$reconciler": "project:package[:suffix]"}`` comment (``markers``), or by
  Flux's own ``# {"$imagepolicy": "namespace:policy[:suffix]"}`` setter
  (``flux-imagepolicy``);
- ``argocd`` also: ``helm-values``, Argo CD Image Updater's helm-values write-back
  (``image.name`` / ``image.tag`` parameter names, paths into a values file).

Every value written comes from a registry and is validated first
(``artifacts.validate_artifacts``). This module dispatches by target kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from reconciler.model import HelmValuesImage
from reconciler.rendering.argocd import (
    read_application,
    read_helm_values,
    render_application,
    render_helm_values,
)
from reconciler.rendering.artifacts import Artifact, Current
from reconciler.rendering.flux import read_helmrelease, render_helmrelease
from reconciler.rendering.kustomize import (
    KustomizationVersions,
    read_kustomization,
    render_kustomization,
)
from reconciler.rendering.markers import (
    FLUX,
    RECONCILER,
    marker_packages,
    read_markers,
    render_markers,
)

__all__ = [
    "Artifact",
    "Current",
    "KustomizationVersions",
    "TargetKind",
    "current_versions",
    "marker_packages",
    "read_application",
    "read_helm_values",
    "read_helmrelease",
    "read_kustomization",
    "read_markers",
    "render",
    "render_application",
    "render_helm_values",
    "render_helmrelease",
    "render_kustomization",
    "render_markers",
]

TargetKind = Literal[
    "kustomize-images",
    "kustomize-helm",
    "helmrelease",
    "application",
    "markers",
    "flux-imagepolicy",
    "helm-values",
]


def render(
    kind: TargetKind,
    text: str,
    artifacts: Sequence[Artifact],
    *,
    project: str,
    digest: bool,
    file: str,
    images: Sequence[HelmValuesImage] = (),
) -> str:
    """Render the artifacts that concern a target of ``kind`` into its text
    (``images``: a helm-values target's parameter names)."""
    image_artifacts = [a for a in artifacts if a.kind == "image"]
    charts = [a for a in artifacts if a.kind == "chart"]
    if kind == "kustomize-images":
        return render_kustomization(text, image_artifacts, digest=digest, file=file)
    if kind == "kustomize-helm":
        return render_kustomization(text, charts, digest=digest, file=file)
    if kind == "helmrelease":
        return render_helmrelease(text, charts, file=file)
    if kind == "application":
        return render_application(text, charts, file=file)
    if kind == "helm-values":
        return render_helm_values(text, artifacts, images, digest=digest, file=file)
    dialect = FLUX if kind == "flux-imagepolicy" else RECONCILER
    return render_markers(text, project, artifacts, file=file, dialect=dialect)


def current_versions(
    kind: TargetKind,
    text: str,
    artifacts: Sequence[Artifact],
    *,
    project: str,
    file: str,
    images: Sequence[HelmValuesImage] = (),
) -> dict[str, Current]:
    """What a target file currently holds for each artifact, by package name.

    Packages the file does not mention are absent. Used for drift detection and
    to avoid downgrades; only ``package``, ``kind`` and ``name`` of the
    artifacts matter here.
    """
    found: dict[str, Current]
    if kind in ("kustomize-images", "kustomize-helm"):
        state = read_kustomization(text, file=file)
        by_name = state.images if kind == "kustomize-images" else state.charts
        wanted = "image" if kind == "kustomize-images" else "chart"
        return {
            a.package: by_name[a.name] for a in artifacts if a.kind == wanted and a.name in by_name
        }
    if kind in ("helmrelease", "application"):
        found = (read_helmrelease if kind == "helmrelease" else read_application)(text, file=file)
        return {
            a.package: found[a.name] for a in artifacts if a.kind == "chart" and a.name in found
        }
    if kind == "helm-values":
        return read_helm_values(text, artifacts, images, file=file)
    dialect = FLUX if kind == "flux-imagepolicy" else RECONCILER
    found = read_markers(text, project, file=file, dialect=dialect)
    return {a.package: found[a.package] for a in artifacts if a.package in found}
