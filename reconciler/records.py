"""Release records and per-project state files in the config repository.

``releases/<project>/<version>.yaml`` is immutable once written. ``state/<project>.yaml``
is the reconciler's own bookkeeping: the newest release per channel, the deployment
history per environment (bounded; ``git log`` keeps everything), blocks, pins are
separate files under ``pins/``. Reading the state file is O(1) in the number of
releases, so a pass never scans the whole release history.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ruamel.yaml.error import YAMLError

from reconciler import API_VERSION, safepaths, yamlio
from reconciler.errors import ReconcilerError
from reconciler.model import Deployment, Release, ReleasedPackage

HISTORY_LIMIT = 50
"""Deployments kept per environment in the state file (soak and rollback need a few)."""

_HEADER = "# Written by reconciler. Do not edit: {what}.\n"


def release_path(project: str, version: str) -> str:
    return f"releases/{project}/{version}.yaml"


def state_path(project: str) -> str:
    return f"state/{project}.yaml"


def pin_path(project: str, environment: str) -> str:
    return f"pins/{project}/{environment}.yaml"


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def release_to_text(release: Release) -> str:
    packages: dict[str, Any] = {}
    for p in release.packages:
        entry: dict[str, Any] = {p.kind: p.source, "version": p.version}
        if p.digest:
            entry["digest"] = p.digest
        if p.built is not None:  # full precision: builds a second apart must still order
            entry["built"] = p.built.astimezone(UTC).isoformat().replace("+00:00", "Z")
        packages[p.name] = entry
    data = {
        "apiVersion": API_VERSION,
        "kind": "Release",
        "project": release.project,
        "version": release.version,
        "channel": release.channel,
        "trigger": release.trigger,
        "created": iso(release.created),
        "packages": packages,
    }
    text = yamlio.dump_new(data, _HEADER.format(what="release records are immutable"))
    _remember_written(text, release_from_data(data))
    return text


def release_from_data(data: Any) -> Release:
    packages = []
    for name, entry in (data.get("packages") or {}).items():
        kind: Literal["image", "chart"] = "chart" if "chart" in entry else "image"
        packages.append(
            ReleasedPackage(
                name=str(name),
                kind=kind,
                source=str(entry[kind]),
                version=str(entry["version"]),
                digest=entry.get("digest"),
                built=parse_time(entry["built"]) if entry.get("built") else None,
            )
        )
    return Release(
        project=str(data["project"]),
        version=str(data["version"]),
        channel=str(data["channel"]),
        trigger=data.get("trigger"),
        created=parse_time(data["created"]),
        packages=tuple(packages),
    )


_RELEASE_MEMO: dict[Path, tuple[str, Release]] = {}
_RELEASE_MEMO_LIMIT = 4096

_WRITTEN: dict[str, Any] = {}
"""Text this process serialised -> what reading that text gives, built from the very
data that was dumped (the dump round-trips its scalars, which tests/unit/
test_records_written.py checks): the pass after the one that wrote a record or state
file does not parse it (issue 22). Keyed by the text alone, so an entry is right
whether or not the pass that wrote it got its commit pushed."""


def _remember_written(text: str, value: Any) -> None:
    if len(_WRITTEN) >= _RELEASE_MEMO_LIMIT:
        _WRITTEN.clear()
    _WRITTEN[text] = value


def _written(text: str, kind: type, project: str) -> Any:
    """What this process wrote as ``text``, if it was a ``kind`` of ``project``."""
    value: Any = _WRITTEN.get(text)
    return value if isinstance(value, kind) and getattr(value, "project", None) == project else None


def read_release(root: Path, project: str, version: str) -> Release | None:
    """The release record, or None. One pass asks for the same record from several
    places (lifecycle, pins, drift, notifications): parsing is skipped when the text
    is the same as last time."""
    path = root / release_path(project, version)
    try:
        text = safepaths.read_text(root, release_path(project, version))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    memo = _RELEASE_MEMO.get(path)
    if memo is not None and memo[0] == text:
        return memo[1]
    written = _written(text, Release, project)
    try:
        release = written or release_from_data(yamlio.load_one_fast(text))
    except (KeyError, TypeError, ValueError, AttributeError, YAMLError) as exc:
        raise ReconcilerError(
            f"{release_path(project, version)}: unreadable release: {exc}"
        ) from exc
    if len(_RELEASE_MEMO) >= _RELEASE_MEMO_LIMIT:
        _RELEASE_MEMO.clear()
    _RELEASE_MEMO[path] = (text, release)
    return release


def release_versions(root: Path, project: str) -> list[str]:
    """Versions that have a record (directory listing only; files are not parsed)."""
    names = safepaths.listdir(root, f"releases/{project}")
    return [n[: -len(".yaml")] for n in names if n.endswith(".yaml")]


RECENT_LIMIT = 50
"""Releases remembered in the state file for lifecycle decisions (newest kept)."""


@dataclass(frozen=True)
class RecentRelease:
    version: str
    channel: str
    created: datetime


@dataclass
class ProjectState:
    project: str
    channels: dict[str, str] = field(default_factory=dict)  # channel -> newest release
    history: dict[str, list[Deployment]] = field(default_factory=dict)  # env -> oldest first
    blocks: dict[str, str] = field(default_factory=dict)  # release -> reason
    recent: list[RecentRelease] = field(default_factory=list)  # oldest first, bounded

    def current(self, environment: str) -> str | None:
        deployments = self.history.get(environment)
        return deployments[-1].release if deployments else None

    def remember(self, release: Release) -> None:
        """Add a new release; forget the oldest ones no environment runs any more."""
        self.recent.append(RecentRelease(release.version, release.channel, release.created))
        running = {self.current(env) for env in self.history}
        excess = len(self.recent) - RECENT_LIMIT
        if excess > 0:
            kept = []
            for entry in self.recent:
                if excess > 0 and entry.version not in running:
                    excess -= 1
                    continue
                kept.append(entry)
            self.recent = kept

    def deploy(self, deployment: Deployment) -> None:
        entries = self.history.setdefault(deployment.environment, [])
        entries.append(deployment)
        del entries[:-HISTORY_LIMIT]


_STATE_MEMO: dict[Path, tuple[str, ProjectState]] = {}


def _copy_state(state: ProjectState) -> ProjectState:
    """A copy callers may change (its entries are immutable)."""
    return ProjectState(
        state.project,
        dict(state.channels),
        {env: list(entries) for env, entries in state.history.items()},
        dict(state.blocks),
        list(state.recent),
    )


def read_state(root: Path, project: str) -> ProjectState:
    """The project's state file (an empty state when there is none yet).

    A pass reads it in several steps; parsing is skipped when the text is the same
    as last time (compared by content: the file is rewritten in place, possibly
    within one tick of the file system's clock).
    """
    path = root / state_path(project)
    try:
        text = safepaths.read_text(root, state_path(project))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return ProjectState(project)
    memo = _STATE_MEMO.get(path)
    if memo is not None and memo[0] == text:
        return _copy_state(memo[1])
    written = _written(text, ProjectState, project)
    try:
        state = _copy_state(written) if written else _parse_state(project, text)
    except (KeyError, TypeError, ValueError, AttributeError, YAMLError) as exc:
        # A hand-edited or damaged state file: stop this project, say which file.
        raise ReconcilerError(f"{state_path(project)}: unreadable state: {exc}") from exc
    if len(_STATE_MEMO) >= _RELEASE_MEMO_LIMIT:
        _STATE_MEMO.clear()
    _STATE_MEMO[path] = (text, _copy_state(state))
    return state


def _parse_state(project: str, text: str) -> ProjectState:
    return _state_from_data(project, yamlio.load_one_fast(text) or {})


def _state_from_data(project: str, data: Any) -> ProjectState:
    state = ProjectState(project)
    state.channels = {str(k): str(v) for k, v in (data.get("channels") or {}).items()}
    for env, entries in (data.get("environments") or {}).items():
        state.history[str(env)] = [
            Deployment(
                environment=str(env),
                release=str(e["release"]),
                at=parse_time(e["at"]),
                by=str(e.get("by", "reconciler")),
                automatic=bool(e.get("automatic", True)),
                phase=str(e["phase"]) if e.get("phase") else None,
                **_verification_fields(e.get("verification")),
            )
            for e in entries or []
        ]
    state.blocks = {str(k): str(v) for k, v in (data.get("blocks") or {}).items()}
    state.recent = [
        RecentRelease(str(r["version"]), str(r["channel"]), parse_time(r["created"]))
        for r in data.get("recent") or []
    ]
    return state


def _verification_fields(data: Any) -> dict[str, Any]:
    """A deployment's ``verification: {result, at, reason}`` as Deployment fields."""
    if not isinstance(data, dict) or data.get("result") not in ("verified", "failed"):
        return {}
    return {
        "verification": str(data["result"]),
        "verified_at": parse_time(data["at"]) if data.get("at") else None,
        "verification_reason": str(data.get("reason") or ""),
    }


def _deployment_data(d: Deployment) -> dict[str, Any]:
    data: dict[str, Any] = {"release": d.release, "at": iso(d.at), "by": d.by}
    data["automatic"] = d.automatic
    if d.phase:
        data["phase"] = d.phase
    if d.verification:
        concluded: dict[str, Any] = {"result": d.verification}
        if d.verified_at is not None:
            concluded["at"] = iso(d.verified_at)
        if d.verification_reason:
            concluded["reason"] = d.verification_reason
        data["verification"] = concluded
    return data


def state_to_text(state: ProjectState) -> str:
    data: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "ProjectState",
        "project": state.project,
        "channels": dict(sorted(state.channels.items())),
        "environments": {
            env: [_deployment_data(d) for d in entries]
            for env, entries in sorted(state.history.items())
        },
    }
    if state.blocks:
        data["blocks"] = dict(sorted(state.blocks.items()))
    data["recent"] = [
        {"version": r.version, "channel": r.channel, "created": iso(r.created)}
        for r in state.recent
    ]
    text = yamlio.dump_new(data, _HEADER.format(what="the reconciler keeps this file"))
    _remember_written(text, _state_from_data(state.project, data))
    return text


class WriteJournal:
    """Every file written while it is active, with what the file held before that
    write, so the writes made since a :meth:`mark` can be undone exactly (newest
    first): a project that fails half-way through a pass leaves no trace, even in
    files another project changed earlier in the same pass."""

    def __init__(self) -> None:
        self._entries: list[tuple[Path, str, bytes | None]] = []

    def mark(self) -> int:
        return len(self._entries)

    def note(self, root: Path, path: str) -> None:
        try:
            before: bytes | None = safepaths.read_bytes(root, path)
        except FileNotFoundError:
            before = None
        self._entries.append((root, path, before))

    def written(self) -> list[str]:
        """The work-tree paths written so far, in order (repeats included)."""
        return [path for _, path, _ in self._entries]

    def undo(self, mark: int) -> None:
        for root, path, before in reversed(self._entries[mark:]):
            if before is None:
                safepaths.unlink(root, path, missing_ok=True)
            else:
                safepaths.write_bytes(root, path, before)
        del self._entries[mark:]


_JOURNAL: contextvars.ContextVar[WriteJournal | None] = contextvars.ContextVar(
    "write_journal", default=None
)


@contextlib.contextmanager
def journal() -> Iterator[WriteJournal]:
    """Record the writes of :func:`write_if_changed` and :func:`write_file` in this
    context (one pass) in a :class:`WriteJournal`."""
    active = WriteJournal()
    token = _JOURNAL.set(active)
    try:
        yield active
    finally:
        _JOURNAL.reset(token)


def write_file(root: Path, path: str, data: bytes) -> None:
    """Replace the bytes of ``path`` in the work tree ``root`` atomically (a crash
    leaves the old or the new file); never through a symlink (see safepaths)."""
    active = _JOURNAL.get()
    if active is not None:
        active.note(root, path)
    safepaths.write_bytes(root, path, data)


def write_if_changed(root: Path, path: str, text: str) -> bool:
    """Write ``text`` unless the file already holds exactly that. True when written."""
    try:
        if safepaths.read_bytes(root, path) == text.encode("utf-8"):
            return False
    except (FileNotFoundError, IsADirectoryError):
        pass  # a folder in the way is refused by write_file
    write_file(root, path, text.encode("utf-8"))
    return True


def pin_to_text(
    project: str, environment: str, release: str | None, reason: str, by: str, when: datetime
) -> str:
    data = {
        "apiVersion": API_VERSION,
        "kind": "Pin",
        "project": project,
        "environment": environment,
        "release": release,
        "reason": reason,
        "by": by,
        "at": iso(when),
    }
    return yamlio.dump_new(
        {k: v for k, v in data.items() if v is not None},
        "# A pin: the reconciler never changes this environment.\n"
        "# Delete this file (or run `reconciler unpin`) to release it.\n",
    )
