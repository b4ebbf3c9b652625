"""The only way the reconciler reads or writes files of the config repository.

The config repository is untrusted: anyone whose pull request is merged decides
what it holds, symlinks and odd names included. Every path handed to this module
is relative to the work tree and must stay inside it: no absolute path, no ``..``,
no component named ``.git`` (any case: the repository's own metadata is never a
deploy file), and no symlink anywhere along the way.

How: O_NOFOLLOW-style opening, not resolve-and-check. The work tree's root (the
operator's, trusted) is opened once; then each component is opened relative to
its parent's descriptor (``os.open(name, O_NOFOLLOW | O_DIRECTORY, dir_fd=parent)``)
and the last one with ``O_NOFOLLOW``. The kernel itself refuses a symlink at every
step (``ELOOP``), so there is no window between a check and the use of a path, no
string arithmetic on paths to get wrong, and it costs one ``open`` per component,
the same as an ``lstat`` per component would. Writes create missing folders with
``mkdir(dir_fd=...)`` and replace files atomically with ``rename`` inside the
already-opened folder, so a symlink planted at the file's name is refused before
anything is written.

Missing files raise ``FileNotFoundError`` as usual (callers treat "absent" as data);
everything refused raises :class:`~reconciler.errors.UnsafePathError`, naming the path.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from reconciler.errors import UnsafePathError

__all__ = [
    "SYMLINK_NOT_ALLOWED",
    "components",
    "is_file",
    "listdir",
    "read_bytes",
    "read_text",
    "symlinks_under",
    "unlink",
    "write_bytes",
]

SYMLINK_NOT_ALLOWED = "symlink not allowed"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC


def components(path: str) -> list[str]:
    """``path`` split into the names to open, or UnsafePathError when it may leave the
    work tree or enter ``.git``. Empty and ``.`` components are dropped."""
    if not isinstance(path, str) or not path or "\x00" in path:
        raise UnsafePathError(repr(path), "not a file path")
    if path.startswith("/"):
        raise UnsafePathError(path, "absolute paths are not allowed")
    names = [name for name in path.split("/") if name not in ("", ".")]
    if not names:
        raise UnsafePathError(path, "not a file path")
    for name in names:
        if name == "..":
            raise UnsafePathError(path, "'..' is not allowed")
        if name.casefold() == ".git":
            raise UnsafePathError(path, "files in .git are not allowed")
    return names


def _refusal(path: str, exc: OSError, folder: int, name: str) -> OSError | UnsafePathError:
    """The error to raise for a failed open of ``name`` in ``folder``: a symlink
    becomes UnsafePathError (Linux says ELOOP for a file opened with O_NOFOLLOW,
    ENOTDIR for a link opened as a folder)."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        try:
            if stat.S_ISLNK(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
                return UnsafePathError(path, SYMLINK_NOT_ALLOWED)
        except OSError:
            pass
    return exc


@contextmanager
def _folder(root: Path, path: str, names: list[str], *, create: bool) -> Iterator[int]:
    """A descriptor of the folder ``names`` leads to from ``root``, never through a
    symlink; missing folders are made when ``create``."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in names:
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(name, 0o777, dir_fd=fd)
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise _refusal(path, exc, fd, name) from None
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def read_bytes(root: Path, path: str, *, limit: int | None = None) -> bytes:
    """The bytes of the regular file ``path`` inside ``root``; with ``limit``, at
    most ``limit + 1`` of them (so a caller can tell "too large" without reading it)."""
    *parents, name = components(path)
    with _folder(root, path, parents, create=False) as folder:
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=folder)
        except OSError as exc:
            raise _refusal(path, exc, folder, name) from None
    with os.fdopen(fd, "rb") as file:
        mode = os.fstat(file.fileno()).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        if not stat.S_ISREG(mode):
            raise UnsafePathError(path, "not a regular file")
        return file.read() if limit is None else file.read(limit + 1)


def read_text(root: Path, path: str) -> str:
    """``read_bytes`` decoded as UTF-8 (UnicodeDecodeError when it is not)."""
    return read_bytes(root, path).decode("utf-8")


def is_file(root: Path, path: str) -> bool:
    """True when ``path`` is a regular file reachable without symlinks; any path
    this module refuses is simply not a file here (reading it says why)."""
    try:
        *parents, name = components(path)
        with _folder(root, path, parents, create=False) as folder:
            info = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except (OSError, UnsafePathError):
        return False
    return stat.S_ISREG(info.st_mode)


def listdir(root: Path, path: str) -> list[str]:
    """Names in the folder ``path`` (empty when it does not exist)."""
    try:
        with _folder(root, path, components(path), create=False) as folder:
            return os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []


def write_bytes(root: Path, path: str, data: bytes) -> None:
    """Replace ``path``'s bytes atomically (a crash leaves the old or the new file),
    creating missing folders. A symlink or folder at ``path`` is refused."""
    *parents, name = components(path)
    with _folder(root, path, parents, create=True) as folder:
        try:
            existing = os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode
        except FileNotFoundError:
            existing = stat.S_IFREG
        if stat.S_ISLNK(existing):
            raise UnsafePathError(path, SYMLINK_NOT_ALLOWED)
        if not stat.S_ISREG(existing):
            raise UnsafePathError(path, "not a regular file")
        tmp = name + ".tmp"
        with suppress(FileNotFoundError):  # a symlink left here must not be written through
            os.unlink(tmp, dir_fd=folder)
        fd = os.open(tmp, _WRITE_FLAGS | os.O_EXCL, 0o666, dir_fd=folder)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)


def unlink(root: Path, path: str, *, missing_ok: bool = False) -> None:
    """Delete the file ``path`` (a symlink at its name is deleted, never followed)."""
    *parents, name = components(path)
    try:
        with _folder(root, path, parents, create=False) as folder:
            os.unlink(name, dir_fd=folder)
    except FileNotFoundError:
        if not missing_ok:
            raise


def symlinks_under(root: Path, path: str) -> list[str]:
    """Every symlink at ``path`` or below it (work-tree relative, sorted); links
    are reported, never followed. Empty when ``path`` does not exist."""
    try:
        names = components(path)
    except UnsafePathError:
        return []
    for depth in range(1, len(names) + 1):
        prefix = "/".join(names[:depth])
        if (root / prefix).is_symlink():
            return [prefix]
        if not (root / prefix).exists():
            return []
    found = []
    for folder, dirs, files in os.walk(root / path):
        here = Path(folder)
        found += [
            (here / n).relative_to(root).as_posix() for n in dirs + files if (here / n).is_symlink()
        ]
        dirs[:] = [d for d in dirs if d.casefold() != ".git"]
    return sorted(found)
