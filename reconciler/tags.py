"""What a tag may be, before any strategy looks at it (pure).

Images follow the OCI tag grammar ``[A-Za-z0-9_][A-Za-z0-9._-]{0,127}``; chart
versions may also hold ``+`` (build metadata). ``printable_tag`` is how a tag that
fails it (newlines, quotes, 300 characters) is shown in logs and commit messages.
"""

from __future__ import annotations

import re

from reconciler.model import PackageKind

__all__ = ["SHOWN_TAG_LENGTH", "invalid_tag_reason", "is_valid_tag", "printable_tag"]

_IMAGE_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_CHART_VERSION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}")
SHOWN_TAG_LENGTH = 60


def printable_tag(tag: str) -> str:
    """A tag safe to print in logs and commit messages (hostile tags are escaped and cut)."""
    if is_valid_tag(tag, "chart"):
        return tag
    shown = repr(tag[:SHOWN_TAG_LENGTH])
    return shown + ("..." if len(tag) > SHOWN_TAG_LENGTH else "")


def is_valid_tag(tag: str, kind: PackageKind = "image") -> bool:
    """The OCI tag grammar for images; chart versions may also hold ``+``."""
    grammar = _IMAGE_TAG if kind == "image" else _CHART_VERSION
    return grammar.fullmatch(tag) is not None


def invalid_tag_reason(tag: str, kind: PackageKind) -> str:
    """Why ``tag`` fails ``is_valid_tag``, as a rejection reason."""
    if kind == "image" and is_valid_tag(tag, "chart"):
        return "not a valid image tag ('+' cannot appear in an OCI tag)"
    return "not a valid tag name"
