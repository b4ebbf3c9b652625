"""Documents as light nodes that know where each scalar is written, built from
libyaml's parse events (the C parser, ``yamlio.events``) instead of ruamel's
round-trip loader, which costs most of a render and of reading an overlay.

This reader decides only what it can decide exactly as the round-trip loader would;
for anything else (anchors, aliases, tags, directives, merge keys, plain scalars
that might not be strings, duplicate keys, syntax libyaml refuses) ``read`` gives
None and callers take the round-trip path, which reads and reports everything.
Offsets are ``str`` indices: libyaml counts characters (not bytes) from after a
byte-order mark, and every scalar an edit or a read uses is checked against the
text at those offsets before it is trusted.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Literal

from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    MappingStartEvent,
    ScalarEvent,
)

from reconciler import yamlio
from reconciler.rendering.yamlsplice import BREAKS, Span, could_be_other_than_string

__all__ = ["Map", "Node", "Scalar", "Seq", "Undecided", "plain_documents", "read"]

_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_STYLES: dict[str | None, Literal["plain", "single", "double", "block"]] = {
    None: "plain",
    "": "plain",
    "'": "single",
    '"': "double",
    "|": "block",
    ">": "block",
}


class Undecided(Exception):
    """The event reader cannot tell what the round-trip loader would: take that path."""


@dataclass(frozen=True, slots=True)
class Scalar:
    """A scalar as written: ``value`` (the parser's text), ``style``, and where."""

    value: str
    style: Literal["plain", "single", "double", "block"]
    start: int
    end: int
    text: str  # the whole file, to check and read spans

    def span(self) -> Span:
        """Where an edit replaces this scalar (a single-line plain or quoted one)."""
        written = self.text[self.start : self.end]
        if self.style == "block" or any(c in BREAKS for c in written):
            raise Undecided  # the round-trip path explains what it refuses
        if self.style == "plain":
            ok = written == self.value and self.value != ""
        else:
            mark = "'" if self.style == "single" else '"'
            ok = len(written) >= 2 and written[0] == mark and written[-1] == mark
        if not ok:
            raise Undecided  # offsets that do not match the text are never trusted
        style = "plain" if self.style == "plain" else self.style
        return Span(self.start, self.end, style)

    def is_null(self) -> bool:
        return self.style == "plain" and self.value in _NULLS

    def string(self) -> str:
        """The value, when the round-trip loader would read a string (else Undecided)."""
        self.span()
        if self.style == "plain" and could_be_other_than_string(self.value):
            raise Undecided
        return self.value

    def as_written(self) -> str | None:
        """What ``yamlsplice.scalar_text`` gives: None for null, else the text as written."""
        if self.is_null():
            return None
        self.span()
        return self.value


@dataclass(slots=True)
class Map:
    flow: bool
    items: dict[str, Node] = field(default_factory=dict)


@dataclass(slots=True)
class Seq:
    flow: bool
    items: list[Node] = field(default_factory=list)


Node = Scalar | Map | Seq


def plain_documents(text: str) -> list[Any] | None:
    """``read``'s documents as plain data for ``Plan.result`` to compare: strings,
    None for null, ``("plain", text)`` for a plain scalar that might not be a string."""
    docs = read(text)
    return None if docs is None else [_plain(doc) for doc in docs]


def _plain(node: Node) -> Any:
    if isinstance(node, Map):
        return {key: _plain(value) for key, value in node.items.items()}
    if isinstance(node, Seq):
        return [_plain(item) for item in node.items]
    if node.style != "plain":
        return node.value
    if node.is_null():
        return None
    return ("plain", node.value) if could_be_other_than_string(node.value) else node.value


def read(text: str) -> list[Node] | None:
    """Every non-null document of ``text`` (as the round-trip loader lists them), or
    None where only that loader can decide. Size, alias and depth limits are the
    caller's to check first (``yamlsplice.check_limits``).

    The last few small texts are remembered (callers never change the nodes): a
    render plans and verifies on the same text, and a pushed pass reads what it
    rendered. Big ones are not, so hostile files cannot pin memory."""
    if len(text) > _REMEMBERED_SIZE:
        return _read(text)
    return _read_small(text)


_REMEMBERED_SIZE = 64 * 1024


@functools.lru_cache(maxsize=8)
def _read_small(text: str) -> list[Node] | None:
    return _read(text)


def _read(text: str) -> list[Node] | None:
    try:
        return _build(text)
    except (Undecided, YAMLError):
        return None


_UNICODE_BREAKS = ("\x85", "\u2028", "\u2029")
"""Line breaks to libyaml (YAML 1.1), not to ruamel's round-trip reader (YAML 1.2):
a file holding one may be structured differently by the two, so it is never decided
here."""


def _build(text: str) -> list[Node]:
    if any(brk in text for brk in _UNICODE_BREAKS):
        raise Undecided
    bom = 1 if text.startswith("\ufeff") else 0
    docs: list[Node] = []
    stack: list[Map | Seq] = []
    keys: list[str | None] = []
    for event in yamlio.events(text):
        if isinstance(event, DocumentStartEvent):
            if getattr(event, "version", None) or getattr(event, "tags", None):
                raise Undecided  # %YAML / %TAG directives change how scalars resolve
            continue
        if isinstance(event, AliasEvent):
            raise Undecided
        node: Node
        if isinstance(event, ScalarEvent):
            if event.anchor or event.tag:
                raise Undecided
            style = _STYLES.get(event.style)
            if style is None:
                raise Undecided
            start = event.start_mark.index + bom
            node = Scalar(event.value, style, start, event.end_mark.index + bom, text)
        elif isinstance(event, CollectionStartEvent):
            if event.anchor or event.tag:
                raise Undecided
            flow = bool(event.flow_style)
            stack.append(Map(flow) if isinstance(event, MappingStartEvent) else Seq(flow))
            keys.append(None)
            continue
        elif isinstance(event, CollectionEndEvent):
            node = stack.pop()
            keys.pop()
        else:
            continue
        _place(node, stack, keys, docs)
    return docs


def _place(node: Node, stack: list[Map | Seq], keys: list[str | None], docs: list[Node]) -> None:
    if not stack:
        if not (isinstance(node, Scalar) and node.is_null()):
            docs.append(node)
        return
    parent = stack[-1]
    if isinstance(parent, Seq):
        parent.items.append(node)
    elif keys[-1] is None:
        if not isinstance(node, Scalar):
            raise Undecided  # a collection as a key
        key = node.value
        if node.style == "block" or (node.style == "plain" and could_be_other_than_string(key)):
            raise Undecided  # numbers, booleans, null, merge keys (<<)
        if key in parent.items:
            raise Undecided  # a duplicate key: the round-trip loader refuses the file
        keys[-1] = key
    else:
        parent.items[keys[-1]] = node
        keys[-1] = None
