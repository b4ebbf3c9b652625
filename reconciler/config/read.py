"""Reading the config repository: files, YAML documents, schema checks, and the
problem collector every other step reports through.

Every problem carries file, line and key path; values are quoted with ``brief``
(never a whole, possibly alias-expanded, value).
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from reconciler import API_VERSION, safepaths, schema, yamlio
from reconciler.errors import Problem, UnsafePathError

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

__all__ = [
    "BRIEF_CHARS",
    "CONFIG_DIRS",
    "SETTINGS_FILE",
    "WRITTEN_DIRS",
    "Collector",
    "Doc",
    "brief",
    "check_schema",
    "config_files",
    "key_path",
    "line_of",
    "path_problem",
    "read_docs",
]


CONFIG_DIRS = ("feeds", "lifecycles", "projects", "triggers")

SETTINGS_FILE = "reconciler.yaml"

WRITTEN_DIRS = ("deploy", "releases", "state", "pins")
"""Folders the reconciler writes (besides each project's overlays and targets)."""


@functools.cache
def _validator(kind: str) -> Any:
    # jsonschema costs ~0.1 s to import; a pass whose config is cached never needs it.
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema.KINDS[kind])


@dataclass
class Doc:
    """One YAML document with where it came from (positions only on the slow path)."""

    file: str
    data: Any  # CommentedMap (with line numbers) or a plain dict


def key_path(path: Iterator[Any] | list[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def line_of(node: Any, path: list[Any]) -> int:
    """1-based line of the value at ``path`` inside ``node`` (best effort)."""
    line = yamlio.position(node)
    for part in path:
        in_map = isinstance(node, CommentedMap) and part in node
        in_seq = isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node)
        if in_map or in_seq:
            line = yamlio.position(node, part) or line
            node = node[part]
        else:
            break
    return line


class Collector:
    """Accumulates problems while the config is read."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.broken: dict[str, set[str]] = {}
        """Names of documents, by (intended) kind, that failed their own checks."""

    def add(self, file: str, line: int, key: str, message: str) -> None:
        self.problems.append(Problem(file, line, key, message))

    def at(self, doc: Doc, path: list[Any], message: str) -> None:
        self.add(doc.file, line_of(doc.data, path), key_path(path), message)

    def unknown(
        self, doc: Doc, path: list[Any], kind: str, name: str, known: Iterable[str]
    ) -> None:
        """``unknown <kind> 'name'``, unless a ``kind`` document of that name exists but
        failed its own checks: that was reported once, at its root cause."""
        if name in self.broken.get(kind, set()):
            return
        close = difflib.get_close_matches(name, list(known), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        self.at(doc, path, f"unknown {kind.lower()} {name!r}{hint}")


BRIEF_CHARS = 40
"""Values quoted in messages are cut to about this many characters: a value can be a
whole alias-built structure, and a message must stay one readable line."""


def brief(value: Any, limit: int = BRIEF_CHARS) -> str:
    """A ``repr`` of ``value`` cut to about ``limit`` characters, built without ever
    rendering more than that (the value may share sub-structures many times over)."""
    writer = _BriefWriter(limit)
    return "".join(writer.parts) if writer.walk(value) else "".join(writer.parts) + "..."


class _BriefWriter:
    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.room = limit

    def emit(self, text: str) -> bool:
        """Write what fits; False once the room is used up."""
        self.parts.append(text[: max(self.room, 0)])
        self.room -= len(text)
        return self.room > 0

    def walk(self, item: Any) -> bool:
        if isinstance(item, dict):
            return self._items(iter(item.items()), "{}", mapping=True)
        if isinstance(item, list | tuple):
            return self._items(enumerate(item), "[]", mapping=False)
        return self.emit(repr(item))

    def _items(self, pairs: Iterator[tuple[Any, Any]], brackets: str, *, mapping: bool) -> bool:
        if not self.emit(brackets[0]):
            return False
        for index, (key, item) in enumerate(pairs):
            if index and not self.emit(", "):
                return False
            if mapping and not (self.walk(key) and self.emit(": ")):
                return False
            if not self.walk(item):
                return False
        return self.emit(brackets[1])


def path_problem(text: str) -> str:
    """Why ``text`` is not a repository-relative path the reconciler may use."""
    parts = text.split("/")
    if text.startswith("/"):
        return f"{brief(text)} is an absolute path; give a path relative to the repository root"
    if ".." in parts:
        return f"{brief(text)} leaves its folder through '..'; paths stay inside the repository"
    if any(part.lower() == ".git" for part in parts):
        return f"{brief(text)} is inside .git; the reconciler never reads or writes there"
    return f"{brief(text)} is not a one-line path"


def _jsonschema_text(err: ValidationError) -> str:
    """jsonschema's message with the offending value shown by ``brief``: its own
    message quotes the whole value."""
    message = str(err.message)
    whole = repr(err.instance)
    if message.startswith(whole):
        return brief(err.instance) + message[len(whole) :]
    return message if len(message) <= 4 * BRIEF_CHARS else message[: 4 * BRIEF_CHARS] + "..."


def _keyless_field(err: ValidationError) -> str | None:
    """A keyless-verification field misplaced in the ``verify``, ``verify.cosign`` or
    ``verify.cosign.keyless`` mapping that ``err`` is about, if any (the fields each
    mapping takes are not misplaced)."""
    path = list(err.absolute_path)
    if "verify" not in path or path[-1] not in ("verify", "cosign", "keyless"):
        return None
    if not isinstance(err.instance, dict):
        return None
    taken = err.schema.get("properties", {}) if isinstance(err.schema, dict) else {}
    return next(
        (str(k) for k in err.instance if k in schema.KEYLESS_FIELDS and k not in taken), None
    )


def _schema_message(err: ValidationError) -> tuple[list[Any], str]:
    """Turn a jsonschema error into (key path, readable message)."""
    path = list(err.absolute_path)
    keyless = _keyless_field(err)
    if keyless is not None:
        return [*path, keyless], schema.KEYLESS_REFUSAL
    sub: dict[str, Any] = err.schema if isinstance(err.schema, dict) else {}
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = list(sub.get("properties", {}))
        extras = [k for k in err.instance if k not in allowed]
        if extras:
            key = extras[0]
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            suffix = f" (did you mean '{hint[0]}'?)" if hint else ""
            return [*path, key], f"unknown field '{key}'{suffix}"
    if err.validator == "required":
        return path, str(err.message).replace("is a required property", "is required")
    if err.validator == "pattern" and sub.get("pattern") == schema.NAME_PATTERN:
        return path, (
            f"{brief(err.instance)} is not a valid name (lower-case letters, digits, '.', '_', '-';"
            " used in file paths)"
        )
    if err.validator == "pattern" and sub.get("pattern") == schema.RELPATH_PATTERN:
        return path, path_problem(str(err.instance))
    if err.validator == "pattern" and sub.get("pattern") == schema.DURATION_PATTERN:
        return path, f"{brief(err.instance)} is not a duration (use e.g. 90s, 2m, 1h30m)"
    if err.validator == "oneOf" and err.context:
        # Prefer the branch whose error is deepest: it is the one the user meant.
        # A "wrong type" error is from a branch the user did not mean (a string given
        # where a branch wants a number); any other error is from the intended branch.
        meant = [e for e in err.context if e.validator != "type"] or list(err.context)
        best = max(meant, key=lambda e: len(list(e.absolute_path)))
        if list(best.absolute_path) != path or best.validator != "required":
            return _schema_message(best)
        if path and path[-2:-1] == ["packages"]:
            return path, "needs exactly one of 'image' or 'chart'"
    if err.validator == "type":
        return path, f"{brief(err.instance)} is not of type {err.validator_value!r}"
    return path, _jsonschema_text(err)


def read_docs(root: Path, out: Collector, *, fast: bool) -> list[Doc]:
    docs: list[Doc] = []
    for rel in config_files(root):
        try:
            data = safepaths.read_bytes(root, rel, limit=yamlio.MAX_FILE_BYTES)
            if len(data) > yamlio.MAX_FILE_BYTES:
                out.add(rel, 0, "", f"file larger than {yamlio.MAX_FILE_BYTES} bytes")
                continue
            text = data.decode("utf-8")
        except UnsafePathError as exc:
            out.add(rel, 0, "", exc.reason)
            continue
        except (OSError, UnicodeDecodeError) as exc:
            out.add(rel, 0, "", f"cannot read: {exc}")
            continue
        found = len(out.problems)
        docs.extend(_parse_file(rel, text, out, fast=fast))
        if len(out.problems) > found:
            _remember_unparsed(text, out)
    return docs


_TOP_KIND = re.compile(r"^kind:[ \t]*['\"]?([A-Za-z]+)", re.MULTILINE)

_TOP_NAME = re.compile(r"^name:[ \t]*['\"]?([a-z0-9][a-z0-9._-]*)", re.MULTILINE)


def _remember_unparsed(text: str, out: Collector) -> None:
    """A file that does not parse still says, in its top-level lines, what it defines:
    remember those names as broken so references to them are not reported again."""
    for chunk in re.split(r"^---", text, flags=re.MULTILINE):
        kind, name = _TOP_KIND.search(chunk), _TOP_NAME.search(chunk)
        if kind is not None and name is not None:
            meant = next(iter(_close_kinds(kind[1])), kind[1])
            out.broken.setdefault(meant, set()).add(name[1])


def _parse_file(rel: str, text: str, out: Collector, *, fast: bool) -> list[Doc]:
    if "\x00" in text:
        out.add(rel, 0, "", "file contains a NUL byte")
        return []
    try:
        limit = yamlio.limit_problem(text)
        if limit is not None:
            out.add(rel, limit[0], "", limit[1])
            return []
        loaded = yamlio.load_all_fast(text) if fast else yamlio.load_all(text)
    except MarkedYAMLError as exc:
        line, problem = yamlio.explain_error(exc)
        out.add(rel, line, "", f"invalid YAML: {problem}")
        return []
    except YAMLError as exc:
        out.add(rel, 0, "", f"invalid YAML: {' '.join(str(exc).split())}")
        return []
    docs = []
    for data in loaded:
        if not isinstance(data, dict):
            out.add(rel, 1, "", "expected a mapping with apiVersion and kind")
            continue
        docs.append(Doc(rel, data))
    return docs


def check_schema(doc: Doc, out: Collector) -> bool:
    """Whether ``doc`` matches the schema of its kind. When it does not, its name is
    remembered as broken, so references to it do not repeat the error."""
    ok = _schema_problems(doc, out)
    kind, name = doc.data.get("kind"), doc.data.get("name")
    if not ok and isinstance(kind, str) and isinstance(name, str):
        meant = kind if kind in schema.KINDS else next(iter(_close_kinds(kind)), kind)
        out.broken.setdefault(meant, set()).add(name)
    return ok


def _close_kinds(kind: Any) -> list[str]:
    if not isinstance(kind, str):
        return []
    return difflib.get_close_matches(kind, list(schema.KINDS), n=1)


def _schema_problems(doc: Doc, out: Collector) -> bool:
    kind = doc.data.get("kind")
    if not isinstance(kind, str) or kind not in schema.KINDS:
        hint = _close_kinds(kind)
        suffix = f" (did you mean '{hint[0]}'?)" if hint else ""
        out.at(
            doc,
            ["kind"],
            f"unknown kind {brief(kind)}{suffix}; expected one of "
            + ", ".join(sorted(schema.KINDS)),
        )
        return False
    if doc.data.get("apiVersion") != API_VERSION:
        out.at(doc, ["apiVersion"], f"must be {API_VERSION!r}")
        return False
    ok = True
    said: set[tuple[str, str]] = set()  # two errors may read the same (keyless fields)
    for err in _validator(kind).iter_errors(doc.data):
        path, message = _schema_message(err)
        ok = False
        if (repr(path), message) not in said:
            said.add((repr(path), message))
            out.at(doc, path, message)
    return ok


def config_files(root: Path) -> list[str]:
    """Work-tree paths of the config files; symlinks are listed (and refused when
    read), never followed."""
    files: list[str] = []
    if os.path.lexists(root / SETTINGS_FILE):
        files.append(SETTINGS_FILE)
    for folder in CONFIG_DIRS:
        found = []
        for here, dirs, names in os.walk(root / folder):
            dirs[:] = [d for d in dirs if d.casefold() != ".git"]
            base = Path(here).relative_to(root).as_posix()
            found += [f"{base}/{n}" for n in names if n.endswith((".yaml", ".yml"))]
        files.extend(sorted(found))
    return files
