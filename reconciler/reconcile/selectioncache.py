"""The work dir's memory of each package's chosen tag, so a warm pass with the same tag
list and rule (and, for the suffix strategy, the same suffix and precision of the
current tag) does not judge every tag again, including the first pass after a release."""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from reconciler import source_stamp
from reconciler.model import VersionRule
from reconciler.selection import Selection, current_context, select

__all__ = ["SelectionCache", "fingerprint"]


@functools.cache
def _selection_stamp() -> str:
    return source_stamp("model", "selection", "userregex", "versions")


def fingerprint(tags: list[str]) -> str:
    """A hash of the tag list that tells any two lists apart (a reordered list is
    only a cache miss). Tags joined by NUL are unambiguous when no tag holds a NUL
    (then there are exactly len - 1 of them), and 10x cheaper to make than JSON, a
    warm pass's largest cost after the network (issue 22); else JSON."""
    joined = "\0".join(tags)
    if tags and joined.count("\0") == len(tags) - 1:
        encoded = b"nul\0" + joined.encode("utf-8", "surrogatepass")
    else:
        encoded = b"json\0" + json.dumps(tags, ensure_ascii=True).encode()
    return hashlib.sha256(encoded).hexdigest()


class SelectionCache:
    """Remembers each package's chosen tag across passes, in the work dir.

    Selection parses and judges every tag (most of a warm pass at 100,000 tags);
    with the same tag list, rule and ``current_context`` the answer cannot differ, so it
    is reused and the per-tag reasons are only computed if someone asks for them
    (``explain``, a plan that finds nothing). ``newest-build`` depends on
    creation times as well and is never cached.
    """

    def __init__(self, store: dict[str, list[Any]]) -> None:
        self.store = store
        self.used: set[str] = set()
        self._fingerprints: dict[int, str] = {}

    def _fingerprint(self, tags: list[str]) -> str:
        known = self._fingerprints.get(id(tags))  # one list per repository per pass
        if known is None:
            known = fingerprint(tags)
            self._fingerprints[id(tags)] = known
        return known

    def select(
        self, pkg: Any, rule: VersionRule, tags: list[str], current: str | None
    ) -> Selection:
        if rule.strategy == "newest-build":
            return select(rule, tags, current=current, kind=pkg.kind)
        # Keyed on what selection takes from ``current``, not on ``current`` itself:
        # after a release ``current`` is the tag just chosen, and the first pass after
        # it must find the answer this pass computed (issue 22: it used to miss).
        context = current_context(rule, current)
        rule_id = hashlib.sha256(f"{_selection_stamp()}|{rule!r}|{context}".encode()).hexdigest()
        rule_id = rule_id[:24]
        key = f"{pkg.feed}|{pkg.repository}|{rule_id}"
        self.used.add(key)
        fingerprint = self._fingerprint(tags)
        cached = self.store.get(key)
        if cached is not None and cached[0] == fingerprint:
            return Selection(
                cached[1], detail=lambda: select(rule, tags, current=current, kind=pkg.kind)
            )
        selection = select(rule, tags, current=current, kind=pkg.kind)
        self.store[key] = [fingerprint, selection.chosen]
        return selection

    def forget_unused(self, polled: set[str]) -> None:
        """Drop entries of polled repositories that no package used this pass."""
        for key in [k for k in self.store if k not in self.used]:
            if key[: key.rindex("|") + 1] in polled:
                del self.store[key]
