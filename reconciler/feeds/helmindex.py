"""Helm repository ``index.yaml``: reduced to the few fields a feed needs, streaming.

JSON is tried first (as Helm does); anything else is read from the YAML *event stream*,
keeping only ``version``, ``digest`` and ``created`` of the charts asked for: the
document is never composed into a tree, which is ~10x faster than loading it and keeps
memory flat. Pure: bytes in, entries out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import IO, Any, NamedTuple

from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

from reconciler import yamlio

__all__ = ["ChartVersion", "IndexFormatError", "ReducedIndex", "parse_index", "prefixed_digest"]


class ChartVersion(NamedTuple):
    """What we keep of one ``index.yaml`` entry (everything else is dropped on parse)."""

    version: str
    digest: str | None  # bare hex as in the index ("sha256:" is added on the way out)
    created: str | None  # RFC 3339 text as in the index; parsed on demand
    url: str | None = None  # the first of ``urls``: the archive, maybe relative to the index


ReducedIndex = dict[str, list[ChartVersion]]
"""chart name -> its versions in index order; a wanted chart missing from the index maps
to an empty list, so "not in the index" is cached too."""


class IndexFormatError(ValueError):
    """``index.yaml`` is not a Helm index; the message says where and why."""


def parse_index(stream: IO[bytes], charts: Iterable[str]) -> ReducedIndex:
    """Reduce an index (JSON or YAML bytes) to the entries of ``charts``.

    Like Helm, JSON is tried first (fast, and Helm serves some indexes as JSON); any
    document that is not JSON is read as YAML. Raises ``IndexFormatError``.
    """
    wanted = set(charts)
    head = stream.read(64)
    stream.seek(0)
    if head.lstrip()[:1] == b"{":
        try:
            return _parse_json_index(stream, wanted)
        except (json.JSONDecodeError, UnicodeDecodeError):
            stream.seek(0)  # YAML is a superset of JSON: let the YAML parser say what is wrong
    return _parse_yaml_index(stream, wanted)


class _JsonEntry(NamedTuple):
    """Marks a JSON object already reduced by ``_reduce_json_object``."""

    entry: ChartVersion


def _reduce_json_object(obj: dict[str, Any]) -> Any:
    """``json`` object hook: shrink every chart entry as soon as it is decoded, so the
    descriptions, URLs and annotations of thousands of versions are freed right away.

    A chart entry is the only kind of object with a string ``version`` (the ``entries``
    map has list values even for a chart named "version"). Dependencies also have one;
    they are reduced too and then dropped with their entry.
    """
    version = obj.get("version")
    if isinstance(version, str):
        urls = obj.get("urls")
        url = urls[0] if isinstance(urls, list) and urls else None
        return _JsonEntry(_chart_version(version, obj.get("digest"), obj.get("created"), url))
    return obj


def _parse_json_index(stream: IO[bytes], wanted: set[str]) -> ReducedIndex:
    document = json.load(stream, object_hook=_reduce_json_object)
    if not isinstance(document, dict):
        raise IndexFormatError("the index is not a mapping")
    if not document.get("apiVersion"):
        raise IndexFormatError("the index has no apiVersion (Helm rejects it too)")
    entries = document.get("entries") or {}
    if not isinstance(entries, dict):
        raise IndexFormatError("entries is not a mapping")
    reduced: ReducedIndex = {}
    for chart in wanted:
        items = entries.get(chart)
        versions = items if isinstance(items, list) else []
        reduced[chart] = [item.entry for item in versions if isinstance(item, _JsonEntry)]
    return reduced


def _chart_version(version: str, digest: Any, created: Any, url: Any = None) -> ChartVersion:
    return ChartVersion(
        version=version,
        digest=digest if isinstance(digest, str) and digest else None,
        created=created if isinstance(created, str) and created else None,
        url=url if isinstance(url, str) and url else None,
    )


def _parse_yaml_index(stream: IO[bytes], wanted: set[str]) -> ReducedIndex:
    events = iter(yamlio.fast_events(stream))
    try:
        return _IndexEvents(events, wanted).read()
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise IndexFormatError(f"not valid YAML{where}: {problem}") from None


class _IndexEvents:
    """A small state machine over YAML parse events that picks out, for the wanted
    charts only, the three scalars we need from each entry and the first of its
    ``urls``, and skips everything else without building it.

    Aliases are not resolved: Helm writes indexes with Go's YAML encoder, which never
    emits anchors, so an alias where a value is needed just counts as "absent".
    """

    FIELDS = frozenset({"version", "digest", "created"})

    def __init__(self, events: Iterator[Event], wanted: set[str]) -> None:
        self._events = events
        self._wanted = wanted

    def _next(self) -> Event:
        try:
            return next(self._events)
        except StopIteration:
            raise IndexFormatError("the index ends unexpectedly") from None

    def read(self) -> ReducedIndex:
        event = self._next()
        while not isinstance(event, MappingStartEvent):
            if isinstance(event, (ScalarEvent, SequenceStartEvent, AliasEvent)):
                raise IndexFormatError("the index is not a mapping")
            event = self._next()  # StreamStart, DocumentStart
        reduced: ReducedIndex = {chart: [] for chart in self._wanted}
        has_api_version = False
        for key, value in self._mapping_items():
            if key == "apiVersion" and isinstance(value, ScalarEvent):
                has_api_version = bool(value.value)
            elif key == "entries" and isinstance(value, MappingStartEvent):
                self._read_entries(reduced)
            elif key == "entries" and not _is_null(value):
                raise IndexFormatError("entries is not a mapping")
            else:
                self._skip(value)
        if not has_api_version:
            raise IndexFormatError("the index has no apiVersion (Helm rejects it too)")
        return reduced

    def _mapping_items(self) -> Iterator[tuple[str | None, Event]]:
        """(key, first event of the value) for each pair of the mapping just opened.

        The caller must consume the value (read or ``_skip`` it) before asking for the
        next pair. Non-scalar keys come back as None with their key already skipped.
        """
        while True:
            key_event = self._next()
            if isinstance(key_event, MappingEndEvent):
                return
            key: str | None = None
            if isinstance(key_event, ScalarEvent):
                key = key_event.value
            else:
                self._skip(key_event)
            yield key, self._next()

    def _read_entries(self, reduced: ReducedIndex) -> None:
        for chart, value in self._mapping_items():
            if chart in self._wanted and isinstance(value, SequenceStartEvent):
                reduced[chart].extend(self._read_versions())
            else:
                self._skip(value)

    def _read_versions(self) -> Iterator[ChartVersion]:
        while True:
            event = self._next()
            if isinstance(event, SequenceEndEvent):
                return
            if not isinstance(event, MappingStartEvent):
                self._skip(event)  # Helm drops malformed entries; so do we
                continue
            fields: dict[str, str] = {}
            for key, value in self._mapping_items():
                if key in self.FIELDS and isinstance(value, ScalarEvent):
                    fields[key] = value.value
                elif key == "urls" and isinstance(value, SequenceStartEvent):
                    first = self._next()
                    if isinstance(first, ScalarEvent):
                        fields["url"] = first.value
                    if not isinstance(first, SequenceEndEvent):  # not an empty list
                        self._skip(first)
                        self._skip(value)  # the rest of the list
                else:
                    self._skip(value)
            if fields.get("version"):
                yield _chart_version(
                    fields["version"],
                    fields.get("digest"),
                    fields.get("created"),
                    fields.get("url"),
                )

    def _skip(self, first: Event) -> None:
        """Consume the rest of the node that starts with ``first``."""
        depth = 1 if isinstance(first, (MappingStartEvent, SequenceStartEvent)) else 0
        while depth:
            event = self._next()
            if isinstance(event, (MappingStartEvent, SequenceStartEvent)):
                depth += 1
            elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
                depth -= 1


def _is_null(event: Event) -> bool:
    return isinstance(event, ScalarEvent) and event.value in ("", "~", "null", "Null", "NULL")


_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")


def prefixed_digest(digest: str | None) -> str | None:
    if digest is None:
        return None
    hex_part = digest.lower().removeprefix("sha256:")
    return f"sha256:{hex_part}" if _HEX_SHA256.fullmatch(hex_part) else None
