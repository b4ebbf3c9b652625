"""Regular expressions written by users, compiled with a linear-time engine (RE2).

The config repository is untrusted (anyone who can open a pull request edits it),
and tags come from registries. A backtracking engine such as Python's ``re``
takes exponential time on patterns like ``^(a+)+$`` or ``^v?(\\d+\\.?)+$`` with a
near-miss tag, and one such rule would hang every pass. RE2 (google-re2, as
Renovate uses) matches in time linear in the tag and bounds its memory.

The price is a smaller grammar: RE2 has no backreferences (``\\1``, ``(?P=name)``,
``\\k<name>``), no lookaround (``(?=``, ``(?!``, ``(?<=``, ``(?<!``), no atomic
groups, possessive quantifiers or conditionals, and repetition counts stop at
1000. ``compile_user_regex`` refuses those with a message naming the construct,
which config validation reports at the key's file and line.

Accepted as written elsewhere: JS/.NET/Python named groups (``(?<name>…)``,
``(?P<name>…)``), ``\\d``, ``\\b``, ``[[:alpha:]]``, ``(?i)``. Python's ``\\Z``
(end of text) is read as RE2's ``\\z``.

Every place that applies a user pattern (selection's ``allow``, ``ignore``,
``prerelease`` and ``extract``; importers) goes through this module.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import re2

__all__ = ["ENGINE", "MAX_PATTERN_LENGTH", "UnsupportedRegex", "UserRegex", "compile_user_regex"]

ENGINE = "re2"
"""The engine behind every ``UserRegex`` (tests assert it)."""

MAX_PATTERN_LENGTH = 4096
"""Longer patterns are refused outright: no rule needs more, and RE2's program size
grows with the pattern."""

_MAX_MEMORY = 8 << 20
"""Bytes RE2 may use for one compiled pattern (its own default, stated explicitly)."""

_REMEMBERED = 1 << 16
"""Texts whose search answer one pattern keeps (about 5 MB at most per pattern)."""

# What RE2 refuses, in the words a user knows; checked only to explain a refusal.
_UNSUPPORTED = (
    (re.compile(r"\\[1-9]|\\k<|\(\?P="), "backreferences"),
    (re.compile(r"\(\?<?[=!]"), "lookahead and lookbehind"),
    (re.compile(r"\(\?>"), "atomic groups"),
    (re.compile(r"[*+?}]\+"), "possessive quantifiers"),
    (re.compile(r"\(\?\("), "conditionals"),
)
_ENGINE_LIMITS = (
    ("repetition size", "repetition counts above 1000 (nested counts multiply) are"),
    ("pattern too large", "patterns this large are"),
)
_PYTHON_END_OF_TEXT = re.compile(r"\\(.)", re.DOTALL)


class UnsupportedRegex(ValueError):
    """A user pattern is invalid, or uses a construct the linear-time engine refuses."""


class UserRegex:
    """A compiled user pattern. Matching never backtracks: time is linear in the text."""

    __slots__ = ("_compiled", "_seen", "pattern")

    engine = ENGINE

    def __init__(self, pattern: str, compiled: Any) -> None:
        self.pattern = pattern  # as the user wrote it
        self._compiled = compiled
        self._seen: dict[str, bool] = {}

    def search(self, text: str) -> bool:
        """Whether the pattern matches anywhere in ``text`` (``re.search`` semantics).

        Answers are remembered (up to ``_REMEMBERED`` texts): a call into RE2 costs a
        few times a small ``re`` search, and the same texts come back (pre-release
        labels such as ``""``; every tag again on each pass of a sidecar).
        """
        seen = self._seen.get(text)
        if seen is None:
            if len(self._seen) >= _REMEMBERED:
                self._seen.clear()
            seen = self._seen[text] = self._compiled.search(text) is not None
        return seen

    def group(self, text: str, group: str | int = 0) -> str | None:
        """The text ``group`` captured in the first match in ``text``; None when there is
        no match or the group took no part in it."""
        match = self._compiled.search(text)
        if match is None:
            return None
        value = match.group(group)
        return value if isinstance(value, str) else None

    def has_group(self, group: str | int) -> bool:
        """Whether ``group`` (a name, or a number from 0) exists in the pattern."""
        if isinstance(group, int):
            return 0 <= group <= int(self._compiled.groups)
        return group in self._compiled.groupindex

    def __repr__(self) -> str:
        return f"UserRegex({self.pattern!r})"


def _to_re2(pattern: str) -> str:
    """Python's ``\\Z`` is RE2's ``\\z``; every other escape is kept as written."""
    return _PYTHON_END_OF_TEXT.sub(
        lambda m: "\\z" if m[1] == "Z" else m[0],
        pattern,
    )


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # the refusal is reported once, by the caller
    options.max_mem = _MAX_MEMORY
    return options


def _explain(pattern: str, engine_message: str) -> str:
    constructs = [f"{what} are" for shape, what in _UNSUPPORTED if shape.search(pattern)]
    constructs += [what for words, what in _ENGINE_LIMITS if words in engine_message]
    if not constructs:
        return engine_message
    return (
        f"{constructs[0]} not supported (patterns run on RE2, a linear-time engine, "
        "so no tag can make a pass hang)"
    )


@lru_cache(maxsize=1024)
def compile_user_regex(pattern: str) -> UserRegex:
    """Compile ``pattern`` with RE2; raise ``UnsupportedRegex`` with a clear message.

    Cached: every pass applies the same few rule patterns to thousands of tags.
    """
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise UnsupportedRegex(
            f"invalid regular expression: longer than {MAX_PATTERN_LENGTH} characters"
        )
    try:
        compiled = re2.compile(_to_re2(pattern), _options())
    except re2.error as error:
        detail = error.args[0] if error.args else str(error)
        text = detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
        raise UnsupportedRegex(
            f"invalid regular expression {pattern!r}: {_explain(pattern, text)}"
        ) from None
    return UserRegex(pattern, compiled)
