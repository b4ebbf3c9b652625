"""Write versions into manifest files with byte-exact edits.

Re-dumping a YAML file through ruamel changes indentation, comment columns, line
endings and the final newline (docs/../pitfalls.md), which would make every
release commit noisy and would fight with humans editing the same overlays. So
this module never dumps: it parses with ``yamlio.load_all`` only to *find* the
scalars to change, splices new text into the original string at those
positions, and re-parses the result to prove that exactly the intended values
changed. Everything is pure: text in, text out.

Supported targets (model.RenderTarget.kind):

- ``kustomize-images`` / ``kustomize-helm``: a kustomization's ``images[]``
  (``newTag``, ``digest``, ``newName``; missing entries are appended) and
  ``helmCharts[]`` (``version``), see ``render_kustomization``;
- ``helmrelease``: Flux ``HelmRelease`` ``spec.chart.spec.version``;
- ``application``: Argo CD ``Application`` ``spec.source(s).targetRevision``;
- ``markers``: any scalar followed by a ``# {"$reconciler": "project:package[:suffix]"}``
  comment, in the style of Flux's ``$imagepolicy`` setters.

Every value written comes from a registry, so it is validated against the OCI
tag / digest grammar first: a hostile tag holding a newline, quote or ``#`` must
not be able to inject YAML.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from reconciler import yamlio
from reconciler.errors import RenderError

__all__ = [
    "Artifact",
    "Current",
    "KustomizationVersions",
    "TargetKind",
    "current_versions",
    "marker_packages",
    "read_application",
    "read_helmrelease",
    "read_kustomization",
    "read_markers",
    "render",
    "render_application",
    "render_helmrelease",
    "render_kustomization",
    "render_markers",
]

TargetKind = Literal["kustomize-images", "kustomize-helm", "helmrelease", "application", "markers"]

MARKER_KEY = "$reconciler"
MARKER_LITERAL = '"$reconciler"'
"""Files without this literal (quotes included) are never parsed by render_markers."""


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


@dataclass(frozen=True)
class KustomizationVersions:
    images: dict[str, Current]  # by images[].name
    charts: dict[str, Current]  # by helmCharts[].name


# --- validation of registry-supplied values -------------------------------------------

_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
"""OCI distribution tag grammar."""
_CHART_VERSION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}")
"""A chart version is SemVer 2, which may carry ``+build`` metadata."""
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_IMAGE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._/:-]{0,253}[A-Za-z0-9])?")
"""Loose reference name (host[:port]/path); enough to rule out YAML syntax."""


def _validate(artifacts: Sequence[Artifact], file: str) -> None:
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


# --- scalar quoting ---------------------------------------------------------------------

_NOT_A_STRING = re.compile(
    r"""
    [-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?       # YAML 1.1 sexagesimal
    | [-+]?0b[01_]+ | [-+]?0o?[0-7_]+ | [-+]?0x[0-9a-fA-F_]+  # binary, octal, hex
    | [-+]?[0-9_]+                                         # decimal int (1.1 allows _)
    | [-+]?(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+]?[0-9]+)?  # float with a dot
    | [-+]?[0-9][0-9_]*[eE][-+]?[0-9]+                     # YAML 1.2 float without a dot
    | [-+]?\.(?:inf|Inf|INF) | \.(?:nan|NaN|NAN)
    | y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF
    | ~|null|Null|NULL|=|<<
    | [0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt\ \t].*)?           # YAML 1.1 timestamp (date tags)
    """,
    re.VERBOSE,
)
"""Plain scalars that YAML 1.1 or 1.2 (go-yaml, ruamel, PyYAML) would not read as a
string. Over-matching only costs a pair of quotes; under-matching would let
``newTag: 1.10`` reach Kustomize as the float 1.1."""

_PLAIN_SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./@+:-]*")

Style = Literal["plain", "single", "double"]


def _plain_ok(value: str, flow: bool) -> bool:
    if not _PLAIN_SAFE.fullmatch(value) or _NOT_A_STRING.fullmatch(value):
        return False
    # ':' is an indicator inside flow collections for some parsers; never at the end.
    return not value.endswith(":") and not (flow and ":" in value)


def _quote(value: str, style: Style, flow: bool) -> str:
    """``value`` as a YAML scalar in ``style``, quoted when plain would misread it."""
    if style == "plain" and _plain_ok(value, flow):
        return value
    if style == "single":
        return "'" + value.replace("'", "''") + "'"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- the original text and positions in it -----------------------------------------------

_LINE_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")
"""The line breaks ruamel counts; its (line, col) positions depend on them."""


class _Source:
    def __init__(self, text: str) -> None:
        self.text = text
        self.newline = "\r\n" if "\r\n" in text else "\n"
        self.bom = 1 if text.startswith("\ufeff") else 0  # ruamel columns skip it
        self.starts = [0]
        self.ends: list[int] = []
        for match in _LINE_BREAK.finditer(text):
            self.ends.append(match.start())
            self.starts.append(match.end())
        self.ends.append(len(text))

    def offset(self, line: int, col: int) -> int:
        return self.starts[line] + col + (self.bom if line == 0 else 0)

    def line_of(self, offset: int) -> int:
        lo, hi = 0, len(self.starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def column(self, offset: int) -> int:
        return offset - self.starts[self.line_of(offset)]

    def line(self, line: int) -> str:
        return self.text[self.starts[line] : self.ends[line]]

    def block_end(self, line: int, indent: int) -> int:
        """End offset of the last content line of a block node starting on ``line``.

        The node goes on while lines are indented deeper than ``indent``, or are
        ``- `` items at ``indent`` (a block sequence may sit at its key's column).
        Comment and blank lines are skipped, so an insertion lands after the last
        real content and trailing comments stay where they were.
        """
        last = line
        for number in range(line + 1, len(self.starts)):
            content = self.line(number)
            stripped = content.lstrip(" ")
            if not stripped.strip() or stripped.startswith("#"):
                continue
            if re.match(r"(?:---|\.\.\.)(?:\s|$)", content):
                break
            depth = len(content) - len(stripped)
            if depth > indent or (depth == indent and re.match(r"-(?:\s|$)", stripped)):
                last = number
                continue
            break
        return self.ends[last]


@dataclass(frozen=True)
class _Span:
    """Where a scalar's text sits: ``text[start:end]``, without anchor or tag."""

    start: int
    end: int
    style: Literal["plain", "single", "double", "alias", "empty"]
    anchor: str | None = None


_BREAKS = "\r\n\x85\u2028\u2029"


def _scalar_span(src: _Source, pos: int, flow: bool, file: str) -> _Span:
    text = src.text
    anchor = None
    while pos < len(text) and text[pos] in "&!":
        match = re.compile(r"[&!][^\s,\[\]{}]*[ \t]*").match(text, pos)
        assert match is not None  # the character class always matches one char
        if text[pos] == "&":
            anchor = match.group().strip()[1:]
        pos = match.end()
    line = src.line_of(pos) + 1
    if pos >= len(text) or text[pos] in _BREAKS:
        raise RenderError(file, f"line {line}: value after an anchor or tag on another line")
    first = text[pos]
    if first in "|>":
        raise RenderError(file, f"line {line}: block scalars are not supported as targets")
    if first == "*":
        match = re.compile(r"\*[^\s,\[\]{}]+").match(text, pos)
        assert match is not None
        return _Span(pos, match.end(), "alias")
    if first in "\"'":
        index = pos + 1
        while index < len(text):
            char = text[index]
            if char in _BREAKS:
                raise RenderError(file, f"line {line}: multi-line quoted scalars are not supported")
            if first == '"' and char == "\\":
                index += 2
                continue
            if char == first:
                if first == "'" and text.startswith("''", index):
                    index += 2
                    continue
                style: Literal["single", "double"] = "double" if first == '"' else "single"
                return _Span(pos, index + 1, style, anchor)
            index += 1
        raise RenderError(file, f"line {line}: unterminated quoted scalar")
    index = pos
    while index < len(text):
        char = text[index]
        if char in _BREAKS or (char == "#" and text[index - 1] in " \t"):
            break
        if flow and (char in ",[]{}" or (char == ":" and text[index + 1 : index + 2] in " \t,]}")):
            break
        index += 1
    end = index
    while end > pos and text[end - 1] in " \t":
        end -= 1
    return _Span(pos, end, "plain", anchor)


def _key_end(src: _Source, mapping: CommentedMap, key: str, file: str) -> int:
    """Offset just after the ``:`` that follows ``key`` in ``mapping``."""
    text = src.text
    line, col = mapping.lc.key(key)
    pos = src.offset(line, col)
    if text[pos : pos + 1] in ("'", '"'):
        pos = _scalar_span(src, pos, True, file).end
    while pos < len(text):
        char = text[pos]
        if char == ":" and text[pos + 1 : pos + 2] in ("", " ", "\t", ",", "}", "]", *_BREAKS):
            return pos + 1
        if char in _BREAKS:
            break
        pos += 1
    raise RenderError(file, f"line {line + 1}: cannot find the ':' after key {key!r}")


def _value_span(src: _Source, mapping: CommentedMap, key: str, flow: bool, file: str) -> _Span:
    """The span of ``mapping[key]``'s scalar; style "empty" (at the colon) when absent."""
    text = src.text
    colon_end = _key_end(src, mapping, key, file)
    pos = colon_end
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    at_line_end = pos >= len(text) or text[pos] in _BREAKS or text[pos] == "#"
    if not at_line_end and not (flow and text[pos] in ",}"):
        # Positions from ruamel point at an alias's anchor, not at the alias:
        # scanning from the key finds what is really written here.
        return _scalar_span(src, pos, flow, file)
    if mapping[key] is None:
        return _Span(colon_end, colon_end, "empty")
    value_pos = src.offset(*mapping.lc.value(key))
    if value_pos <= colon_end:
        raise RenderError(file, f"cannot locate the value of {key!r}")
    return _scalar_span(src, value_pos, flow, file)


def _is_flow(node: Any) -> bool:
    return bool(node.fa.flow_style())


def _own_keys(mapping: CommentedMap) -> set[Any]:
    """Keys written in this mapping itself (not inherited through ``<<`` merges)."""
    return set(mapping.lc.data)


# --- plans: edits to the text plus the expected change to the data --------------------

_APPEND = object()
"""Path element: append to the list instead of setting an index."""


@dataclass(frozen=True)
class _Edit:
    start: int
    end: int
    text: str


def _plain(node: Any, memo: dict[int, Any]) -> Any:
    """Parsed YAML as plain Python, sharing objects where the YAML shares them (aliases)."""
    if id(node) in memo:
        return memo[id(node)]
    if isinstance(node, Mapping):
        out: dict[Any, Any] = {}
        memo[id(node)] = out
        for key, value in node.items():
            out[_plain(key, memo) if isinstance(key, str | int | float) else key] = _plain(
                value, memo
            )
        return out
    if isinstance(node, list):
        items: list[Any] = []
        memo[id(node)] = items
        items.extend(_plain(item, memo) for item in node)
        return items
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return ("float", repr(float(node)))  # so that .nan equals itself
    return node


class _Plan:
    """Edits to one file's text and the data change they must produce."""

    def __init__(self, text: str, file: str) -> None:
        self.src = _Source(text)
        self.file = file
        self.docs = _load(text, file)
        self.edits: list[_Edit] = []
        self.mutations: list[tuple[tuple[Any, ...], Any]] = []

    # Scalars ---------------------------------------------------------------------

    def set_scalar(self, span: _Span, value: str, path: tuple[Any, ...], flow: bool) -> None:
        if span.anchor and re.search(
            rf"\*{re.escape(span.anchor)}(?![^\s,\[\]{{}}])", self.src.text
        ):
            line = self.src.line_of(span.start) + 1
            raise RenderError(
                self.file,
                f"line {line}: the value is shared through anchor &{span.anchor}; "
                "refusing to change the aliases too",
            )
        if span.style == "empty":
            self.edits.append(_Edit(span.start, span.end, " " + _quote(value, "plain", flow)))
        else:
            style: Style = "plain" if span.style == "alias" else span.style
            self.edits.append(_Edit(span.start, span.end, _quote(value, style, flow)))
        self.mutations.append((path, value))

    def set_keys(
        self,
        mapping: CommentedMap,
        path: tuple[Any, ...],
        values: Mapping[str, str],
        *,
        flow: bool,
        styles: Mapping[str, Style] | None = None,
    ) -> None:
        """Set string values in ``mapping``; keys it lacks are added at its end."""
        flow = flow or _is_flow(mapping)
        own = _own_keys(mapping)
        missing: dict[str, str] = {}
        for key, value in values.items():
            if key not in own:
                missing[key] = value
                continue
            current = mapping[key]
            if isinstance(current, str) and current == value:
                continue
            if isinstance(current, CommentedMap | CommentedSeq):
                line = yamlio.position(mapping, key)
                raise RenderError(self.file, f"line {line}: {key} holds a collection, not a value")
            self.set_scalar(
                _value_span(self.src, mapping, key, flow, self.file), value, (*path, key), flow
            )
        if missing:
            rendered = {
                k: _quote(v, (styles or {}).get(k, "plain"), flow) for k, v in missing.items()
            }
            self.add_entries(mapping, rendered, flow)
            for key, value in missing.items():
                self.mutations.append(((*path, key), value))

    # Insertions --------------------------------------------------------------------

    def add_entries(self, mapping: CommentedMap, rendered: Mapping[str, str], flow: bool) -> None:
        """Append ``key: <rendered text>`` entries to a mapping, in its own style."""
        if flow:
            body = ", ".join(f"{k}: {v}" for k, v in rendered.items())
            self.insert_in_flow(self.src.offset(mapping.lc.line, mapping.lc.col), body)
            return
        keys = [k for k in mapping if k in _own_keys(mapping)]
        if not keys:
            raise RenderError(self.file, "cannot add keys to an empty mapping")
        last_line, indent = mapping.lc.key(keys[-1])
        nl = self.src.newline
        lines = "".join(f"{nl}{' ' * indent}{k}:{_block_value(v)}" for k, v in rendered.items())
        at = self.src.block_end(last_line, indent)
        self.edits.append(_Edit(at, at, lines))

    def insert_in_flow(self, open_offset: int, body: str) -> None:
        """Insert ``body`` as the last element of the flow collection opening at the offset."""
        text = self.src.text
        depth = 0
        last = open_offset  # last significant character before the closing bracket
        index = open_offset
        while index < len(text):
            char = text[index]
            if char in "\"'":
                index = _scalar_span(self.src, index, True, self.file).end
                last = index - 1
                continue
            if char == "#" and (index == 0 or text[index - 1] in " \t" + _BREAKS):
                while index < len(text) and text[index] not in _BREAKS:
                    index += 1
                continue
            if char in "[{":
                depth += 1
            elif char in "]}":
                depth -= 1
                if depth == 0:
                    break
            if not char.isspace():
                last = index
            index += 1
        else:
            raise RenderError(self.file, "unterminated flow collection")
        if last == open_offset:
            insert = body
        elif text[last] == ",":
            insert = f" {body},"
        else:
            insert = f", {body}"
        self.edits.append(_Edit(last + 1, last + 1, insert))

    # Result ----------------------------------------------------------------------------

    def result(self) -> str:
        """Apply the edits, re-parse, and check the data changed exactly as planned."""
        if not self.edits:
            return self.src.text
        text = self.src.text
        pieces: list[str] = []
        cursor = 0
        for edit in sorted(self.edits, key=lambda e: (e.start, e.end)):
            if edit.start < cursor:
                raise RenderError(self.file, "internal error: overlapping edits")
            pieces += [text[cursor : edit.start], edit.text]
            cursor = edit.end
        pieces.append(text[cursor:])
        new_text = "".join(pieces)

        expected = _plain(self.docs, {})
        for path, value in self.mutations:
            _apply(expected, path, value)
        try:
            actual = _plain(_load(new_text, self.file), {})
        except RenderError as error:
            raise RenderError(self.file, f"edited text does not parse: {error}") from error
        if actual != expected:
            raise RenderError(self.file, "edited text does not read back as intended")
        return new_text


def _block_value(rendered: str) -> str:
    """Rendered values for new block keys start with a newline when they are blocks."""
    return rendered if rendered.startswith(("\n", "\r")) else " " + rendered


def _apply(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        data = data[step]
    if path[-1] is _APPEND:
        data.append(value)
    else:
        data[path[-1]] = value


def _load(text: str, file: str) -> list[Any]:
    """All documents of a target file; hostile shapes (huge, alias bombs, deep
    nesting that would exhaust the stack) are refused before building any data."""
    if len(text) > yamlio.MAX_FILE_BYTES:
        raise RenderError(file, f"larger than {yamlio.MAX_FILE_BYTES} bytes")
    try:
        problem = yamlio.limit_problem(text)
        if problem is not None:
            line, message = problem
            raise RenderError(file, f"line {line}: {message}" if line else message)
        return yamlio.load_all(text)
    except YAMLError as error:
        raise RenderError(file, f"not valid YAML: {error}") from error


def _mappings(seq: Any) -> Iterator[tuple[int, CommentedMap]]:
    if isinstance(seq, CommentedSeq):
        for index, item in enumerate(seq):
            if isinstance(item, CommentedMap):
                yield index, item


def _get(node: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(node, CommentedMap):
            return None
        node = node.get(key)
    return node


def _scalar_text(src: _Source, mapping: CommentedMap, key: str, file: str) -> str | None:
    """A value exactly as written (``1.10`` stays ``1.10`` even though YAML reads 1.1)."""
    if key not in _own_keys(mapping) or mapping[key] is None:
        return None
    value = mapping[key]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, CommentedMap | CommentedSeq):
        return None
    span = _value_span(src, mapping, key, _is_flow(mapping), file)
    return src.text[span.start : span.end]


def _style_of(src: _Source, entries: Sequence[CommentedMap], key: str, file: str) -> Style:
    """The quoting style siblings use for ``key``, so new entries look like old ones."""
    for entry in entries:
        if key in _own_keys(entry) and isinstance(entry[key], str):
            style = _value_span(src, entry, key, _is_flow(entry), file).style
            if style in ("single", "double"):
                return "single" if style == "single" else "double"
            return "plain"
    return "plain"


# --- kustomization ---------------------------------------------------------------------


def render_kustomization(
    text: str, artifacts: Sequence[Artifact], *, digest: bool, file: str
) -> str:
    """Set ``images[]`` (image artifacts) and ``helmCharts[]`` (chart artifacts).

    Images are matched on ``name``; ``newTag`` is set, ``newName`` when the
    artifact has one, ``digest`` when ``digest`` is true (a digest must then be
    known). An image without an entry gets one appended to ``images:`` (which is
    created at the end of the document when missing). With ``digest`` false the
    ``digest`` key is not managed; an entry pinning a digest other than the
    artifact's would make Kustomize deploy ``name:newtag@olddigest``, the old
    image, so that is refused rather than silently written. Charts must already
    have a ``helmCharts`` entry (its ``repo`` is not ours to invent); only
    ``version`` is set.
    """
    _validate(artifacts, file)
    if not artifacts:
        return text
    plan = _Plan(text, file)
    unmatched: list[Artifact] = []
    for artifact in artifacts:
        if artifact.kind == "image":
            if not _render_image_entries(plan, artifact, digest):
                unmatched.append(artifact)
        elif not _render_chart_entries(plan, artifact):
            raise RenderError(file, f"no helmCharts entry named {artifact.name}")
    if unmatched:
        _append_images(plan, unmatched, digest)
    return plan.result()


def _image_values(
    artifact: Artifact, entry: CommentedMap | None, digest: bool, file: str
) -> dict[str, str]:
    values: dict[str, str] = {}
    if artifact.new_name:
        values["newName"] = artifact.new_name
    values["newTag"] = artifact.version
    if digest:
        if artifact.digest is None:
            raise RenderError(
                file, f"{artifact.package}: digest rendering is on but no digest is known"
            )
        values["digest"] = artifact.digest
    elif entry is not None and entry.get("digest") and entry.get("digest") != artifact.digest:
        tag_changes = entry.get("newTag") != artifact.version
        if tag_changes:
            raise RenderError(
                file,
                f"images entry {artifact.name} pins digest {entry['digest']} which would "
                "override the new tag; remove it or enable digest rendering",
            )
    return values


def _render_image_entries(plan: _Plan, artifact: Artifact, digest: bool) -> bool:
    found = False
    for doc_index, doc in enumerate(plan.docs):
        images = _get(doc, "images")
        for item_index, entry in _mappings(images):
            if entry.get("name") != artifact.name:
                continue
            found = True
            values = _image_values(artifact, entry, digest, plan.file)
            plan.set_keys(
                entry,
                (doc_index, "images", item_index),
                values,
                flow=_is_flow(images),
                styles=_styles(plan, images, values),
            )
    return found


def _render_chart_entries(plan: _Plan, artifact: Artifact) -> bool:
    found = False
    for doc_index, doc in enumerate(plan.docs):
        charts = _get(doc, "helmCharts")
        for item_index, entry in _mappings(charts):
            if entry.get("name") == artifact.name:
                found = True
                plan.set_keys(
                    entry,
                    (doc_index, "helmCharts", item_index),
                    {"version": artifact.version},
                    flow=_is_flow(charts),
                )
    return found


def _styles(plan: _Plan, seq: Any, values: Mapping[str, str]) -> dict[str, Style]:
    entries = [entry for _, entry in _mappings(seq)]
    return {key: _style_of(plan.src, entries, key, plan.file) for key in values}


def _append_images(plan: _Plan, artifacts: Sequence[Artifact], digest: bool) -> None:
    """Append entries for images the file does not mention yet."""
    target = next(
        (i for i, d in enumerate(plan.docs) if isinstance(_get(d, "images"), CommentedSeq)), None
    )
    if target is None:
        target = _kustomization_doc(plan)
    doc = plan.docs[target]
    images = doc.get("images")
    entries = [{"name": a.name, **_image_values(a, None, digest, plan.file)} for a in artifacts]
    src, nl = plan.src, plan.src.newline

    if isinstance(images, CommentedSeq) and (_is_flow(images) or not images):
        # An empty sequence can only be written in flow style: `images: []`.
        styles = _styles(plan, images, entries[0])
        body = ", ".join(_flow_mapping(entry, styles) for entry in entries)
        plan.insert_in_flow(_collection_start(plan, doc, "images"), body)
    elif isinstance(images, CommentedSeq) and images:
        dash_offset = _dash_offset(plan, images)
        dash = src.column(dash_offset)
        first = images[0]
        styles = _styles(plan, images, entries[0])
        if isinstance(first, CommentedMap) and _is_flow(first):
            gap = src.offset(first.lc.line, first.lc.col) - dash_offset
            lines = [" " * dash + "-" + " " * (gap - 1) + _flow_mapping(e, styles) for e in entries]
        else:
            gap = (images.lc.item(0)[1] - dash) if isinstance(first, CommentedMap) else 2
            lines = [_block_mapping(e, styles, dash, gap, nl) for e in entries]
        at = src.block_end(src.line_of(dash_offset), dash)
        plan.edits.append(_Edit(at, at, "".join(nl + line for line in lines)))
    elif "images" in _own_keys(doc) and images is None:
        _fill_empty_key(plan, doc, "images", entries)
    elif "images" in doc:
        raise RenderError(plan.file, "images: is not a list")
    else:
        if _is_flow(doc):
            raise RenderError(plan.file, "cannot add images: to a flow-style document")
        block = "".join(
            nl + _block_mapping(e, {}, doc.lc.col + _sequence_indent(doc), 2, nl) for e in entries
        )
        plan.add_entries(doc, {"images": block}, flow=False)
    for entry in entries:
        if isinstance(images, CommentedSeq):
            plan.mutations.append(((target, "images", _APPEND), entry))
    if not isinstance(images, CommentedSeq):
        plan.mutations.append(((target, "images"), entries))


def _fill_empty_key(
    plan: _Plan, doc: CommentedMap, key: str, entries: Sequence[Mapping[str, str]]
) -> None:
    """Give an empty ``key:`` (null) a block list of ``entries`` on the following lines."""
    src = plan.src
    if _is_flow(doc):
        raise RenderError(plan.file, f"{key}: is empty in a flow-style document")
    colon_end = _key_end(src, doc, key, plan.file)
    line = src.line_of(colon_end)
    rest = src.text[colon_end : src.ends[line]].strip()
    if rest and not rest.startswith("#"):
        raise RenderError(plan.file, f"line {line + 1}: {key}: holds an explicit null")
    dash = doc.lc.key(key)[1] + _sequence_indent(doc)
    block = "".join(src.newline + _block_mapping(e, {}, dash, 2, src.newline) for e in entries)
    plan.edits.append(_Edit(src.ends[line], src.ends[line], block))


def _kustomization_doc(plan: _Plan) -> int:
    mappings = [i for i, d in enumerate(plan.docs) if isinstance(d, CommentedMap)]
    kinds = [i for i in mappings if plan.docs[i].get("kind") in ("Kustomization", "Component")]
    if kinds:
        return kinds[0]
    if len(mappings) == 1:
        return mappings[0]
    raise RenderError(plan.file, "cannot tell which document is the kustomization")


def _collection_start(plan: _Plan, mapping: CommentedMap, key: str) -> int:
    """Offset of the ``[``/``{`` of ``mapping[key]``, past any anchor or tag."""
    pos = plan.src.offset(*mapping.lc.value(key))
    match = re.compile(r"(?:[&!][^\s,\[\]{}]*\s*)*").match(plan.src.text, pos)
    assert match is not None
    return match.end()


def _dash_offset(plan: _Plan, seq: CommentedSeq) -> int:
    """Offset of the ``-`` introducing the first item of a block sequence."""
    text = plan.src.text
    pos = plan.src.offset(*seq.lc.item(0)) - 1
    while pos >= 0 and text[pos] in " \t":
        pos -= 1
    if pos < 0 or text[pos] != "-":
        raise RenderError(plan.file, "cannot find the first item of images:")
    return pos


def _sequence_indent(doc: CommentedMap) -> int:
    """How far this document indents block sequences under their key (0 or 2 usually)."""
    for key, value in doc.items():
        if (
            isinstance(value, CommentedSeq)
            and value
            and not _is_flow(value)
            and key in _own_keys(doc)
        ):
            key_col = int(doc.lc.key(key)[1])
            item_line, item_col = (int(n) for n in value.lc.item(0))
            if item_line > doc.lc.key(key)[0] and item_col >= key_col + 2:
                return item_col - 2 - key_col
    return 0


def _flow_mapping(entry: Mapping[str, str], styles: Mapping[str, Style]) -> str:
    body = ", ".join(f"{k}: {_quote(v, styles.get(k, 'plain'), True)}" for k, v in entry.items())
    return "{" + body + "}"


def _block_mapping(
    entry: Mapping[str, str], styles: Mapping[str, Style], dash: int, gap: int, nl: str
) -> str:
    lines = []
    for index, (key, value) in enumerate(entry.items()):
        prefix = " " * dash + "-" + " " * (gap - 1) if index == 0 else " " * (dash + gap)
        lines.append(f"{prefix}{key}: {_quote(value, styles.get(key, 'plain'), False)}")
    return nl.join(lines)


def read_kustomization(text: str, *, file: str) -> KustomizationVersions:
    """What ``images[]`` and ``helmCharts[]`` currently say, by name."""
    src = _Source(text)
    images: dict[str, Current] = {}
    charts: dict[str, Current] = {}
    for doc in _load(text, file):
        for _, entry in _mappings(_get(doc, "images")):
            if isinstance(entry.get("name"), str):
                images[entry["name"]] = Current(
                    version=_scalar_text(src, entry, "newTag", file),
                    digest=_scalar_text(src, entry, "digest", file),
                    name=_scalar_text(src, entry, "newName", file),
                )
        for _, entry in _mappings(_get(doc, "helmCharts")):
            if isinstance(entry.get("name"), str):
                charts[entry["name"]] = Current(version=_scalar_text(src, entry, "version", file))
    return KustomizationVersions(images=images, charts=charts)


# --- Flux HelmRelease and Argo CD Application -----------------------------------------


def _helmrelease_specs(docs: Sequence[Any]) -> Iterator[tuple[tuple[Any, ...], CommentedMap]]:
    for index, doc in enumerate(docs):
        if _get(doc, "kind") == "HelmRelease":
            spec = _get(doc, "spec", "chart", "spec")
            if isinstance(spec, CommentedMap) and isinstance(spec.get("chart"), str):
                yield (index, "spec", "chart", "spec"), spec


def render_helmrelease(text: str, artifacts: Sequence[Artifact], *, file: str) -> str:
    """Set ``spec.chart.spec.version`` of each HelmRelease whose chart is an artifact.

    Image artifacts are ignored; every chart artifact must be found, since a
    target file that silently lacks a chart would never deploy it.
    """
    charts = [a for a in artifacts if a.kind == "chart"]
    _validate(charts, file)
    if not charts:
        return text
    plan = _Plan(text, file)
    for artifact in charts:
        matches = [(p, s) for p, s in _helmrelease_specs(plan.docs) if s["chart"] == artifact.name]
        if not matches:
            raise RenderError(file, f"no HelmRelease uses chart {artifact.name}")
        for path, spec in matches:
            plan.set_keys(spec, path, {"version": artifact.version}, flow=False)
    return plan.result()


def read_helmrelease(text: str, *, file: str) -> dict[str, Current]:
    src = _Source(text)
    return {
        spec["chart"]: Current(version=_scalar_text(src, spec, "version", file))
        for _, spec in _helmrelease_specs(_load(text, file))
    }


def _application_sources(
    docs: Sequence[Any],
) -> Iterator[tuple[tuple[Any, ...], CommentedMap, str]]:
    """(path, source mapping, chart name) of every Helm source of every Application."""
    for index, doc in enumerate(docs):
        if _get(doc, "kind") != "Application":
            continue
        candidates: list[tuple[tuple[Any, ...], Any]] = [
            ((index, "spec", "source"), _get(doc, "spec", "source"))
        ]
        for item_index, source in _mappings(_get(doc, "spec", "sources")):
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
    _validate(charts, file)
    if not charts:
        return text
    plan = _Plan(text, file)
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
    src = _Source(text)
    return {
        chart: Current(version=_scalar_text(src, source, "targetRevision", file))
        for _, source, chart in _application_sources(_load(text, file))
    }


# --- markers ----------------------------------------------------------------------------

_MARKER = re.compile(r'#\s*(\{\s*"\$reconciler"\s*:\s*"[^"\r\n]*"\s*\})')
_SUFFIXES = (None, "tag", "digest", "name", "version")


@dataclass(frozen=True)
class _ScalarRef:
    path: tuple[Any, ...]
    span: _Span
    value: Any
    flow: bool


@dataclass(frozen=True)
class _Marker:
    line: int  # 0-based
    package: str
    suffix: str | None
    ref: _ScalarRef


def _scalar_refs(src: _Source, docs: Sequence[Any], file: str) -> dict[int, list[_ScalarRef]]:
    """Every scalar (or empty value) that could carry a marker, by 0-based line."""
    refs: dict[int, list[_ScalarRef]] = {}

    def add(path: tuple[Any, ...], span: _Span, value: Any, flow: bool) -> None:
        refs.setdefault(src.line_of(span.start), []).append(_ScalarRef(path, span, value, flow))

    def walk(node: Any, path: tuple[Any, ...], flow: bool, seen: set[int]) -> None:
        if id(node) in seen:  # an aliased collection: its scalars were visited already
            return
        seen.add(id(node))
        flow = flow or _is_flow(node)
        if isinstance(node, CommentedMap):
            own = _own_keys(node)
            for key, value in node.items():
                if key not in own:
                    continue
                if isinstance(value, CommentedMap | CommentedSeq):
                    walk(value, (*path, key), flow, seen)
                elif isinstance(key, str):
                    try:
                        add((*path, key), _value_span(src, node, key, flow, file), value, flow)
                    except RenderError:
                        continue  # block scalars and the like cannot be marker targets
        elif isinstance(node, CommentedSeq):
            for index, value in enumerate(node):
                if isinstance(value, CommentedMap | CommentedSeq):
                    walk(value, (*path, index), flow, seen)
                    continue
                pos = src.offset(*node.lc.item(index))
                before = src.text[:pos].rstrip(" \t")
                if not before.endswith(("-", "[", ",")):
                    continue  # an alias item: ruamel points at the anchor
                try:
                    add((*path, index), _scalar_span(src, pos, flow, file), value, flow)
                except RenderError:
                    continue

    for index, doc in enumerate(docs):
        if isinstance(doc, CommentedMap | CommentedSeq):
            walk(doc, (index,), False, set())
    return refs


def _markers(src: _Source, docs: Sequence[Any], project: str, file: str) -> list[_Marker]:
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
    lines = (line for line in _LINE_BREAK.split(text) if MARKER_LITERAL in line)
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
    _validate(artifacts, file)
    if not artifacts:
        return text
    by_package = {a.package: a for a in artifacts}
    if not marker_packages(text, project) & by_package.keys():
        raise _no_marker(file, project, by_package)
    plan = _Plan(text, file)
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
    src = _Source(text)
    out: dict[str, Current] = {}
    for marker in _markers(src, _load(text, file), project, file):
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


# --- dispatch by target kind ------------------------------------------------------------


def render(
    kind: TargetKind,
    text: str,
    artifacts: Sequence[Artifact],
    *,
    project: str,
    digest: bool,
    file: str,
) -> str:
    """Render the artifacts that concern a target of ``kind`` into its text."""
    images = [a for a in artifacts if a.kind == "image"]
    charts = [a for a in artifacts if a.kind == "chart"]
    if kind == "kustomize-images":
        return render_kustomization(text, images, digest=digest, file=file)
    if kind == "kustomize-helm":
        return render_kustomization(text, charts, digest=digest, file=file)
    if kind == "helmrelease":
        return render_helmrelease(text, charts, file=file)
    if kind == "application":
        return render_application(text, charts, file=file)
    return render_markers(text, project, artifacts, file=file)


def current_versions(
    kind: TargetKind, text: str, artifacts: Sequence[Artifact], *, project: str, file: str
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
    found = read_markers(text, project, file=file)
    return {a.package: found[a.package] for a in artifacts if a.package in found}
