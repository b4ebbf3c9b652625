"""The audit trail in commit trailers: which events a commit records for a project
(``Release``, ``Deployed``, ``Verified`` ...), who made them, in which environment.
``reconciler history`` prints them; the dashboard shows them per environment and release."""

from __future__ import annotations

from typing import Any

__all__ = ["EVENT_TRAILERS", "entries"]

EVENT_TRAILERS = (
    "Release",
    "Deployed",
    "Blocked",
    "Unblocked",
    "Pinned",
    "Unpinned",
    "Rollback",
    "Drift",
    "Verified",  # Verified: <project> <version> <env> at <time>
    "Failed",  # Failed: <project> <version> <env> at <time> (<reason>)
    "Rolled-Back",  # Rolled-Back: <project> <env> <failed> -> <previous>
)
# Where the environment is among a trailer's words, for --env (None: not filtered).
_ENV_WORD = {"Deployed": -1, "Pinned": -1, "Unpinned": -1, "Verified": 2, "Failed": 2,
             "Rolled-Back": 1}  # fmt: skip


def _other_environment(key: str, words: list[str], environment: str | None) -> bool:
    """Whether --env excludes this event: it names another environment (or is a
    release, which belongs to no environment)."""
    if environment is None:
        return False
    if key == "Release":
        return True
    index = _ENV_WORD.get(key)
    if index is None:
        return False
    return len(words) <= max(index, -index - 1) or words[index] != environment


def _by(commit: Any, key: str, words: list[str]) -> str:
    """Who made the event: a ``Deployed-By: <project> <version> <env> <who>`` trailer
    for that very deployment when the commit has one (it may mix deployments by several
    hands), else the commit's first ``Promoted-By``, else its author."""
    if key == "Deployed" and len(words) >= 3:
        prefix = " ".join(words) + " "
        for value in commit.trailers.get("Deployed-By", []):
            if value.startswith(prefix):
                return str(value[len(prefix) :])
    return str((commit.trailers.get("Promoted-By") or [commit.author])[0])


def entries(commits: list[Any], project: str, environment: str | None) -> list[dict[str, Any]]:
    out = []
    for commit in commits:
        for key in EVENT_TRAILERS:
            for value in commit.trailers.get(key, []):
                words = value.split()
                if not words or words[0] != project:
                    continue
                if _other_environment(key, words, environment):
                    continue
                out.append(
                    {
                        "commit": commit.sha,
                        "when": commit.when.isoformat(),
                        "author": commit.author,
                        "by": _by(commit, key, words),
                        "event": key.lower(),
                        "detail": " ".join(words[1:]),
                        "subject": commit.subject,
                    }
                )
    return out
