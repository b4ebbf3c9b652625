"""Argo CD targets: an ``Application``'s ``spec.source(s).targetRevision`` for Helm
sources, and Argo CD Image Updater's helm-values write-back (``helm-values``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ruamel.yaml.comments import CommentedMap

from reconciler.errors import RenderError
from reconciler.model import HelmValuesImage
from reconciler.rendering.artifacts import Artifact, Current, validate_artifacts
from reconciler.rendering.charts import read_chart_versions, render_chart_versions
from reconciler.rendering.yamlsplice import Plan, Source, get, load, mappings, scalar_text

__all__ = ["read_application", "read_helm_values", "render_application", "render_helm_values"]


def _application_sources(
    docs: Sequence[Any],
) -> Iterator[tuple[tuple[Any, ...], CommentedMap, str]]:
    """(path, source mapping, chart name) of every Helm source of every Application."""
    for index, doc in enumerate(docs):
        if get(doc, "kind") != "Application":
            continue
        candidates: list[tuple[tuple[Any, ...], Any]] = [
            ((index, "spec", "source"), get(doc, "spec", "source"))
        ]
        for item_index, source in mappings(get(doc, "spec", "sources")):
            candidates.append(((index, "spec", "sources", item_index), source))
        for path, source in candidates:
            if not isinstance(source, CommentedMap):
                continue
            chart = source.get("chart")
            repo = source.get("repoURL")
            if not isinstance(chart, str) and isinstance(repo, str) and repo.startswith("oci://"):
                chart = repo.rstrip("/").rsplit("/", 1)[-1]  # Argo CD 3.1+ OCI source type
            if isinstance(chart, str):
                yield path, source, chart


def render_application(text: str, artifacts: Sequence[Artifact], *, file: str) -> str:
    """Set ``targetRevision`` of Application sources (``spec.source``, ``spec.sources[]``)
    whose ``chart`` (or OCI ``repoURL`` basename) is a chart artifact."""
    return render_chart_versions(
        text,
        artifacts,
        file=file,
        refs=_application_sources,
        version_key="targetRevision",
        owner="Application source",
    )


def read_application(text: str, *, file: str) -> dict[str, Current]:
    return read_chart_versions(
        text, file=file, refs=_application_sources, version_key="targetRevision"
    )


# --- Argo CD Image Updater's helm-values write-back target -------------------------------


def _values_writes(
    artifacts: Sequence[Artifact], images: Sequence[HelmValuesImage], *, digest: bool, file: str
) -> dict[str, tuple[str, str]]:
    """dotted parameter name -> (value, package) for every image artifact."""
    by_package = {i.package: i for i in images}
    writes: dict[str, tuple[str, str]] = {}
    for artifact in artifacts:
        keys = by_package.get(artifact.package) if images else HelmValuesImage(artifact.package)
        if keys is None:
            continue  # the target names other packages only
        name = artifact.new_name or artifact.name
        reference = f"{name}:{artifact.version}"
        if digest and artifact.digest:
            reference += f"@{artifact.digest}"
        values = {keys.name: name, keys.tag: artifact.version, keys.spec: reference}
        if keys.digest:
            if artifact.digest is None:
                raise RenderError(file, f"{artifact.package}: {keys.digest} wants a digest")
            values[keys.digest] = artifact.digest
        for key, value in values.items():
            if key is None:
                continue
            other = writes.setdefault(key, (value, artifact.package))
            if other[0] != value:
                raise RenderError(
                    file,
                    f"packages {other[1]} and {artifact.package} both write {key}: give each "
                    "its own parameter names in the target's images",
                )
    return writes


def _values_root(plan: Plan) -> CommentedMap:
    root = plan.docs[0] if plan.docs else None
    if not isinstance(root, CommentedMap):
        raise RenderError(plan.file, "a values file must be a mapping")
    return root


def render_helm_values(
    text: str,
    artifacts: Sequence[Artifact],
    images: Sequence[HelmValuesImage] = (),
    *,
    digest: bool,
    file: str,
) -> str:
    """Write image artifacts into a Helm values file the way Argo CD Image Updater's
    ``write-back-target: helmvalues`` does: each dotted parameter name (default
    ``image.name`` and ``image.tag``) is a path into the values; the last key is
    added when missing, the mappings above it must exist."""
    artifacts = [a for a in artifacts if a.kind == "image"]
    validate_artifacts(artifacts, file)
    writes = _values_writes(artifacts, images, digest=digest, file=file)
    if not writes:
        if images:
            raise RenderError(file, "helm-values target: none of its images is in the release")
        return text
    plan = Plan(text, file)
    root = _values_root(plan)
    by_parent: dict[tuple[str, ...], dict[str, str]] = {}
    for key, (value, _) in writes.items():
        *parent, leaf = key.split(".")
        by_parent.setdefault(tuple(parent), {})[leaf] = value
    for path, values in sorted(by_parent.items()):
        mapping = get(root, *path) if path else root
        if not isinstance(mapping, CommentedMap):
            missing = ".".join(path)
            raise RenderError(file, f"helm-values target: {missing} is not a mapping in the file")
        plan.set_keys(mapping, (0, *path), values, flow=False)
    return plan.result()


def read_helm_values(
    text: str,
    artifacts: Sequence[Artifact],
    images: Sequence[HelmValuesImage] = (),
    *,
    file: str,
) -> dict[str, Current]:
    """What a values file holds for each image artifact, by package."""
    docs = load(text, file)
    root = docs[0] if docs else None
    if not isinstance(root, CommentedMap):
        return {}
    src = Source(text)
    by_package = {i.package: i for i in images}
    found: dict[str, Current] = {}
    for artifact in (a for a in artifacts if a.kind == "image"):
        keys = by_package.get(artifact.package) if images else HelmValuesImage(artifact.package)
        if keys is None:
            continue
        tag, name = _written(src, root, keys.tag, file), _written(src, root, keys.name, file)
        digest = _written(src, root, keys.digest, file)
        spec = _written(src, root, keys.spec, file)
        if spec is not None:
            reference, _, spec_digest = spec.partition("@")
            slash, colon = reference.rfind("/"), reference.rfind(":")
            if colon > slash:
                name, tag = reference[:colon], reference[colon + 1 :]
            digest = digest or spec_digest or None
        if tag is not None or name is not None:
            found[artifact.package] = Current(version=tag, digest=digest, name=name)
    return found


def _written(src: Source, root: CommentedMap, dotted: str | None, file: str) -> str | None:
    """The value at a dotted parameter name, exactly as written (None: not there)."""
    if dotted is None:
        return None
    *parent, leaf = dotted.split(".")
    mapping = get(root, *parent) if parent else root
    return scalar_text(src, mapping, leaf, file) if isinstance(mapping, CommentedMap) else None
