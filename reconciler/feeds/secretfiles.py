"""Bounded reads of the small files secrets live in: passwords, docker configs, keys,
keyrings, trusted roots and cloud identity files.

A file named by the (untrusted) config must not fill the memory, so every such read
goes through :func:`read_small_file`, which reads at most ``limit + 1`` bytes: a file
that grows after a size check is bounded too.
"""

from __future__ import annotations

__all__ = ["MAX_SECRET_FILE_BYTES", "FileTooLarge", "read_small_file"]

MAX_SECRET_FILE_BYTES = 1_000_000
"""A password file or docker config bigger than this is a mistake, not a secret."""


class FileTooLarge(OSError):
    """The file is larger than the cap: a mistake or an attack, never a secret."""


def read_small_file(path: str, limit: int = MAX_SECRET_FILE_BYTES) -> bytes:
    """The file's bytes; :class:`FileTooLarge` when it is larger than ``limit``."""
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(f"file is larger than {limit} bytes")
    return data
