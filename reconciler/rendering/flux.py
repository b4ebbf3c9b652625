"""Flux targets: a ``HelmRelease``'s ``spec.chart.spec.version``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ruamel.yaml.comments import CommentedMap

from reconciler.rendering.artifacts import Artifact, Current
from reconciler.rendering.charts import read_chart_versions, render_chart_versions
from reconciler.rendering.yamlsplice import get

__all__ = ["read_helmrelease", "render_helmrelease"]


def _helmrelease_specs(
    docs: Sequence[Any],
) -> Iterator[tuple[tuple[Any, ...], CommentedMap, str]]:
    """(path, ``spec.chart.spec``, chart name) of every HelmRelease."""
    for index, doc in enumerate(docs):
        if get(doc, "kind") == "HelmRelease":
            spec = get(doc, "spec", "chart", "spec")
            if isinstance(spec, CommentedMap) and isinstance(spec.get("chart"), str):
                yield (index, "spec", "chart", "spec"), spec, spec["chart"]


def render_helmrelease(text: str, artifacts: Sequence[Artifact], *, file: str) -> str:
    """Set ``spec.chart.spec.version`` of each HelmRelease whose chart is an artifact."""
    return render_chart_versions(
        text,
        artifacts,
        file=file,
        refs=_helmrelease_specs,
        version_key="version",
        owner="HelmRelease",
    )


def read_helmrelease(text: str, *, file: str) -> dict[str, Current]:
    return read_chart_versions(text, file=file, refs=_helmrelease_specs, version_key="version")
