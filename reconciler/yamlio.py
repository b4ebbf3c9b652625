"""The only module that configures ruamel.yaml.

Two loaders: ``load_config`` (round-trip nodes with line numbers, duplicate keys
rejected, size and alias limits enforced) and ``dump_new`` (for files the
reconciler creates from scratch, like release records). Editing existing files
is done by splicing text in rendering/yamlsplice.py, never by re-dumping them.
"""

from __future__ import annotations

import io
import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingStartEvent,
    ScalarEvent,
    StreamEndEvent,
    StreamStartEvent,
)

MAX_FILE_BYTES = 1_000_000
"""Config files larger than this are refused (hostile or accidental huge input)."""

MAX_ALIASES = 100
"""More alias uses than this in one file is treated as an alias bomb."""

MAX_EXPANDED_SIZE = 2_000_000
"""A document may expand (aliases replaced by what they name) to at most this many
nodes plus scalar characters: a few aliases nested inside each other multiply, so
counting aliases alone lets a small file stand for gigabytes."""

MAX_DEPTH = 100
"""Collections nested deeper than this are refused before ruamel's recursive composer
would exhaust the Python stack."""


_LOOKS_LIKE = {
    "tag:yaml.org,2002:int": "a number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:timestamp": "a date",
}


def _strict(constructor: Any, looks_like: str) -> Any:
    """``constructor`` raising a ConstructorError at the scalar's line when the plain
    scalar the resolver took for ``looks_like`` is not one: ruamel raises bare
    ValueError or IndexError there (``-_``, ``._``, ``0x_``, ``2026-02-30``), which would
    escape every caller that handles YAML errors."""

    def construct(self: Any, node: Any) -> Any:
        try:
            return constructor(self, node)
        except (ValueError, IndexError, OverflowError) as exc:
            why = f" ({exc})" if looks_like == "a date" else ""  # "month must be in 1..12"
            raise ConstructorError(
                problem=f"{node.value!r} reads as {looks_like} but is not one{why}; "
                "quote it to mean the text",
                problem_mark=node.start_mark,
            ) from None

    return construct


def _with_strict_scalars(cls: Any) -> None:
    for tag, looks_like in _LOOKS_LIKE.items():
        cls.add_constructor(tag, _strict(cls.yaml_constructors[tag], looks_like))


class _RoundTripConstructor(RoundTripConstructor):
    """ruamel's round-trip constructor, with :func:`_strict` numbers and dates."""


_with_strict_scalars(_RoundTripConstructor)


def _round_trip() -> YAML:
    yaml = YAML(typ="rt")
    yaml.Constructor = _RoundTripConstructor
    yaml.allow_duplicate_keys = False
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def load_all(text: str) -> list[Any]:
    """Parse every YAML document in ``text`` with positions kept (CommentedMap.lc)."""
    return [doc for doc in _round_trip().load_all(text) if doc is not None]


def load_all_fast(text: str) -> list[Any]:
    """Every document as plain dicts/lists, parsed by libyaml (ruamel.yaml.clib) when
    available: ~6x faster than round-trip, but without positions. Duplicate keys are
    still refused."""
    if _CSafeLoader is None:
        return [doc for doc in YAML(typ="safe").load_all(text) if doc is not None]
    loader = _CSafeLoader(text)
    try:
        docs = []
        while loader.check_data():
            doc = loader.get_data()
            if doc is not None:
                docs.append(doc)
        return docs
    finally:
        loader.dispose()


try:  # libyaml through ruamel.yaml.clib, as ``YAML(typ="safe")`` uses it
    from ruamel.yaml.constructor import SafeConstructor
    from ruamel.yaml.cyaml import CParser  # type: ignore[attr-defined]
    from ruamel.yaml.resolver import VersionedResolver

    class _CSafeLoader(CParser, SafeConstructor, VersionedResolver):  # type: ignore[misc]
        """What ``YAML(typ="safe").load_all`` builds for each call (ruamel.yaml.main's
        ``XLoader``), made once: a ``YAML()`` object costs more than parsing a small
        overlay (it looks for plug-ins on disk each time)."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            self._parser = self._composer = self
            SafeConstructor.__init__(self, loader=self)
            self.allow_duplicate_keys = False
            VersionedResolver.__init__(self, version=None, loadumper=self)

    _with_strict_scalars(_CSafeLoader)

except ImportError:  # pragma: no cover - the pure-Python parser is the fallback
    _CSafeLoader = None  # type: ignore[assignment,misc]


_CONSTANTS: dict[str, Any] = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("null", "Null", "NULL", "~", ""), None),
}
_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_STR_TAGS = (None, "!", "tag:yaml.org,2002:str")
_NO_KEY = object()


def _plain_value(event: ScalarEvent) -> Any:
    if event.tag not in _STR_TAGS:
        raise ValueError(f"line {event.start_mark.line + 1}: unexpected tag {event.tag}")
    if event.style or event.tag:  # quoted or block scalars are strings
        return event.value
    text = event.value
    if text in _CONSTANTS:
        return _CONSTANTS[text]
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text  # timestamps stay text: callers parse them with records.parse_time


def load_one_fast(text: str) -> Any:
    """One document of a file the reconciler writes (release record, state, pin) as
    plain dicts, lists and scalars, built straight from libyaml's parse events.

    About 5x faster than ruamel's safe constructor, which dominated idle passes
    (records and state are read for every project). Scalars resolve as in the YAML
    1.2 core schema, except that timestamps stay strings; anchors, aliases, tags
    and duplicate keys are refused with ValueError (the reconciler never writes
    them), and so is a second document.
    """
    stack: list[Any] = []
    keys: list[Any] = []  # per open container: the mapping key waiting for its value
    root: Any = None
    seen_root = False
    for event in events(text):
        if isinstance(event, ScalarEvent):
            if event.anchor:
                raise ValueError(f"line {event.start_mark.line + 1}: anchors are not allowed")
            value = _plain_value(event)
        elif isinstance(event, CollectionStartEvent):
            if event.anchor or (event.tag and not event.implicit):
                raise ValueError(f"line {event.start_mark.line + 1}: unexpected anchor or tag")
            stack.append({} if isinstance(event, MappingStartEvent) else [])
            keys.append(_NO_KEY)
            continue
        elif isinstance(event, CollectionEndEvent):
            value = stack.pop()
            keys.pop()
        elif isinstance(event, AliasEvent):
            raise ValueError(f"line {event.start_mark.line + 1}: aliases are not allowed")
        else:
            continue
        if not stack:
            if seen_root:
                raise ValueError("expected a single document")
            root, seen_root = value, True
        elif isinstance(stack[-1], list):
            stack[-1].append(value)
        elif keys[-1] is _NO_KEY:
            if isinstance(value, (dict, list)):
                raise ValueError("mapping keys must be scalars")
            keys[-1] = value
        else:
            if keys[-1] in stack[-1]:
                raise ValueError(f"duplicate key {keys[-1]!r}")
            stack[-1][keys[-1]] = value
            keys[-1] = _NO_KEY
    return root


def load_one(text: str) -> Any:
    return _round_trip().load(text)


def _new_file_dumper() -> YAML:
    """The emitter for files the reconciler writes from scratch: libyaml's C emitter
    (ruamel.yaml.clib) where installed, ~6x faster than the round-trip one, which
    dominated the cost of writing release records and state files. Scalars are quoted
    by the library's own representer and emitter, never by hand."""
    yaml = YAML(typ="safe", pure=False)
    yaml.default_flow_style = False
    # Keys in the order the data has them (ruamel annotates this attribute as None).
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    yaml.width = 4096
    yaml.allow_unicode = True
    yaml.representer.ignore_aliases = lambda *_: True
    return yaml


def dump_new(data: Any, header: str = "") -> str:
    """Serialise a new file (block style, stable key order, no aliases)."""
    out = io.StringIO()
    if header:
        out.write(header if header.endswith("\n") else header + "\n")
    _new_file_dumper().dump(data, out)
    return out.getvalue()


def quoted_scalar(value: str, quote_char: str) -> str:
    """``value`` as one quoted YAML scalar (``'`` or ``"``) on one line, quoted by
    libyaml's emitter (the pure one where the C extension is missing), never by hand.
    The emitter may pick double quotes where single ones cannot hold a character (a
    tab, a control character); a value with a line break always gets double quotes,
    whose escapes keep it on the one line a splice replaces."""
    if quote_char == "'" and any(ch in value for ch in "\r\n\x85\u2028\u2029"):
        quote_char = '"'
    try:
        from ruamel.yaml.cyaml import CEmitter as Emitter  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - ruamel.yaml.clib is a dependency
        from ruamel.yaml.emitter import Emitter
    out = io.StringIO()
    emitter = Emitter(out, width=2**30, allow_unicode=True)
    for event in (
        StreamStartEvent(),
        DocumentStartEvent(explicit=False),
        ScalarEvent(None, None, (True, True), value, style=quote_char),
        DocumentEndEvent(explicit=False),
        StreamEndEvent(),
    ):
        emitter.emit(event)
    text = out.getvalue().rstrip("\n")
    if "\n" in text:  # never seen: the checks above keep quoted scalars on one line
        raise ValueError(f"a quoted scalar took more than one line: {text[:40]!r}")
    return text


def position(node: Any, key: str | int | None = None) -> int:
    """1-based line of ``node`` (or of ``node[key]``'s key), 0 when unknown."""
    try:
        if key is None:
            return int(node.lc.line) + 1
        if isinstance(node, CommentedMap):
            return int(node.lc.key(key)[0]) + 1
        if isinstance(node, CommentedSeq) and isinstance(key, int):
            return int(node.lc.item(key)[0]) + 1
    except (AttributeError, KeyError, IndexError, TypeError):
        return 0
    return 0


def events(text: str) -> Any:
    """Low-level parse events (used to count aliases before composing, and to locate
    scalars): libyaml's C parser, as ``YAML(typ="safe").parse`` runs it, without
    building a ``YAML()`` object per call."""
    if _CSafeLoader is None:
        return YAML(typ="safe").parse(text)
    return _c_events(text)


def _c_events(text: str) -> Any:
    parser = CParser(text)
    try:
        while parser.check_event():
            yield parser.get_event()
    finally:
        parser.dispose()


def limit_problem(text: str) -> tuple[int, str] | None:
    """(1-based line, message) when ``text`` breaks MAX_ALIASES, MAX_EXPANDED_SIZE or
    MAX_DEPTH, else None.

    Runs on parse events only, so no limit costs memory or stack before it trips: the
    expanded size is computed from each anchor's size, never by expanding.
    Syntax errors propagate as YAMLError.
    """
    try:
        return _limit_problem(events(text))
    except YAMLError:
        # libyaml follows YAML 1.1 and refuses some YAML 1.2 that the round-trip
        # loader reads (a ':' inside a plain scalar in a flow mapping, as in
        # ``{image: ghcr.io/a:1.0}``); the pure-Python parser has the last word.
        return _limit_problem(YAML(typ="safe", pure=True).parse(text))


def _line(event: Any) -> int:
    return event.start_mark.line + 1 if event.start_mark is not None else 0


class _ExpandedSize:
    """The size one document would have with every alias replaced by its anchor's node:
    1 per node plus the characters of each scalar."""

    def __init__(self) -> None:
        self.anchors: dict[str, int] = {}
        self.open: list[tuple[str | None, int]] = []  # (anchor, size so far) per collection
        self.total = 0

    def add(self, size: int, anchor: str | None = None) -> None:
        """A scalar (or an alias standing for ``size``) inside the innermost collection."""
        if anchor:
            self.anchors[anchor] = size
        self._grow(size)
        self.total += size

    def start(self, anchor: str | None) -> None:
        self.open.append((anchor, 1))

    def end(self) -> None:
        """Its children were counted in ``total`` as they came; only the node itself is new."""
        anchor, size = self.open.pop()
        if anchor:
            self.anchors[anchor] = size
        self._grow(size)
        self.total += 1

    def _grow(self, size: int) -> None:
        if self.open:
            anchor, so_far = self.open[-1]
            self.open[-1] = (anchor, so_far + size)


def _limit_problem(parse_events: Any) -> tuple[int, str] | None:
    aliases = depth = 0
    size = _ExpandedSize()
    for event in parse_events:
        if isinstance(event, DocumentStartEvent):
            size = _ExpandedSize()
        elif isinstance(event, ScalarEvent):
            size.add(1 + len(event.value), event.anchor)
        elif isinstance(event, AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                return _line(event), (
                    f"too many YAML aliases (>{MAX_ALIASES}): refusing a possible alias bomb"
                )
            size.add(size.anchors.get(event.anchor, 0))
            if size.total > MAX_EXPANDED_SIZE:
                return _line(event), (
                    f"YAML aliases expand this document beyond {MAX_EXPANDED_SIZE} nodes and "
                    "characters: refusing a possible alias bomb"
                )
        elif isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                return _line(event), f"nesting deeper than {MAX_DEPTH} levels"
            size.start(event.anchor)
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
            size.end()
    return None


def fast_events(stream: Any) -> Any:
    """Parse events from the libyaml C parser (ruamel.yaml.clib) for big, trusted-shape
    documents such as Helm repository indexes; ~20x faster than the pure-Python parser."""
    return YAML(typ="safe").parse(stream)


_MISALIGNED = (
    "this line is not aligned with the block around it (started on line {context}):"
    " check its indentation"
)
_EXPLANATIONS: tuple[tuple[str, str], ...] = (
    # (start of the parser's problem text, what it means), for both parsers' wordings
    ("expected <block end>", _MISALIGNED),
    ("did not find expected key", _MISALIGNED),
    ("did not find expected '-' indicator", _MISALIGNED),
    (
        "mapping values are not allowed",
        "a 'key:' where no mapping can start: is this line indented deeper than the line"
        " above, or does a value contain ': ' (then quote the value)?",
    ),
    ("found character '\\t'", "a tab in the indentation: YAML indents with spaces only"),
    ("found a tab character", "a tab in the indentation: YAML indents with spaces only"),
    (
        "could not find expected ':'",
        "this line has no 'key:' although it is inside a mapping: add the ':' or fix"
        " its indentation",
    ),
    ("expected ',' or ']'", "the '[' opened on line {context} is not closed with ']'"),
    ("did not find expected ',' or ']'", "the '[' opened on line {context} is not closed with ']'"),
    ("expected ',' or '}'", "the '{{' opened on line {context} is not closed with '}}'"),
    (
        "did not find expected ',' or '}'",
        "the '{{' opened on line {context} is not closed with '}}'",
    ),
)


def explain_error(exc: MarkedYAMLError) -> tuple[int, str]:
    """(1-based line, message in words) for a parser error: the parsers describe their
    own state (``expected <block end>, but found '?'``), not the mistake."""
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else 0
    context = exc.context_mark.line + 1 if exc.context_mark is not None else line
    problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
    if problem == "found unexpected end of stream" and "quoted" in str(exc.context):
        return context, f"the quoted text opened on line {context} is never closed"
    if problem.startswith("could not find expected ':'"):
        line = context  # the parser notices on the next line
    for start, words in _EXPLANATIONS:
        if problem.startswith(start):
            return line, words.format(context=context)
    return line, problem
