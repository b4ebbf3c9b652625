"""Flux targets: a ``HelmRelease``'s ``spec.chart.spec.version``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ruamel.yaml.comments import CommentedMap

from reconciler.errors import RenderError
from reconciler.rendering.artifacts import Artifact, Current, validate_artifacts
from reconciler.rendering.yamlsplice import Plan, Source, get, load, scalar_text

__all__ = ["read_helmrelease", "render_helmrelease"]


def _helmrelease_specs(docs: Sequence[Any]) -> Iterator[tuple[tuple[Any, ...], CommentedMap]]:
    for index, doc in enumerate(docs):
        if get(doc, "kind") == "HelmRelease":
            spec = get(doc, "spec", "chart", "spec")
            if isinstance(spec, CommentedMap) and isinstance(spec.get("chart"), str):
                yield (index, "spec", "chart", "spec"), spec


def render_helmrelease(text: str, artifacts: Sequence[Artifact], *, file: str) -> str:
    """Set ``spec.chart.spec.version`` of each HelmRelease whose chart is an artifact.

    Image artifacts are ignored; every chart artifact must be found, since a
    target file that silently lacks a chart would never deploy it.
    """
    charts = [a for a in artifacts if a.kind == "chart"]
    validate_artifacts(charts, file)
    if not charts:
        return text
    plan = Plan(text, file)
    for artifact in charts:
        matches = [(p, s) for p, s in _helmrelease_specs(plan.docs) if s["chart"] == artifact.name]
        if not matches:
            raise RenderError(file, f"no HelmRelease uses chart {artifact.name}")
        for path, spec in matches:
            plan.set_keys(spec, path, {"version": artifact.version}, flow=False)
    return plan.result()


def read_helmrelease(text: str, *, file: str) -> dict[str, Current]:
    src = Source(text)
    return {
        spec["chart"]: Current(version=scalar_text(src, spec, "version", file))
        for _, spec in _helmrelease_specs(load(text, file))
    }
