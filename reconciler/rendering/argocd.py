"""Argo CD targets: an ``Application``'s ``spec.source(s).targetRevision`` for Helm
sources."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ruamel.yaml.comments import CommentedMap

from reconciler.errors import RenderError
from reconciler.rendering.artifacts import Artifact, Current, validate_artifacts
from reconciler.rendering.yamlsplice import Plan, Source, get, load, mappings, scalar_text

__all__ = ["read_application", "render_application"]


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
    charts = [a for a in artifacts if a.kind == "chart"]
    validate_artifacts(charts, file)
    if not charts:
        return text
    plan = Plan(text, file)
    for artifact in charts:
        matches = [
            (p, s) for p, s, chart in _application_sources(plan.docs) if chart == artifact.name
        ]
        if not matches:
            raise RenderError(file, f"no Application source uses chart {artifact.name}")
        for path, source in matches:
            plan.set_keys(source, path, {"targetRevision": artifact.version}, flow=False)
    return plan.result()


def read_application(text: str, *, file: str) -> dict[str, Current]:
    src = Source(text)
    return {
        chart: Current(version=scalar_text(src, source, "targetRevision", file))
        for _, source, chart in _application_sources(load(text, file))
    }
