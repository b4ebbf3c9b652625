"""Version ranges (pure): npm ranges and NuGet/Maven intervals, parsed into ``Range``.

``parse_range(text)`` gives a ``Range``, a union of comparator sets over
``reconciler.versions.Version``; see ``parse_range`` for the grammar and the
choices made (npm's pre-release rule, ``1.0`` as a line, exact interval bounds).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from reconciler.versions import DOTTED_IDENTIFIERS, Version, parse_version

__all__ = [
    "MAX_RANGE_NUMBER_DIGITS",
    "MAX_RANGE_TEXT",
    "Comparator",
    "ComparatorSet",
    "Range",
    "parse_range",
]

MAX_RANGE_NUMBER_DIGITS = 64
"""A range whose numbers have more digits is refused: no version has them, and
Python's int() stops at 4300 digits with an internal message."""

MAX_RANGE_TEXT = 1024
"""Longer range texts are refused (and never echoed back in the message)."""


def _point(numbers: Iterable[int], prerelease: tuple[str, ...] = ()) -> Version:
    """A synthetic version used as a range bound."""
    nums = tuple(numbers)
    text = ".".join(str(n) for n in nums) + ("-" + ".".join(prerelease) if prerelease else "")
    return Version(text, nums, prerelease)


_LOWEST_PRE = ("0",)
"""``X-0`` sorts below every other pre-release of X: npm's trick for exclusive bounds."""

_NOTHING = _point((0, 0, 0, 0), _LOWEST_PRE)
"""No version is below this one, so ``< _NOTHING`` admits nothing."""


Op = Literal["<", "<=", ">", ">=", "="]
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "=": operator.eq,
}


@dataclass(frozen=True)
class Comparator:
    op: Op
    bound: Version

    def test(self, version: Version) -> bool:
        return _OPERATORS[self.op](version.key, self.bound.key)

    def __str__(self) -> str:
        return f"{self.op}{self.bound}"


@dataclass(frozen=True)
class ComparatorSet:
    """Comparators that must all hold (an empty set admits every version).

    ``prerelease_cores`` are the numeric cores of the pre-release versions the
    user wrote in this set: npm admits a pre-release only for those cores.
    """

    comparators: tuple[Comparator, ...]
    prerelease_cores: frozenset[tuple[int, ...]] = frozenset()

    def contains(self, version: Version, *, include_prerelease: bool = False) -> bool:
        if (
            version.is_prerelease
            and not include_prerelease
            and version.core not in self.prerelease_cores
        ):
            return False
        return all(c.test(version) for c in self.comparators)


@dataclass(frozen=True)
class Range:
    """A parsed range: a union (``||``) of comparator sets. ``text`` is what was written."""

    text: str
    sets: tuple[ComparatorSet, ...]

    def contains(self, version: Version, *, include_prerelease: bool = False) -> bool:
        """Whether ``version`` is in the range.

        Pre-releases follow npm unless ``include_prerelease`` (selection passes it
        when a rule's ``prerelease`` regex decides about pre-releases instead).
        """
        return any(s.contains(version, include_prerelease=include_prerelease) for s in self.sets)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class _Partial:
    """A version as written in a range: leading numbers, maybe a wildcard after them."""

    numbers: tuple[int, ...]
    wildcard: bool
    prerelease: tuple[str, ...]

    @property
    def is_full(self) -> bool:
        """Full versions are exact points; partial ones stand for a whole line."""
        return bool(self.prerelease) or (not self.wildcard and len(self.numbers) >= 3)

    def point(self) -> Version:
        return _point(self.numbers, self.prerelease)

    def lowest(self) -> Version:
        """The lowest version the partial covers, pre-releases included."""
        return _point(self.numbers, _LOWEST_PRE)

    def above(self) -> Version:
        """The lowest version above everything the partial covers."""
        nums = list(self.numbers)
        nums[-1] += 1
        return _point(nums, _LOWEST_PRE)


_PARTIAL = re.compile(
    r"[vV]?(?P<parts>(?:[0-9]+|[xX*])(?:\.(?:[0-9]+|[xX*])){0,3})"
    rf"(?:-(?P<pre>{DOTTED_IDENTIFIERS}))?(?:\+{DOTTED_IDENTIFIERS})?"
)
_NUMBER_RUN = re.compile(r"[0-9]+")
_OPERATOR = re.compile(r"(?P<op><=|>=|~>|<|>|=|~|\^)?(?P<version>.*)", re.DOTALL)
_HYPHEN = re.compile(r"(?P<low>\S+)\s+-\s+(?P<high>\S+)")
_INTERVAL = re.compile(r"\s*(?P<open>[\[(])(?P<body>[^\[\]()]*)(?P<close>[\])])\s*(?:,|\Z)")


def _parse_partial(text: str, whole: str) -> _Partial:
    match = _PARTIAL.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid range {whole!r}: {text!r} is not a version")
    parts = match["parts"].split(".")
    wildcards = [i for i, part in enumerate(parts) if part in ("x", "X", "*")]
    pre = tuple(match["pre"].split(".")) if match["pre"] else ()
    if not wildcards:
        return _Partial(tuple(int(p) for p in parts), False, pre)
    if pre and len(parts) < 3:
        raise ValueError(f"invalid range {whole!r}: {text!r} mixes a wildcard and a pre-release")
    # As node-semver (and Renovate) read them: everything after the first wildcard
    # is ignored, numbers and pre-release alike (1.x.5 is 1.x, 1.2.x-rc.1 is 1.2.x).
    return _Partial(tuple(int(p) for p in parts[: wildcards[0]]), True, ())


def _caret_upper(p: _Partial) -> Version:
    """npm ``^``: allow changes that do not modify the left-most non-zero of major.minor.patch."""
    given = p.numbers[:3]
    nonzero = [position for position, number in enumerate(given) if number != 0]
    index = nonzero[0] if nonzero else (2 if p.is_full else len(given) - 1)
    nums = list(p.numbers[: index + 1])
    nums += [0] * (index + 1 - len(nums))
    nums[index] += 1
    return _point(nums, _LOWEST_PRE)


def _desugar(op: str, p: _Partial) -> list[Comparator]:
    """One written comparator as primitive comparators (npm's includePrerelease forms)."""
    if not p.numbers:  # "*", "x", ">=*", ...
        return [Comparator("<", _NOTHING)] if op in ("<", ">") else []
    lower = p.point() if p.is_full else p.lowest()
    if op in ("", "="):
        if p.is_full:
            return [Comparator("=", p.point())]
        return [Comparator(">=", lower), Comparator("<", p.above())]
    if op == ">":
        return [Comparator(">", p.point())] if p.is_full else [Comparator(">=", p.above())]
    if op == ">=":
        return [Comparator(">=", lower)]
    if op == "<":
        return [Comparator("<", lower)]
    if op == "<=":
        return [Comparator("<=", p.point())] if p.is_full else [Comparator("<", p.above())]
    if op in ("~", "~>"):
        nums = list(p.numbers[:2]) if len(p.numbers) >= 2 else list(p.numbers)
        nums[-1] += 1
        return [Comparator(">=", lower), Comparator("<", _point(nums, _LOWEST_PRE))]
    # "^"
    return [Comparator(">=", lower), Comparator("<", _caret_upper(p))]


def _parse_npm_set(text: str, whole: str) -> ComparatorSet:
    comparators: list[Comparator] = []
    cores: set[tuple[int, ...]] = set()
    hyphen = _HYPHEN.fullmatch(text)
    if hyphen:
        low = _parse_partial(hyphen["low"], whole)
        high = _parse_partial(hyphen["high"], whole)
        comparators += _desugar(">=", low)
        comparators += _desugar("<=", high)
        written = [low, high]
    else:
        normalised = re.sub(r"(<=|>=|~>|[<>=~^])\s+", r"\1", text.replace(",", " "))
        written = []
        for token in normalised.split():
            match = _OPERATOR.fullmatch(token)
            assert match is not None  # the pattern matches any text
            partial = _parse_partial(match["version"], whole)
            comparators += _desugar(match["op"] or "", partial)
            written.append(partial)
    for partial in written:
        if partial.prerelease:
            cores.add(partial.point().core)
    return ComparatorSet(tuple(comparators), frozenset(cores))


def _interval_point(text: str, whole: str) -> Version:
    version = parse_version(text.strip())
    if version is None:
        raise ValueError(f"invalid range {whole!r}: {text.strip()!r} is not a version")
    return version


def _parse_intervals(text: str) -> Range:
    sets: list[ComparatorSet] = []
    position = 0
    while position < len(text):
        match = _INTERVAL.match(text, position)
        if match is None:
            raise ValueError(f"invalid range {text!r}: expected an interval like [1.0,2.0)")
        position = match.end()
        opening, body, closing = match["open"], match["body"], match["close"]
        written: list[Version] = []
        comparators: list[Comparator] = []
        if "," not in body:
            if (opening, closing) != ("[", "]"):
                raise ValueError(f"invalid range {text!r}: an exact version needs [version]")
            exact = _interval_point(body, text)
            comparators.append(Comparator("=", exact))
            written.append(exact)
        else:
            low_text, _, high_text = body.partition(",")
            if not low_text.strip() and not high_text.strip():
                raise ValueError(f"invalid range {text!r}: an interval needs at least one bound")
            low = _interval_point(low_text, text) if low_text.strip() else None
            high = _interval_point(high_text, text) if high_text.strip() else None
            if low is not None:
                comparators.append(Comparator(">=" if opening == "[" else ">", low))
                written.append(low)
            if high is not None:
                comparators.append(Comparator("<=" if closing == "]" else "<", high))
                written.append(high)
            if (
                low is not None
                and high is not None
                and (low > high or (low == high and (opening, closing) != ("[", "]")))
            ):
                raise ValueError(f"invalid range {text!r}: the interval is empty")
        cores = frozenset(v.core for v in written if v.is_prerelease)
        sets.append(ComparatorSet(tuple(comparators), cores))
    return Range(text, tuple(sets))


def parse_range(text: str) -> Range:
    """Parse a version range; raise ``ValueError`` with a readable message when invalid.

    npm grammar: ``^1.2``, ``~1.2.3``, ``>=1.0.0 <2.0.0`` (a comma may separate
    comparators too, as in Flux), ``1.x``, ``1.2.*``, ``*``, hyphen ranges
    ``1.0 - 2.0`` and ``||`` unions. Versions may have a 4th part; ``1.2.3.x``
    selects the 1.2.3 line of 4-part tags.

    A version written without an operator follows npm, not NuGet: ``1.0`` means
    the 1.0.x line (``>=1.0.0 <1.1.0``), ``1.2.3`` means exactly 1.2.3 (== 1.2.3.0).
    Write ``[1.0,)`` for NuGet's "1.0 or higher".

    NuGet/Maven intervals: ``[1.0,2.0)``, ``(,1.0]``, ``[1.0,)``, ``[1.0]`` and
    comma-separated unions of them (``[1.0,2.0),[3.0,)``). Interval bounds are
    exact points (missing parts are 0).

    Pre-releases are admitted only when a version written in the same comparator
    set (or interval) is a pre-release with the same numeric core, as npm does;
    ``Range.contains(..., include_prerelease=True)`` lifts that rule.
    """
    stripped = text.strip()
    if not stripped:
        raise ValueError("invalid range '': the range is empty")
    longest = max((len(run) for run in _NUMBER_RUN.findall(stripped)), default=0)
    if longest > MAX_RANGE_NUMBER_DIGITS:
        raise ValueError(
            f"invalid range: a number has {longest} digits (at most {MAX_RANGE_NUMBER_DIGITS})"
        )
    if len(stripped) > MAX_RANGE_TEXT:
        raise ValueError(
            f"invalid range: {len(stripped)} characters long (at most {MAX_RANGE_TEXT})"
        )
    if stripped[0] in "[(":
        return _parse_intervals(stripped)
    sets = []
    for alternative in stripped.split("||"):
        if not alternative.strip():
            raise ValueError(f"invalid range {text!r}: empty alternative around '||'")
        sets.append(_parse_npm_set(alternative.strip(), text))
    if len(sets) > 1 and any(not s.comparators for s in sets):
        # node-semver: an alternative that admits everything replaces the others, so
        # their pre-releases are not admitted (``1.0.0-rc.1 || *`` is ``*``).
        sets = [ComparatorSet(())]
    return Range(text, tuple(sets))
