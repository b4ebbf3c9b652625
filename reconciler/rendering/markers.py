"""Marker targets: any scalar followed by a ``# {"$reconciler": "project:package[:suffix]"}``
comment, in the style of Flux's ``$imagepolicy`` setters."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from reconciler.errors import RenderError
from reconciler.rendering.artifacts import Artifact, Current, validate_artifacts
from reconciler.rendering.yamlsplice import (
    LINE_BREAK,
    Plan,
    Source,
    Span,
    load,
    located_scalars,
)

__all__ = ["MARKER_KEY", "MARKER_LITERAL", "marker_packages", "read_markers", "render_markers"]

MARKER_KEY = "$reconciler"
MARKER_LITERAL = '"$reconciler"'
"""Files without this literal (quotes included) are never parsed by render_markers."""

_MARKER = re.compile(r'#\s*(\{\s*"\$reconciler"\s*:\s*"[^"\r\n]*"\s*\})')
_SUFFIXES = (None, "tag", "digest", "name", "version")


@dataclass(frozen=True)
class _ScalarRef:
    path: tuple[Any, ...]
    span: Span
    value: Any
    flow: bool


@dataclass(frozen=True)
class _Marker:
    line: int  # 0-based
    package: str
    suffix: str | None
    ref: _ScalarRef


def _scalar_refs(src: Source, docs: Sequence[Any], file: str) -> dict[int, list[_ScalarRef]]:
    """Every scalar (or empty value) that could carry a marker, by 0-based line."""
    refs: dict[int, list[_ScalarRef]] = {}
    for path, span, value, flow in located_scalars(src, docs, file):
        refs.setdefault(src.line_of(span.start), []).append(_ScalarRef(path, span, value, flow))
    return refs


def _markers(src: Source, docs: Sequence[Any], project: str, file: str) -> list[_Marker]:
    refs: dict[int, list[_ScalarRef]] | None = None
    found: list[_Marker] = []
    for line in range(len(src.starts)):
        content = src.line(line)
        if MARKER_LITERAL not in content:
            continue
        for match in _MARKER.finditer(content):
            try:
                setter = str(json.loads(match.group(1))[MARKER_KEY])
            except (ValueError, KeyError):
                continue
            parts = setter.split(":")
            if parts[0] != project:
                continue
            if len(parts) not in (2, 3) or (parts[2:] and parts[2] not in _SUFFIXES):
                raise RenderError(file, f"line {line + 1}: malformed marker {setter!r}")
            if refs is None:
                refs = _scalar_refs(src, docs, file)
            comment_at = src.starts[line] + match.start()
            before = [r for r in refs.get(line, []) if r.span.end <= comment_at]
            if not before:
                raise RenderError(file, f"line {line + 1}: marker {setter!r} follows no value")
            ref = max(before, key=lambda r: r.span.start)
            found.append(_Marker(line, parts[1], parts[2] if len(parts) == 3 else None, ref))
    return found


def _marker_value(marker: _Marker, artifact: Artifact, file: str) -> str:
    name = artifact.new_name or artifact.name
    if marker.suffix in ("tag", "version"):
        return artifact.version
    if marker.suffix == "name":
        return name
    if marker.suffix == "digest":
        if artifact.digest is None:
            raise RenderError(
                file,
                f"line {marker.line + 1}: marker wants a digest, none known for {artifact.package}",
            )
        return artifact.digest
    full = f"{name}:{artifact.version}"
    return f"{full}@{artifact.digest}" if artifact.digest else full


def marker_packages(text: str, project: str) -> set[str]:
    """The packages ``project``'s markers in ``text`` name (a text scan, no YAML parse)."""
    if MARKER_LITERAL not in text:
        return set()
    found = set()
    lines = (line for line in LINE_BREAK.split(text) if MARKER_LITERAL in line)
    for match in (m for line in lines for m in _MARKER.finditer(line)):
        try:
            setter = str(json.loads(match.group(1))[MARKER_KEY])
        except (ValueError, KeyError):
            continue
        owner, _, rest = setter.partition(":")
        if owner == project and rest:
            found.add(rest.partition(":")[0])
    return found


def _no_marker(file: str, project: str, by_package: Mapping[str, Artifact]) -> RenderError:
    example = f'# {{"{MARKER_KEY}": "{project}:{min(by_package)}"}}'
    return RenderError(
        file,
        f"markers target: no marker for {', '.join(sorted(by_package))} of project "
        f"{project} (such as {example}), so nothing would be rendered",
    )


def render_markers(text: str, project: str, artifacts: Sequence[Artifact], *, file: str) -> str:
    """Rewrite scalars marked ``# {"$reconciler": "<project>:<package>[:suffix]"}``.

    Suffix none: ``name:tag`` (``@digest`` appended when known); ``:tag`` and
    ``:version``: the version; ``:name``: the image name (``new_name`` if set);
    ``:digest``: the digest. Markers of other projects, and of packages not in
    ``artifacts``, are left alone. A file with no marker for any of the
    artifacts is an error (found without parsing the YAML): rendering nothing
    there would record a deployment that never reached the file.
    """
    validate_artifacts(artifacts, file)
    if not artifacts:
        return text
    by_package = {a.package: a for a in artifacts}
    if not marker_packages(text, project) & by_package.keys():
        raise _no_marker(file, project, by_package)
    plan = Plan(text, file)
    for marker in _markers(plan.src, plan.docs, project, file):
        artifact = by_package.get(marker.package)
        if artifact is None:
            continue
        value = _marker_value(marker, artifact, file)
        ref = marker.ref
        if isinstance(ref.value, str) and ref.value == value:
            continue
        plan.set_scalar(ref.span, value, ref.path, ref.flow)
    return plan.result()


def read_markers(text: str, project: str, *, file: str) -> dict[str, Current]:
    """What this project's markers currently hold, by package."""
    if MARKER_LITERAL not in text:
        return {}
    src = Source(text)
    out: dict[str, Current] = {}
    for marker in _markers(src, load(text, file), project, file):
        span = marker.ref.span
        raw = marker.ref.value
        written = raw if isinstance(raw, str) else src.text[span.start : span.end]
        if raw is None:
            continue
        current = out.get(marker.package, Current())
        if marker.suffix in ("tag", "version"):
            current = replace(current, version=str(written))
        elif marker.suffix == "digest":
            current = replace(current, digest=str(written))
        elif marker.suffix == "name":
            current = replace(current, name=str(written))
        else:
            reference, _, digest = str(written).partition("@")
            slash = reference.rfind("/")
            colon = reference.rfind(":")
            name, tag = (
                (reference[:colon], reference[colon + 1 :]) if colon > slash else (reference, None)
            )
            current = Current(version=tag, digest=digest or None, name=name)
        out[marker.package] = current
    return out
