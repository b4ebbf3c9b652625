"""Chart version targets shared by Argo CD (``Application``) and Flux (``HelmRelease``):
both find chart references in a manifest and set one version key beside each."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ruamel.yaml.comments import CommentedMap

from reconciler.errors import RenderError
from reconciler.rendering.artifacts import Artifact, Current, validate_artifacts
from reconciler.rendering.yamlsplice import Plan, Source, load, scalar_text

__all__ = ["ChartRefs", "read_chart_versions", "render_chart_versions"]

ChartRefs = Callable[[Sequence[Any]], Iterable[tuple[tuple[Any, ...], CommentedMap, str]]]
"""(path, mapping holding the version key, chart name) of every chart reference in docs."""


def render_chart_versions(
    text: str,
    artifacts: Sequence[Artifact],
    *,
    file: str,
    refs: ChartRefs,
    version_key: str,
    owner: str,
) -> str:
    """Set ``version_key`` of every reference to a chart artifact.

    Image artifacts are ignored; every chart artifact must be found (``owner`` names
    what should use it), since a target file that silently lacks a chart would never
    deploy it.
    """
    charts = [a for a in artifacts if a.kind == "chart"]
    validate_artifacts(charts, file)
    if not charts:
        return text
    plan = Plan(text, file)
    for artifact in charts:
        matches = [(p, m) for p, m, chart in refs(plan.docs) if chart == artifact.name]
        if not matches:
            raise RenderError(file, f"no {owner} uses chart {artifact.name}")
        for path, mapping in matches:
            plan.set_keys(mapping, path, {version_key: artifact.version}, flow=False)
    return plan.result()


def read_chart_versions(
    text: str, *, file: str, refs: ChartRefs, version_key: str
) -> dict[str, Current]:
    """The version each referenced chart has now, by chart name."""
    src = Source(text)
    return {
        chart: Current(version=scalar_text(src, mapping, version_key, file))
        for _, mapping, chart in refs(load(text, file))
    }
