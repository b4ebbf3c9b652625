"""Marker targets: any scalar followed by a setter comment naming a package.

Two dialects, the same rules:

- ours, ``# {"$reconciler": "project:package[:tag|:digest|:name|:version]"}``
  (target kind ``markers``);
- Flux's own image automation setters,
  ``# {"$imagepolicy": "namespace:policy[:tag|:name|:digest]"}`` (target kind
  ``flux-imagepolicy``), so a Flux repository switches without
  rewriting its markers. The policy name is the package name (``reconciler import
  flux`` names packages after their ImagePolicy); the namespace is not used.

Without a suffix the value is ``name:tag`` (``@digest`` appended when known), as
Flux writes it.
"""

from __future__ import annotations

import functools
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

__all__ = [
    "FLUX",
    "MARKER_KEY",
    "MARKER_LITERAL",
    "RECONCILER",
    "Dialect",
    "marker_packages",
    "read_markers",
    "render_markers",
]

MARKER_KEY = "$reconciler"
MARKER_LITERAL = '"$reconciler"'
"""Files without this literal (quotes included) are never parsed by render_markers."""


@dataclass(frozen=True)
class Dialect:
    """One family of setter comments: its JSON key, and how a setter names a package."""

    key: str
    target: str  # the target kind, for messages
    suffixes: tuple[str | None, ...]
    by_project: bool  # the setter's first part is the project (ours), or a namespace (Flux)

    @property
    def literal(self) -> str:
        return f'"{self.key}"'

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(r'#\s*(\{\s*"' + re.escape(self.key) + r'"\s*:\s*"[^"\r\n]*"\s*\})')

    def parse(self, setter: str, project: str) -> tuple[str, str | None] | None:
        """(package, suffix) named by ``setter``; None when it is not this project's.

        Raises ValueError for a malformed setter of this project.
        """
        parts = setter.split(":")
        if self.by_project and parts[0] != project:
            return None
        if len(parts) not in (2, 3) or (parts[2:] and parts[2] not in self.suffixes):
            raise ValueError(setter)
        return parts[1], parts[2] if len(parts) == 3 else None

    def example(self, project: str, package: str) -> str:
        owner = project if self.by_project else "<namespace>"
        return f'# {{"{self.key}": "{owner}:{package}"}}'


RECONCILER = Dialect(MARKER_KEY, "markers", (None, "tag", "digest", "name", "version"), True)
FLUX = Dialect("$imagepolicy", "flux-imagepolicy", (None, "tag", "digest", "name"), False)


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


def _markers(
    src: Source, docs: Sequence[Any], project: str, file: str, dialect: Dialect
) -> list[_Marker]:
    refs: dict[int, list[_ScalarRef]] | None = None
    found: list[_Marker] = []
    for line in range(len(src.starts)):
        content = src.line(line)
        if dialect.literal not in content:
            continue
        for match in dialect.pattern.finditer(content):
            try:
                setter = str(json.loads(match.group(1))[dialect.key])
            except (ValueError, KeyError):
                continue
            try:
                named = dialect.parse(setter, project)
            except ValueError:
                raise RenderError(file, f"line {line + 1}: malformed marker {setter!r}") from None
            if named is None:
                continue
            if refs is None:
                refs = _scalar_refs(src, docs, file)
            comment_at = src.starts[line] + match.start()
            before = [r for r in refs.get(line, []) if r.span.end <= comment_at]
            if not before:
                raise RenderError(file, f"line {line + 1}: marker {setter!r} follows no value")
            ref = max(before, key=lambda r: r.span.start)
            found.append(_Marker(line, named[0], named[1], ref))
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


def marker_packages(text: str, project: str, dialect: Dialect = RECONCILER) -> set[str]:
    """The packages ``project``'s markers in ``text`` name (a text scan, no YAML parse)."""
    if dialect.literal not in text:
        return set()
    found = set()
    lines = (line for line in LINE_BREAK.split(text) if dialect.literal in line)
    for match in (m for line in lines for m in dialect.pattern.finditer(line)):
        try:
            setter = str(json.loads(match.group(1))[dialect.key])
        except (ValueError, KeyError):
            continue
        try:
            named = dialect.parse(setter, project)
        except ValueError:  # malformed, but this project's: rendering says what is wrong
            named = ([*setter.split(":"), ""][1], None)
        if named is not None:
            found.add(named[0])
    return found


def _no_marker(
    file: str, project: str, by_package: Mapping[str, Artifact], dialect: Dialect
) -> RenderError:
    example = dialect.example(project, min(by_package))
    return RenderError(
        file,
        f"{dialect.target} target: no marker for {', '.join(sorted(by_package))} of project "
        f"{project} (such as {example}), so nothing would be rendered",
    )


def render_markers(
    text: str,
    project: str,
    artifacts: Sequence[Artifact],
    *,
    file: str,
    dialect: Dialect = RECONCILER,
) -> str:
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
    if not marker_packages(text, project, dialect) & by_package.keys():
        raise _no_marker(file, project, by_package, dialect)
    plan = Plan(text, file)
    for marker in _markers(plan.src, plan.docs, project, file, dialect):
        artifact = by_package.get(marker.package)
        if artifact is None:
            continue
        value = _marker_value(marker, artifact, file)
        ref = marker.ref
        if isinstance(ref.value, str) and ref.value == value:
            continue
        plan.set_scalar(ref.span, value, ref.path, ref.flow)
    return plan.result()


def read_markers(
    text: str, project: str, *, file: str, dialect: Dialect = RECONCILER
) -> dict[str, Current]:
    """What this project's markers currently hold, by package."""
    if dialect.literal not in text:
        return {}
    src = Source(text)
    out: dict[str, Current] = {}
    for marker in _markers(src, load(text, file), project, file, dialect):
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
