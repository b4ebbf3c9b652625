"""The work dir's own bookkeeping (``<work dir>/cache/state.json``), never committed.

One typed schema, ``WorkState``, lists every key; the file carries a version. Files
written before the version field (version 1) load unchanged: their keys are the same.
Anything unreadable starts afresh: it is a cache, the repository is the truth.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypedDict

from reconciler.gitrepo import WorkTree
from reconciler.planning import SettleState, TriggerDecision

__all__ = ["VERSION", "KeptTable", "LocalState", "WorkState", "Workspace"]

KeptTable = Literal["digests", "platforms", "created", "signatures"]

VERSION = 2
"""2: the ``version`` key itself. 1 (no key): the same keys, written before it."""


class WorkState(TypedDict, total=False):
    """Every key of state.json. Tables of kept registry answers are keyed
    ``feed|repository|tag`` (``|platform`` for platforms and creation times)."""

    version: int
    settle: dict[str, dict[str, Any]]  # trigger -> settle window (planning.SettleState)
    history: dict[str, list[dict[str, Any]]]  # trigger -> last decisions, for `explain`
    retryAfter: dict[str, float]  # feed -> wall-clock time before which it is not asked
    digests: dict[str, list[Any]]  # tag -> [digest, asked at]
    platforms: dict[str, list[Any]]  # tag|platform -> [has an image for it, asked at]
    created: dict[str, list[Any]]  # tag|platform -> [creation time, asked at]
    signatures: dict[str, list[Any]]  # feed|repository|digest|key set -> [reason, asked at]
    selections: dict[str, list[Any]]  # feed|repository|rule -> [tag list hash, chosen]
    observed: dict[str, list[Any]]  # project/env -> [release, overlay fingerprint]
    pullRequests: dict[str, dict[str, Any]]  # project/env -> open promotion proposal
    waitingAnnounced: list[Any]  # waiting reasons already notified
    activeFailures: list[Any]  # failures notified and not yet cleared
    refusalsAnnounced: dict[str, float]  # project/package|digest|kind -> last judged at


class LocalState:
    """The work dir's JSON bookkeeping: settle windows and trigger history."""

    HISTORY = 20

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: WorkState = {"version": VERSION, "settle": {}, "history": {}}
        with contextlib.suppress(OSError, ValueError):  # missing or damaged: start afresh
            loaded = json.loads(path.read_text())
            if isinstance(loaded, dict) and loaded.get("version", 1) <= VERSION:
                self.data = loaded  # type: ignore[assignment]  # version 1 has the same keys
                self.data["version"] = VERSION

    def kept(self, table: KeptTable) -> dict[str, list[Any]]:
        """One table of kept registry answers: key -> [answer, wall-clock time asked]."""
        if table == "digests":
            return self.data.setdefault("digests", {})
        if table == "platforms":
            return self.data.setdefault("platforms", {})
        if table == "signatures":
            return self.data.setdefault("signatures", {})
        return self.data.setdefault("created", {})

    def settle(self, trigger: str) -> SettleState | None:
        raw = self.data.get("settle", {}).get(trigger)
        if not raw:
            return None
        return SettleState(
            tuple(tuple(x) for x in raw["candidate"]),
            datetime.fromisoformat(raw["first_seen"]),
            datetime.fromisoformat(raw["last_change"]),
        )

    def set_settle(self, trigger: str, state: SettleState | None) -> None:
        settle = self.data.setdefault("settle", {})
        if state is None:
            settle.pop(trigger, None)
        else:
            settle[trigger] = {
                "candidate": [list(x) for x in state.candidate],
                "first_seen": state.first_seen.isoformat(),
                "last_change": state.last_change.isoformat(),
            }

    def record(self, decision: TriggerDecision, when: datetime, found: dict[str, Any]) -> None:
        entries = self.data.setdefault("history", {}).setdefault(decision.trigger, [])
        entries.append(
            {
                "at": when.isoformat(),
                "release": decision.release.version if decision.release else None,
                "reason": decision.reason,
                "found": found,
            }
        )
        del entries[: -self.HISTORY]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        # No indent: the C encoder (an indent selects the pure-Python one, which cost a
        # warm sidecar pass ~70 ms at 100 projects); the file is a cache, not for people.
        tmp.write_text(json.dumps(self.data, sort_keys=True, separators=(",", ":")))
        os.replace(tmp, self.path)


@dataclass
class Workspace:
    """What the stages of a pass work on: the Git work tree and the work dir's state."""

    tree: WorkTree
    local: LocalState

    @property
    def root(self) -> Path:
        return self.tree.root
