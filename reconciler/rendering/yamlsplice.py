"""A generic engine for byte-exact edits of YAML text.

Re-dumping a YAML file through ruamel changes indentation, comment columns, line
endings and the final newline (docs/../pitfalls.md), which would make every
release commit noisy and would fight with humans editing the same overlays. So
this engine never dumps: it parses with ``yamlio.load_all`` only to *find* the
scalars to change (``value_span``, ``scalar_span``), splices new text into the
original string at those positions (``Plan``), and re-parses the result to prove
that exactly the intended values changed (``Plan.result``). Everything is pure:
text in, text out. It knows nothing about Kubernetes kinds: the format modules
(kustomize, flux, argocd, markers) say which scalars to set.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from reconciler import yamlio
from reconciler.errors import RenderError

__all__ = [
    "APPEND",
    "BREAKS",
    "LINE_BREAK",
    "Edit",
    "Plan",
    "Source",
    "Span",
    "Style",
    "check_limits",
    "could_be_other_than_string",
    "get",
    "is_flow",
    "key_end",
    "load",
    "located_scalars",
    "mappings",
    "own_keys",
    "plain_data",
    "quote",
    "scalar_span",
    "scalar_text",
    "style_of",
    "value_span",
]

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


def could_be_other_than_string(plain: str) -> bool:
    """Whether a plain scalar might be read as something other than a string (null,
    a number, a boolean, a date, a merge key): over-matching only sends a reader
    down the round-trip path."""
    return plain == "" or _NOT_A_STRING.fullmatch(plain) is not None


def _plain_ok(value: str, flow: bool) -> bool:
    if not _PLAIN_SAFE.fullmatch(value) or _NOT_A_STRING.fullmatch(value):
        return False
    # ':' is an indicator inside flow collections for some parsers; never at the end.
    return not value.endswith(":") and not (flow and ":" in value)


def quote(value: str, style: Style, flow: bool) -> str:
    """``value`` as a YAML scalar in ``style``, quoted when plain would misread it."""
    if style == "plain" and _plain_ok(value, flow):
        return value
    return yamlio.quoted_scalar(value, "'" if style == "single" else '"')


# --- the original text and positions in it -----------------------------------------------

LINE_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")
"""The line breaks ruamel counts; its (line, col) positions depend on them."""


class Source:
    def __init__(self, text: str) -> None:
        self.text = text
        self.newline = "\r\n" if "\r\n" in text else "\n"
        self.bom = 1 if text.startswith("\ufeff") else 0  # ruamel columns skip it
        self.starts = [0]
        self.ends: list[int] = []
        for match in LINE_BREAK.finditer(text):
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
class Span:
    """Where a scalar's text sits: ``text[start:end]``, without anchor or tag."""

    start: int
    end: int
    style: Literal["plain", "single", "double", "alias", "empty"]
    anchor: str | None = None


BREAKS = "\r\n\x85\u2028\u2029"


_PROPERTY = re.compile(r"[&!][^\s,\[\]{}]*[ \t]*")
_ALIAS = re.compile(r"\*[^\s,\[\]{}]+")


def scalar_span(src: Source, pos: int, flow: bool, file: str) -> Span:
    """The span of the scalar written at ``pos`` (after any anchor or tag)."""
    text = src.text
    anchor = None
    while pos < len(text) and text[pos] in "&!":
        match = _PROPERTY.match(text, pos)
        assert match is not None  # the character class always matches one char
        if text[pos] == "&":
            anchor = match.group().strip()[1:]
        pos = match.end()
    line = src.line_of(pos) + 1
    if pos >= len(text) or text[pos] in BREAKS:
        raise RenderError(file, f"line {line}: value after an anchor or tag on another line")
    first = text[pos]
    if first in "|>":
        raise RenderError(file, f"line {line}: block scalars are not supported as targets")
    if first == "*":
        match = _ALIAS.match(text, pos)
        assert match is not None
        return Span(pos, match.end(), "alias")
    if first in "\"'":
        style: Literal["single", "double"] = "double" if first == '"' else "single"
        return Span(pos, _quoted_end(text, pos, line, file), style, anchor)
    return Span(pos, _plain_end(text, pos, flow), "plain", anchor)


def _quoted_end(text: str, pos: int, line: int, file: str) -> int:
    """Offset just past the closing quote of the quoted scalar opening at ``pos``."""
    quote_char = text[pos]
    index = pos + 1
    while index < len(text):
        char = text[index]
        if char in BREAKS:
            raise RenderError(file, f"line {line}: multi-line quoted scalars are not supported")
        if quote_char == '"' and char == "\\":
            index += 2
            continue
        if char == quote_char:
            if quote_char == "'" and text.startswith("''", index):
                index += 2
                continue
            return index + 1
        index += 1
    raise RenderError(file, f"line {line}: unterminated quoted scalar")


def _plain_end(text: str, pos: int, flow: bool) -> int:
    """End of the plain scalar starting at ``pos`` (trailing blanks and comment excluded)."""
    index = pos
    while index < len(text):
        char = text[index]
        if char in BREAKS or (char == "#" and text[index - 1] in " \t"):
            break
        if flow and (char in ",[]{}" or (char == ":" and text[index + 1 : index + 2] in " \t,]}")):
            break
        index += 1
    while index > pos and text[index - 1] in " \t":
        index -= 1
    return index


def key_end(src: Source, mapping: CommentedMap, key: str, file: str) -> int:
    """Offset just after the ``:`` that follows ``key`` in ``mapping``."""
    text = src.text
    line, col = mapping.lc.key(key)
    pos = src.offset(line, col)
    if text[pos : pos + 1] in ("'", '"'):
        pos = scalar_span(src, pos, True, file).end
    while pos < len(text):
        char = text[pos]
        if char == ":" and text[pos + 1 : pos + 2] in ("", " ", "\t", ",", "}", "]", *BREAKS):
            return pos + 1
        if char in BREAKS:
            break
        pos += 1
    raise RenderError(file, f"line {line + 1}: cannot find the ':' after key {key!r}")


def value_span(src: Source, mapping: CommentedMap, key: str, flow: bool, file: str) -> Span:
    """The span of ``mapping[key]``'s scalar; style "empty" (at the colon) when absent."""
    text = src.text
    colon_end = key_end(src, mapping, key, file)
    pos = colon_end
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    at_line_end = pos >= len(text) or text[pos] in BREAKS or text[pos] == "#"
    if not at_line_end and not (flow and text[pos] in ",}"):
        # Positions from ruamel point at an alias's anchor, not at the alias:
        # scanning from the key finds what is really written here.
        return scalar_span(src, pos, flow, file)
    if mapping[key] is None:
        return Span(colon_end, colon_end, "empty")
    value_pos = src.offset(*mapping.lc.value(key))
    if value_pos <= colon_end:
        raise RenderError(file, f"cannot locate the value of {key!r}")
    return scalar_span(src, value_pos, flow, file)


def is_flow(node: Any) -> bool:
    return bool(node.fa.flow_style())


def own_keys(mapping: CommentedMap) -> set[Any]:
    """Keys written in this mapping itself (not inherited through ``<<`` merges)."""
    return set(mapping.lc.data)


# --- plans: edits to the text plus the expected change to the data --------------------

APPEND = object()
"""Path element: append to the list instead of setting an index."""


@dataclass(frozen=True)
class Edit:
    start: int
    end: int
    text: str


def plain_data(node: Any, memo: dict[int, Any]) -> Any:
    """Parsed YAML as plain Python, sharing objects where the YAML shares them (aliases)."""
    if id(node) in memo:
        return memo[id(node)]
    if isinstance(node, Mapping):
        out: dict[Any, Any] = {}
        memo[id(node)] = out
        for key, value in node.items():
            out[plain_data(key, memo) if isinstance(key, str | int | float) else key] = plain_data(
                value, memo
            )
        return out
    if isinstance(node, list):
        items: list[Any] = []
        memo[id(node)] = items
        items.extend(plain_data(item, memo) for item in node)
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


class Plan:
    """Edits to one file's text and the data change they must produce."""

    def __init__(self, text: str, file: str) -> None:
        check_limits(text, file)
        self.src = Source(text)
        self.file = file
        self.edits: list[Edit] = []
        self.mutations: list[tuple[tuple[Any, ...], Any]] = []

    def forget_edits(self) -> None:
        """Drop what was planned so far, to plan the same file again another way."""
        self.edits.clear()
        self.mutations.clear()

    @functools.cached_property
    def docs(self) -> list[Any]:
        """The round-trip documents, parsed when a format module first asks (a render
        that ``located`` could plan alone never does)."""
        return _load_checked(self.src.text, self.file)

    # Scalars ---------------------------------------------------------------------

    def set_scalar(self, span: Span, value: str, path: tuple[Any, ...], flow: bool) -> None:
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
            self.edits.append(Edit(span.start, span.end, " " + quote(value, "plain", flow)))
        else:
            style: Style = "plain" if span.style == "alias" else span.style
            self.edits.append(Edit(span.start, span.end, quote(value, style, flow)))
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
        flow = flow or is_flow(mapping)
        own = own_keys(mapping)
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
                value_span(self.src, mapping, key, flow, self.file), value, (*path, key), flow
            )
        if missing:
            rendered = {
                k: quote(v, (styles or {}).get(k, "plain"), flow) for k, v in missing.items()
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
        keys = [k for k in mapping if k in own_keys(mapping)]
        if not keys:
            raise RenderError(self.file, "cannot add keys to an empty mapping")
        last_line, indent = mapping.lc.key(keys[-1])
        nl = self.src.newline
        lines = "".join(f"{nl}{' ' * indent}{k}:{_block_value(v)}" for k, v in rendered.items())
        at = self.src.block_end(last_line, indent)
        self.edits.append(Edit(at, at, lines))

    def insert_in_flow(self, open_offset: int, body: str) -> None:
        """Insert ``body`` as the last element of the flow collection opening at the offset."""
        text = self.src.text
        depth = 0
        last = open_offset  # last significant character before the closing bracket
        index = open_offset
        while index < len(text):
            char = text[index]
            if char in "\"'":
                index = scalar_span(self.src, index, True, self.file).end
                last = index - 1
                continue
            if char == "#" and (index == 0 or text[index - 1] in " \t" + BREAKS):
                while index < len(text) and text[index] not in BREAKS:
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
        self.edits.append(Edit(last + 1, last + 1, insert))

    # Result ----------------------------------------------------------------------------

    def result(self, read: Callable[[str], list[Any] | None] | None = None) -> str:
        """Apply the edits, re-parse, and check the data changed exactly as planned.

        ``read``: a cheaper reader of both texts (``located.plain_documents``), used
        when it can read both; plain scalars that might not be strings come out of it
        as ``("plain", text)``, so a value edited into one never passes for a string.
        """
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
        both = (read(text), read(new_text)) if read is not None else (None, None)
        if both[0] is None or both[1] is None:
            both = self._read_both(new_text)
        before, after = both
        expected = plain_data(before, {})
        for path, value in self.mutations:
            _apply(expected, path, value)
        if plain_data(after, {}) != expected:
            raise RenderError(self.file, "edited text does not read back as intended")
        return new_text

    def _read_both(self, new_text: str) -> tuple[list[Any], list[Any]]:
        """The documents before and after the edits, read by one and the same reader.

        libyaml's C parser reads both in a fraction of a second round-trip load;
        where it cannot (YAML 1.2-only syntax such as ``{image: a:1}``, custom tags),
        the round-trip reader that located the scalars reads the edited text too.
        The edited text passed the size, alias and depth limits before the edits,
        which change scalars and add validated entries only.
        """
        try:
            return yamlio.load_all_fast(self.src.text), yamlio.load_all_fast(new_text)
        except YAMLError:
            pass
        try:
            return self.docs, load(new_text, self.file)
        except RenderError as error:
            raise RenderError(self.file, f"edited text does not parse: {error}") from error


def _block_value(rendered: str) -> str:
    """Rendered values for new block keys start with a newline when they are blocks."""
    return rendered if rendered.startswith(("\n", "\r")) else " " + rendered


def _apply(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        data = data[step]
    if path[-1] is APPEND:
        data.append(value)
    else:
        data[path[-1]] = value


def load(text: str, file: str) -> list[Any]:
    """All documents of a target file; hostile shapes (huge, alias bombs, deep
    nesting that would exhaust the stack) are refused before building any data."""
    check_limits(text, file)
    return _load_checked(text, file)


def check_limits(text: str, file: str) -> None:
    """Refuse hostile shapes (huge, alias bombs, deep nesting) before any reader builds
    data: a RenderError naming the file and line."""
    if len(text) > yamlio.MAX_FILE_BYTES:
        raise RenderError(file, f"larger than {yamlio.MAX_FILE_BYTES} bytes")
    try:
        problem = yamlio.limit_problem(text)
    except YAMLError as error:
        raise RenderError(file, f"not valid YAML: {error}") from error
    if problem is not None:
        line, message = problem
        raise RenderError(file, f"line {line}: {message}" if line else message)


def _load_checked(text: str, file: str) -> list[Any]:
    """``load`` after ``check_limits`` passed."""
    try:
        return yamlio.load_all(text)
    except YAMLError as error:
        raise RenderError(file, f"not valid YAML: {error}") from error


def mappings(seq: Any) -> Iterator[tuple[int, CommentedMap]]:
    if isinstance(seq, CommentedSeq):
        for index, item in enumerate(seq):
            if isinstance(item, CommentedMap):
                yield index, item


def get(node: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(node, CommentedMap):
            return None
        node = node.get(key)
    return node


def scalar_text(src: Source, mapping: CommentedMap, key: str, file: str) -> str | None:
    """A value exactly as written (``1.10`` stays ``1.10`` even though YAML reads 1.1)."""
    if key not in own_keys(mapping) or mapping[key] is None:
        return None
    value = mapping[key]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, CommentedMap | CommentedSeq):
        return None
    span = value_span(src, mapping, key, is_flow(mapping), file)
    return src.text[span.start : span.end]


def style_of(src: Source, entries: Sequence[CommentedMap], key: str, file: str) -> Style:
    """The quoting style siblings use for ``key``, so new entries look like old ones."""
    for entry in entries:
        if key in own_keys(entry) and isinstance(entry[key], str):
            style = value_span(src, entry, key, is_flow(entry), file).style
            if style in ("single", "double"):
                return "single" if style == "single" else "double"
            return "plain"
    return "plain"


Located = tuple[tuple[Any, ...], Span, Any, bool]
"""(path from the document list, span of the written scalar, parsed value, in flow style)."""


def located_scalars(src: Source, docs: Sequence[Any], file: str) -> Iterator[Located]:
    """Every scalar value (or empty value) written in ``docs``, with where it is written.

    Aliased collections are visited once; alias items, block scalars and the like,
    which cannot be edited in place, are skipped.
    """
    seen: set[int] = set()
    for index, doc in enumerate(docs):
        if isinstance(doc, CommentedMap | CommentedSeq):
            yield from _walk(src, doc, (index,), False, seen, file)


def _walk(
    src: Source, node: Any, path: tuple[Any, ...], flow: bool, seen: set[int], file: str
) -> Iterator[Located]:
    if id(node) in seen:  # an aliased collection: its scalars were visited already
        return
    seen.add(id(node))
    flow = flow or is_flow(node)
    items = _own_items(node) if isinstance(node, CommentedMap) else enumerate(node)
    for key, value in items:
        if isinstance(value, CommentedMap | CommentedSeq):
            yield from _walk(src, value, (*path, key), flow, seen, file)
            continue
        span = _written_span(src, node, key, flow, file)
        if span is not None:
            yield (*path, key), span, value, flow


def _own_items(mapping: CommentedMap) -> Iterator[tuple[Any, Any]]:
    own = own_keys(mapping)
    return ((k, v) for k, v in mapping.items() if k in own)


def _written_span(src: Source, node: Any, key: Any, flow: bool, file: str) -> Span | None:
    """Where ``node[key]`` is written, or None when it cannot be edited in place."""
    try:
        if isinstance(node, CommentedMap):
            return value_span(src, node, key, flow, file) if isinstance(key, str) else None
        pos = src.offset(*node.lc.item(key))
        if not src.text[:pos].rstrip(" \t").endswith(("-", "[", ",")):
            return None  # an alias item: ruamel points at the anchor
        return scalar_span(src, pos, flow, file)
    except RenderError:
        return None  # block scalars and the like
