"""What git prints, read: commit records from ``git log`` and the stderr and porcelain
markers that tell a remote failure or a lost push race from local damage. Pure: no
process is run here (gitrepo.py runs git and hands the text over)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "LOG_FORMAT",
    "LOST_REF_UPDATE_RACE",
    "MISSING_REMOTE_BRANCH",
    "RACE_REJECTION_MARKERS",
    "REMOTE_FAILURE_MARKERS",
    "SHA",
    "CommitInfo",
    "parse_commit",
]

# git's stderr when the failure lies with the remote (network, auth, missing
# repository, server refusal). Such failures leave the local clone alone;
# anything else during sync is taken as local damage and repaired by re-cloning.
REMOTE_FAILURE_MARKERS = (
    "unable to access",
    "could not read from remote",
    "authentication failed",
    "does not appear to be a git repository",
    "could not resolve",
    "connection refused",
    "connection timed out",
    "terminal prompts disabled",
    "permission denied",
    "host key verification failed",
    "repository not found",
    "not found",
    "the remote end hung up",
    "rpc failed",
    "timeout",
    "http ",
)

# Porcelain push summaries meaning "someone else updated the ref first".
RACE_REJECTION_MARKERS = ("non-fast-forward", "fetch first", "stale info")
# A push that lost the race inside the server, after the client's fast-forward
# check passed: receive-pack reports "(failed to update ref)" and explains on stderr.
LOST_REF_UPDATE_RACE = re.compile(r"cannot lock ref '[^']+': is at [0-9a-f]+ but expected")

MISSING_REMOTE_BRANCH = "couldn't find remote ref"
SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")

_FIELD = "\x1f"
_TRAILER_SEP = "\x1e"
_TRAILER_KV = "\x1d"
LOG_FORMAT = (
    "%H%x1f%an%x1f%ae%x1f%cI%x1f"
    "%(trailers:only,unfold,separator=%x1e,key_value_separator=%x1d)%x1f%B"
)


@dataclass(frozen=True)
class CommitInfo:
    """One commit as ``WorkTree.log`` reports it.

    ``when`` is the committer date (when the change was made on top of the branch,
    which survives rebases better than the author date), as an aware UTC datetime.
    ``subject`` is the first line of ``message``. ``trailers`` maps each trailer key,
    spelled as in the message, to its values in order (continuation lines unfolded).
    """

    sha: str
    author: str
    email: str
    when: datetime
    subject: str
    message: str
    trailers: dict[str, list[str]]


def parse_commit(record: str) -> CommitInfo:
    sha, author, email, committed, trailer_text, message = record.lstrip("\n").split(_FIELD, 5)
    trailers: dict[str, list[str]] = {}
    for trailer in trailer_text.split(_TRAILER_SEP):
        if _TRAILER_KV in trailer:
            key, value = trailer.split(_TRAILER_KV, 1)
            trailers.setdefault(key.strip(), []).append(value.strip())
    message = message.rstrip("\n")
    return CommitInfo(
        sha=sha,
        author=author,
        email=email,
        when=datetime.fromisoformat(committed).astimezone(UTC),
        subject=message.split("\n", 1)[0],
        message=message,
        trailers=trailers,
    )
