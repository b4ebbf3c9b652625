"""The semver strategy's judgement of one tag, and its fast path (pure).

``semver_judge(rule)`` says what the semver strategy thinks of a tag: its
``Version``, or why it is refused (``newest-build`` reuses it as a filter).
``best_semver`` finds the tag the strategy chooses without judging tags that
cannot win: a prefilter on ``allow``'s literal prefix (``literal_prefix``) and on
the tags' leading numbers (``leading_core``). ``reconciler.selection`` computes
the full answer, with reasons, only when asked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from reconciler.model import PackageKind, VersionRule
from reconciler.ranges import parse_range
from reconciler.tags import is_valid_tag
from reconciler.userregex import compile_user_regex
from reconciler.versions import Version, is_hash_like, parse_version

__all__ = [
    "RankKey",
    "best_semver",
    "leading_core",
    "literal_prefix",
    "not_a_version_reason",
    "semver_judge",
    "version_rank",
]

RankKey = tuple[Any, ...]
"""Orders accepted tags of one strategy; higher is better. Ends with a tiebreak."""


def version_rank(version: Version) -> RankKey:
    return (version.key, version.tiebreak)


_LEADING_NUMBERS = re.compile(r"[vV]?([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?")
_LITERAL = re.compile(r"[A-Za-z0-9_\-/:@,;'\"=<>!%&~` ]|\\[^A-Za-z0-9]")
_QUANTIFIERS = frozenset("?*+{")


def literal_prefix(pattern: str | None) -> str:
    """Text every match of an ``^``-anchored ``pattern`` starts with ("" when unsure).

    ``^build-[0-9]+`` -> ``build-``; ``^v1\\.`` -> ``v1.``; a quantified last
    character (``^v?1``), an alternation or a leading flag give less or nothing.
    A tag that does not start with it cannot match, so no regex needs to run.
    """
    if pattern is None or not pattern.startswith("^") or "|" in pattern:
        return ""
    literal: list[str] = []
    position = 1
    while match := _LITERAL.match(pattern, position):
        literal.append(match[0][-1])
        position = match.end()
    if pattern[position : position + 1] in _QUANTIFIERS and literal:
        literal.pop()  # `^ab?`: the b is optional
    return "".join(literal)


def leading_core(tag: str) -> tuple[int, ...] | None:
    """The first three numbers of a version-looking tag, cheaply (None: not a version).

    Every version ``parse_version`` accepts starts with these numbers (missing ones
    are 0), so a tag whose leading core is below a version's first three numbers
    cannot beat it.
    """
    match = _LEADING_NUMBERS.match(tag)
    return tuple(map(int, match.groups("0"))) if match is not None else None


def best_semver(rule: VersionRule, tags: list[str], kind: PackageKind) -> str | None:
    """The tag the semver strategy chooses, without judging tags that cannot win.

    Same answer as ``reconciler.selection._select_all`` (a property test checks it). Tags outside
    ``allow``'s literal prefix are dropped before any regex; the rest are judged
    highest leading numbers first, and judging stops at the first tag whose leading
    numbers are below the best version found: nothing after it can beat it.
    """
    prefix = literal_prefix(rule.allow)
    candidates = [
        (core, tag)
        for tag in tags
        if tag.startswith(prefix) and (core := leading_core(tag)) is not None
    ]
    candidates.sort(reverse=True)
    allow = compile_user_regex(rule.allow) if rule.allow is not None else None
    ignores = [compile_user_regex(p) for p in rule.ignore]
    judge = semver_judge(rule)
    best: tuple[RankKey, str, tuple[int, ...]] | None = None
    for core, tag in candidates:
        if best is not None and core < best[2]:
            break
        if not is_valid_tag(tag, kind) or (allow is not None and not allow.search(tag)):
            continue
        if any(p.search(tag) for p in ignores):
            continue
        verdict = judge(tag)
        if isinstance(verdict, str):
            continue
        rank = version_rank(verdict)
        if best is None or rank > best[0]:
            best = (rank, tag, verdict.core[:3])
    return best[1] if best is not None else None


def not_a_version_reason(tag: str, strict: bool) -> str:
    if is_hash_like(tag):
        return "not a version (looks like a commit hash)"
    if strict and parse_version(tag) is not None:
        return "not a strict SemVer 2.0 version"
    return "not a version"


def semver_judge(rule: VersionRule) -> Callable[[str], Version | str]:
    """What the semver strategy thinks of one tag: its version, or why it is refused.

    ``newest-build`` uses the same judgement as a filter when the rule has ``range``,
    ``prerelease`` or ``strict``.
    """
    version_range = parse_range(rule.range) if rule.range is not None else None
    prerelease = compile_user_regex(rule.prerelease) if rule.prerelease is not None else None

    def judge(tag: str) -> Version | str:
        version = parse_version(tag, strict=rule.strict)
        if version is None:
            return not_a_version_reason(tag, rule.strict)
        label = version.prerelease_label
        if prerelease is not None and not prerelease.search(label):
            what = f"pre-release {label!r}" if label else "stable version"
            return f"{what} does not match {rule.prerelease}"
        if version_range is not None and not version_range.contains(
            version, include_prerelease=prerelease is not None
        ):
            if version.is_prerelease and version_range.contains(version, include_prerelease=True):
                return f"pre-release excluded: range {version_range} names none of it"
            return f"outside range {version_range}"
        if version_range is None and prerelease is None and version.is_prerelease:
            return "pre-release excluded: no prerelease pattern admits it"
        return version

    return judge
