"""Reading fields out of JSON documents that come from outside (webhook bodies, agents'
status objects): a missing key or a value of the wrong type is None, never an error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["field", "text"]


def field(document: Any, *path: str) -> Any:
    """``document[path[0]][path[1]]...``, None when a step is missing or not an object."""
    for key in path:
        if not isinstance(document, Mapping):
            return None
        document = document.get(key)
    return document


def text(document: Any, *path: str) -> str | None:
    """The non-empty string at ``path``, else None."""
    value = field(document, *path)
    return value if isinstance(value, str) and value else None
