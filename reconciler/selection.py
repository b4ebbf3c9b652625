"""Choose a tag for a package from a ``VersionRule`` (pure).

``select`` takes the tag list of a repository (plus creation times for
``newest-build``) and returns the chosen tag exactly as the registry spells it,
every accepted tag best first, and a human reason for every rejected tag.
The result never depends on the order of the input tags.

Common filters, applied in this order to every tag:

1. the OCI tag grammar ``[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`` for images (a lax
   registry may list ``1.2.3+meta``, which no image reference can carry); chart
   versions may also hold ``+`` (build metadata; the Helm OCI feed already read the
   ``_`` that ``helm push`` stores back as ``+``). Anything else (newlines, quotes,
   300 characters) is rejected with a reason and never selected;
2. ``allow``: the tag must match (a search, as Flux and Kargo do);
3. ``ignore``: the tag must match none of these.

Every user pattern runs on RE2 (``reconciler.userregex``): matching is linear
in the tag, so no pattern and tag pair can make a pass hang.

Strategies:

``semver``
    lenient parsing (``strict`` for exact SemVer 2.0), ``range`` and the
    ``prerelease`` regex over the pre-release label (``^$`` stable only, ``^rc``
    release candidates). Without a ``prerelease`` regex, pre-releases follow the
    range's npm rule, and without a range only stable versions qualify; with
    one, the regex alone decides about pre-releases. Highest version wins.
``suffix``
    Renovate's docker versioning: ``v`` stripped, the tag split at its first
    ``-`` into numbers and suffix (``1.2-alpine``); only tags with the suffix of
    ``current`` (or ``rule.suffix``) qualify, with ``same_precision`` only tags
    with as many numeric parts as ``current``. ``range`` applies to the numbers.
``regex``
    ``allow`` is required; ``extract`` (``$name``, ``${name}`` or ``$1``) picks
    the value to order by, the whole tag without it. ``order`` numerical (values
    that are not numbers are rejected, never fatal) or alphabetical; ``pick``
    highest or lowest.
``newest-build``
    any tag passing the common filters except moving tags (``latest``, ``main``,
    see ``MOVING_TAGS``), ordered by its creation time from ``created``; equal
    times go to versions, then by version or text, so the answer never depends on
    which times a cache held. With ``range``, ``prerelease`` or ``strict`` only the
    tags the semver strategy would accept qualify. Tags with unknown creation times are listed in
    ``needs_metadata`` (at most ``scan_limit``, the highest-looking tags first:
    versions by version, then other tags by text) for the caller to fetch.
``digest``
    follows the mutable tag ``rule.tag``; "newer" means its digest changed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from reconciler.model import PackageKind, VersionRule
from reconciler.ranges import parse_range
from reconciler.semverpick import (
    RankKey,
    best_semver,
    literal_prefix,
    semver_judge,
    version_rank,
)
from reconciler.tags import SHOWN_TAG_LENGTH, invalid_tag_reason, is_valid_tag, printable_tag
from reconciler.userregex import UnsupportedRegex, UserRegex, compile_user_regex
from reconciler.versions import Version, is_hash_like, parse_version

__all__ = [
    "Candidate",
    "Selection",
    "current_context",
    "is_moving_tag",
    "is_newer",
    "is_valid_tag",
    "literal_prefix",
    "printable_tag",
    "select",
    "unused_rule_fields",
    "validate_rule",
]

_EXTRACT = re.compile(r"\$(?:\{(?P<braced>\w+)\}|(?P<bare>\w+))")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_SUFFIX_TAG = re.compile(r"[vV]?(?P<numbers>[0-9]+(?:\.[0-9]+){0,3})(?:-(?P<suffix>.+))?")
_STRATEGIES = ("semver", "suffix", "regex", "newest-build", "digest")
MOVING_TAGS = frozenset(
    {
        "latest", "main", "master", "develop", "dev", "edge", "nightly", "stable",
        "head", "trunk", "canary", "next", "current", "snapshot", "testing", "unstable",
    }
)  # fmt: skip
"""Tag names that point at whatever was built last: never a build newest-build releases
(they tie with the build they copy, and a cached creation time for them goes stale)."""

_FIELDS_OF = {
    "semver": ("range", "prerelease", "strict"),
    "suffix": ("range", "suffix", "samePrecision"),
    "regex": ("extract", "order", "pick"),
    "newest-build": ("range", "prerelease", "strict", "scanLimit"),
    "digest": ("tag",),
}
"""Rule fields (as written in the config) that only some strategies use; ``packages``,
``strategy``, ``allow``, ``ignore`` and ``platform`` apply to all, and ``scanLimit``
also to any strategy with a ``platform``."""


@dataclass(frozen=True)
class Candidate:
    """A tag and why it was accepted or rejected."""

    tag: str
    reason: str

    def __str__(self) -> str:
        return f"{printable_tag(self.tag)}: {self.reason}"


class Selection:
    """The outcome of ``select``: the chosen tag, and on demand why.

    ``accepted`` (best first) and ``rejected`` (with human reasons, in tag order)
    may be computed lazily by ``detail``: a caller that remembers an earlier
    choice for the same tag list (reconcile's selection cache) skips the per-tag
    work, and only ``explain`` or a failing plan pays for the reasons.
    """

    __slots__ = ("_accepted", "_detail", "_rejected", "chosen", "needs_metadata")

    def __init__(
        self,
        chosen: str | None,
        accepted: tuple[str, ...] = (),
        rejected: tuple[Candidate, ...] = (),
        needs_metadata: tuple[str, ...] = (),
        *,
        detail: Callable[[], Selection] | None = None,
    ) -> None:
        self.chosen = chosen  # the tag exactly as in the registry
        self.needs_metadata = needs_metadata  # newest-build: tags whose `created` is needed
        self._accepted = accepted
        self._rejected = rejected
        self._detail = detail

    def _load(self) -> None:
        if self._detail is not None:
            full = self._detail()
            self._accepted, self._rejected, self._detail = full.accepted, full.rejected, None

    @property
    def accepted(self) -> tuple[str, ...]:
        self._load()
        return self._accepted

    @property
    def rejected(self) -> tuple[Candidate, ...]:
        self._load()
        return self._rejected

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Selection):
            return NotImplemented
        return (self.chosen, self.accepted, self.rejected, self.needs_metadata) == (
            other.chosen,
            other.accepted,
            other.rejected,
            other.needs_metadata,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Selection(chosen={self.chosen!r}, accepted={self.accepted!r}, "
            f"rejected={self.rejected!r}, needs_metadata={self.needs_metadata!r})"
        )


def _extract_group(extract: str) -> str | int | None:
    """The group ``extract`` names: ``$ts``/``${ts}`` -> "ts", ``$1`` -> 1; None if malformed."""
    match = _EXTRACT.fullmatch(extract)
    if match is None:
        return None
    name = match["braced"] or match["bare"]
    return int(name) if name.isdigit() else name


def validate_rule(rule: VersionRule) -> list[str]:
    """Every problem of a rule as a message, for config validation (empty when fine)."""
    problems: list[str] = []
    if rule.strategy not in _STRATEGIES:
        problems.append(f"unknown strategy {rule.strategy!r}; use one of {', '.join(_STRATEGIES)}")
    allow: UserRegex | None = None
    for key, pattern in [("allow", rule.allow), ("prerelease", rule.prerelease)] + [
        ("ignore", p) for p in rule.ignore
    ]:
        if pattern is None:
            continue
        try:
            compiled = compile_user_regex(pattern)
        except UnsupportedRegex as error:
            problems.append(f"{key}: {error}")
            continue
        if key == "allow":
            allow = compiled
    if rule.range is not None:
        try:
            parse_range(rule.range)
        except ValueError as error:
            problems.append(f"range: {error}")
    if rule.strategy == "regex" and rule.allow is None:
        problems.append("the regex strategy needs an allow pattern")
    if rule.extract is not None:
        group = _extract_group(rule.extract)
        if group is None:
            problems.append(f"extract: {rule.extract!r} must name a group like $name or $1")
        elif allow is not None and not allow.has_group(group):
            problems.append(f"extract: {rule.extract!r} names no group of allow {rule.allow!r}")
    if rule.strategy == "digest" and not rule.tag:
        problems.append("the digest strategy needs the tag to follow")
    if rule.scan_limit < 1:
        problems.append(f"scan_limit must be at least 1, not {rule.scan_limit}")
    return problems


def unused_rule_fields(strategy: str, written: Iterable[str]) -> list[tuple[str, str]]:
    """(field, message) for every field written in a rule that its strategy would ignore.

    ``written`` are the keys as they appear in the config; a field no strategy uses
    is left to the schema. Validation reports each at its own key.
    """
    used = _FIELDS_OF.get(strategy)
    if used is None:
        return []  # an unknown strategy is reported on its own
    keys = set(written)
    problems = []
    for key in sorted(keys):
        users = [name for name, fields in _FIELDS_OF.items() if key in fields]
        if not users or key in used or (key == "scanLimit" and "platform" in keys):
            continue
        problems.append(
            (key, f"{key} is not used by the {strategy} strategy (only by {', '.join(users)})")
        )
    return problems


# ------------------------------------------------------------------ ranking keys


def _suffix_parts(tag: str) -> tuple[Version, str] | None:
    """``v1.2-alpine`` -> (1.2, "alpine"); None when the tag does not start with numbers."""
    match = _SUFFIX_TAG.fullmatch(tag)
    if match is None:
        return None
    numbers = match["numbers"]
    if "." not in numbers and (len(numbers) > 8 or is_hash_like(numbers)):
        return None
    version = parse_version(numbers)
    if version is None:
        return None
    return Version(tag, version.numbers), match["suffix"] or ""


def _tag_order(tag: str) -> RankKey:
    """Versions above non-versions, versions by version, the rest by text."""
    version = parse_version(tag)
    return (1, version_rank(version)) if version is not None else (0, tag)


# --------------------------------------------------------------------- select


class _Collector:
    """Accumulates accepted (with rank) and rejected tags of one selection."""

    def __init__(self) -> None:
        self.ranked: list[tuple[RankKey, str]] = []
        self.rejected: list[Candidate] = []

    def reject(self, tag: str, reason: str) -> None:
        self.rejected.append(Candidate(tag, reason))

    def accept(self, tag: str, rank: RankKey) -> None:
        self.ranked.append((rank, tag))

    def selection(self, *, lowest_first: bool = False, needs: tuple[str, ...] = ()) -> Selection:
        ordered = sorted(self.ranked, reverse=not lowest_first)
        accepted = tuple(tag for _, tag in ordered)
        return Selection(
            chosen=accepted[0] if accepted else None,
            accepted=accepted,
            rejected=tuple(sorted(self.rejected, key=lambda c: c.tag)),
            needs_metadata=needs,
        )


def _common_filter(
    rule: VersionRule, tags: Iterable[str], kind: PackageKind, out: _Collector
) -> list[str]:
    """Grammar, allow and ignore; returns surviving tags in sorted (input-independent) order."""
    allow = compile_user_regex(rule.allow) if rule.allow is not None else None
    prefix = literal_prefix(rule.allow)
    ignores = [(p, compile_user_regex(p)) for p in rule.ignore]
    survivors = []
    for tag in sorted(set(tags)):
        if not is_valid_tag(tag, kind):
            out.reject(tag, invalid_tag_reason(tag, kind))
        elif allow is not None and not (tag.startswith(prefix) and allow.search(tag)):
            out.reject(tag, f"does not match allow {rule.allow}")
        elif hit := next((text for text, p in ignores if p.search(tag)), None):
            out.reject(tag, f"matches ignore {hit}")
        else:
            survivors.append(tag)
    return survivors


def _select_semver(rule: VersionRule, tags: list[str], out: _Collector) -> None:
    judge = semver_judge(rule)
    for tag in tags:
        verdict = judge(tag)
        if isinstance(verdict, str):
            out.reject(tag, verdict)
        else:
            out.accept(tag, version_rank(verdict))


def current_context(rule: VersionRule, current: str | None) -> tuple[str, int | None] | None:
    """All that ``select`` takes from ``current``: for the suffix strategy the wanted
    suffix and (with ``same_precision``) the number of numeric parts; None for every
    other strategy, which ignores it. Caches key on this rather than on ``current``:
    a release moves ``current`` to the tag just chosen, which has the same suffix and
    precision, so the next pass finds the answer it already has."""
    if rule.strategy != "suffix":
        return None
    current_parts = _suffix_parts(current) if current is not None else None
    if rule.suffix is not None:
        wanted_suffix = rule.suffix.removeprefix("-")
    else:
        wanted_suffix = current_parts[1] if current_parts is not None else ""
    precision = current_parts[0].precision if current_parts and rule.same_precision else None
    return wanted_suffix, precision


def _select_suffix(
    rule: VersionRule, tags: list[str], current: str | None, out: _Collector
) -> None:
    version_range = parse_range(rule.range) if rule.range is not None else None
    context = current_context(rule, current)
    assert context is not None  # the suffix strategy's
    wanted_suffix, precision = context
    for tag in tags:
        parts = _suffix_parts(tag)
        if parts is None:
            out.reject(tag, "not a version")
            continue
        version, suffix = parts
        if suffix != wanted_suffix:
            wanted = repr(wanted_suffix) if wanted_suffix else "none"
            out.reject(tag, f"suffix {suffix!r} is not the wanted suffix ({wanted})")
        elif precision is not None and version.precision != precision:
            out.reject(tag, f"has {version.precision} numeric parts, not {precision}")
        elif version_range is not None and not version_range.contains(version):
            out.reject(tag, f"outside range {version_range}")
        else:
            out.accept(tag, version_rank(version))


def _regex_value(rule: VersionRule, pattern: UserRegex, tag: str) -> str | None:
    """The value ``extract`` pulls out of a tag, the whole tag without ``extract`` (as
    Flux and Argo CD Image Updater order); None when the tag does not match."""
    if rule.extract is None:
        return tag if pattern.search(tag) else None
    group = _extract_group(rule.extract)
    return pattern.group(tag, group if group is not None else 0)


def _regex_rank(rule: VersionRule, pattern: UserRegex, tag: str) -> RankKey | str:
    """The rank of a tag under a regex rule, or the reason it has none."""
    value = _regex_value(rule, pattern, tag)
    if value is None:
        return f"{rule.extract} captured nothing" if rule.extract else "does not match allow"
    if rule.order == "alphabetical":
        return (value, tag)
    if _NUMBER.fullmatch(value) is None:
        return f"extracted value {value[:SHOWN_TAG_LENGTH]!r} is not a number"
    try:
        return (Decimal(value), tag)
    except InvalidOperation:  # pragma: no cover - the pattern above only admits decimals
        return f"extracted value {value!r} is not a number"


def _select_regex(rule: VersionRule, tags: list[str], out: _Collector) -> Selection:
    pattern = compile_user_regex(rule.allow or "")
    for tag in tags:
        rank = _regex_rank(rule, pattern, tag)
        if isinstance(rank, str):
            out.reject(tag, rank)
        else:
            out.accept(tag, rank)
    return out.selection(lowest_first=rule.pick == "lowest")


def is_moving_tag(tag: str) -> bool:
    """A well-known name that CI moves to each new build (``latest``, ``main``, ...)."""
    return tag.lower() in MOVING_TAGS


def _builds(rule: VersionRule, tags: list[str], out: _Collector) -> list[str]:
    """The tags newest-build may choose: never a moving tag, and with ``range``,
    ``prerelease`` or ``strict`` only what the semver strategy would accept."""
    judge = semver_judge(rule) if rule.range or rule.prerelease or rule.strict else None
    builds = []
    for tag in tags:
        verdict = judge(tag) if judge is not None else None
        if is_moving_tag(tag):
            out.reject(tag, "a moving tag, not a build (follow it with strategy: digest)")
        elif isinstance(verdict, str):
            out.reject(tag, verdict)
        else:
            builds.append(tag)
    return builds


def _select_newest_build(
    rule: VersionRule, tags: list[str], created: Mapping[str, datetime], out: _Collector
) -> Selection:
    tags = _builds(rule, tags, out)
    unknown = sorted((t for t in tags if t not in created), key=_tag_order, reverse=True)
    needs = tuple(unknown[: rule.scan_limit])
    for tag in tags:
        if tag in created:
            out.accept(tag, (created[tag], _tag_order(tag)))
    for tag in needs:
        out.reject(tag, "creation time not known yet (metadata requested)")
    for tag in unknown[rule.scan_limit :]:
        out.reject(tag, f"creation time not known (beyond scan_limit {rule.scan_limit})")
    return out.selection(needs=needs)


def _select_digest(rule: VersionRule, tags: list[str], out: _Collector) -> None:
    for tag in tags:
        if tag == rule.tag:
            out.accept(tag, ())
        else:
            out.reject(tag, f"not the followed tag {rule.tag}")


def select(
    rule: VersionRule,
    tags: Iterable[str],
    *,
    current: str | None = None,
    created: Mapping[str, datetime] | None = None,
    digests: Mapping[str, str] | None = None,
    kind: PackageKind = "image",
) -> Selection:
    """Apply ``rule`` to ``tags``; see the module docstring for every strategy.

    ``kind`` is the package's: image tags follow the OCI grammar, chart versions may
    also hold ``+``.

    ``current`` is the tag in use (the suffix strategy takes its suffix and
    precision from it); ``created`` maps tags to creation times (newest-build);
    ``digests`` is accepted for symmetry with ``is_newer`` and does not change
    which tag is chosen. The rule must have passed ``validate_rule``; an invalid
    regex or range raises ``ValueError`` (``UnsupportedRegex`` for a regex).
    """
    del digests  # the digest strategy chooses its tag by name; digests matter in is_newer
    if rule.strategy == "semver":
        tag_list = tags if isinstance(tags, list) else list(tags)
        return Selection(
            best_semver(rule, tag_list, kind),
            detail=lambda: _select_all(rule, tag_list, current, {}, kind),
        )
    return _select_all(rule, tags, current, created or {}, kind)


def _select_all(
    rule: VersionRule,
    tags: Iterable[str],
    current: str | None,
    created: Mapping[str, datetime],
    kind: PackageKind,
) -> Selection:
    """Every tag judged, with a reason for each rejected one."""
    out = _Collector()
    survivors = _common_filter(rule, tags, kind, out)
    if rule.strategy == "semver":
        _select_semver(rule, survivors, out)
    elif rule.strategy == "suffix":
        _select_suffix(rule, survivors, current, out)
    elif rule.strategy == "regex":
        return _select_regex(rule, survivors, out)
    elif rule.strategy == "newest-build":
        return _select_newest_build(rule, survivors, created, out)
    elif rule.strategy == "digest":
        _select_digest(rule, survivors, out)
    else:
        raise ValueError(f"unknown strategy {rule.strategy!r}")
    return out.selection()


# -------------------------------------------------------------------- is_newer


def _comparable_rank(rule: VersionRule) -> Callable[[str], Any] | None:
    """A key that is equal for equally good tags (no tiebreak): what "later" compares."""
    if rule.strategy == "semver":
        return lambda tag: v.key if (v := parse_version(tag, strict=rule.strict)) else None
    if rule.strategy == "suffix":
        return lambda tag: parts[0].key if (parts := _suffix_parts(tag)) else None
    if rule.strategy == "regex":
        pattern = compile_user_regex(rule.allow or "")

        def regex_key(tag: str) -> Any:
            rank = _regex_rank(rule, pattern, tag)
            return None if isinstance(rank, str) else rank[0]

        return regex_key
    return None


def is_newer(
    rule: VersionRule,
    candidate: str,
    previous: str | None,
    *,
    candidate_digest: str | None = None,
    previous_digest: str | None = None,
    created: Mapping[str, datetime] | None = None,
) -> bool:
    """Whether ``candidate`` is later than ``previous`` (the previous release's tag).

    This is what makes a trigger fire. No previous release: always newer.

    - semver / suffix / regex: strictly better in the order ``select`` uses (so
      ``1.2.0`` is not newer than ``v1.2``; with ``pick: lowest``, lower is
      better). A previous tag the rule cannot rank counts as older than any
      other tag.
    - newest-build: created strictly later (the previous release's build time comes
      from its record, so a vanished tag changes nothing); when either time is
      unknown (records written before build times were kept), a different tag
      counts as newer.
    - digest: the digest differs from ``previous_digest``; an unknown candidate
      digest is never newer (nothing to compare), an unknown previous digest is.
    """
    if previous is None:
        return True
    if rule.strategy == "digest":
        if candidate != previous:
            return True
        if candidate_digest is None:
            return False
        return previous_digest is None or candidate_digest != previous_digest
    if rule.strategy == "newest-build":
        times = created or {}
        if candidate in times and previous in times:
            return times[candidate] > times[previous]
        return candidate != previous
    key = _comparable_rank(rule)
    assert key is not None  # every other strategy ranks tags
    candidate_key, previous_key = key(candidate), key(previous)
    if candidate_key is None:
        return False
    if previous_key is None:
        return candidate != previous
    if rule.strategy == "regex" and rule.pick == "lowest":
        return bool(candidate_key < previous_key)
    return bool(candidate_key > previous_key)
