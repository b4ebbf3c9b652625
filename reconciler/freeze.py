"""Freeze windows: periods in which nothing is promoted automatically.

A :class:`~reconciler.model.FreezeWindow` is one of two kinds:

One-off
    ``from_time``/``to_time`` (aware datetimes, both required): frozen for
    ``from_time <= now < to_time``.

Recurring
    ``days`` (``mon``..``sun``; empty = every day) plus ``start``/``end`` wall
    clock times ``HH:MM`` in the IANA ``timezone``. ``days`` names the day a
    window *starts*: ``fri 22:00-06:00`` runs from Friday 22:00 to Saturday
    06:00. ``end <= start`` means the window ends the next day, so
    ``start == end`` is a full 24 hours. A missing ``start`` or ``end`` means
    ``00:00``, so ``days: [sat, sun]`` alone freezes the whole weekend.

Windows are half-open (``start <= now < end``) and compared as UTC instants,
so daylight saving time is handled by the time zone database: ``22:00-06:00``
Europe/Berlin lasts 7 hours on the spring-forward night and 9 hours on the
fall-back night. Wall times that do not exist or exist twice on transition
days are resolved towards a longer freeze where there is a choice:

* a start time that does not exist (skipped by spring-forward) is shifted
  forward by the gap, as RFC 5545 does (``02:30`` -> ``03:30`` summer time);
  a start time that occurs twice uses its first occurrence;
* an end time that does not exist is shifted forward too; an end time that
  occurs twice uses its second occurrence.

``environments`` empty means the window covers every environment.

Malformed windows (unknown zone, ``25:00``, half a one-off window...) make the
evaluation functions raise ``ValueError``: a freeze that silently never applies
would be worse. ``config.py`` is expected to report them earlier through
:func:`window_problems`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reconciler.model import FreezeWindow

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")

# Chained windows (one starting as another ends) are followed this many times
# at most when computing how long a freeze lasts; only a window that covers all
# time ("every day 00:00-00:00") gets near it.
_MAX_CHAINED_WINDOWS = 1000


@dataclass(frozen=True)
class ActiveFreeze:
    """The freeze in force for one environment at one moment."""

    window: str  # name of the window in force now (the one that lasts longest)
    until: datetime  # UTC: when no window covers the environment any more


def window_problems(window: FreezeWindow) -> list[str]:
    """Everything wrong with ``window``, as messages for config validation."""
    problems: list[str] = []
    recurring = bool(window.days) or window.start is not None or window.end is not None
    one_off = window.from_time is not None or window.to_time is not None
    if recurring and one_off:
        problems.append("use either days/start/end or from/to, not both")
    if not recurring and not one_off:
        problems.append("a freeze window needs days/start/end or from/to")
    if one_off:
        if window.from_time is None or window.to_time is None:
            problems.append("a one-off freeze window needs both from and to")
        elif window.from_time.tzinfo is None or window.to_time.tzinfo is None:
            problems.append("from and to need a time zone offset")
        elif window.from_time >= window.to_time:
            problems.append("from must be before to")
    for day in window.days:
        if day.lower() not in WEEKDAYS:
            problems.append(f"unknown day {day!r}: use one of {', '.join(WEEKDAYS)}")
    for label, value in (("start", window.start), ("end", window.end)):
        if value is not None and not _HHMM.fullmatch(value):
            problems.append(f"{label} {value!r} is not a time HH:MM (00:00 to 23:59)")
    try:
        ZoneInfo(window.timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        problems.append(f"unknown time zone {window.timezone!r}")
    return problems


def applies_to(window: FreezeWindow, environment: str) -> bool:
    """Whether ``window`` covers ``environment`` (empty list = every environment)."""
    return not window.environments or environment in window.environments


def is_frozen(window: FreezeWindow, environment: str, now: datetime) -> bool:
    """Whether ``window`` freezes ``environment`` at ``now`` (an aware datetime)."""
    if not applies_to(window, environment):
        return False
    instant = _utc(now)
    return any(start <= instant < end for start, end in _intervals(window, instant))


def active_freeze(
    windows: Iterable[FreezeWindow], environment: str, now: datetime
) -> ActiveFreeze | None:
    """The freeze in force for ``environment`` at ``now``, or None.

    ``until`` follows chained windows: when a second window starts before (or
    exactly when) the first one ends, the freeze lasts until the second ends.
    """
    relevant = [w for w in windows if applies_to(w, environment)]
    instant = _utc(now)
    covering = _covering(relevant, instant)
    if not covering:
        return None
    name = max(covering, key=lambda item: (item[1], item[0]))[0]
    until = instant
    for _ in range(_MAX_CHAINED_WINDOWS):
        if not covering:
            break
        until = max(end for _, end in covering)
        covering = _covering(relevant, until)
    return ActiveFreeze(window=name, until=until)


def frozen_until(
    windows: Iterable[FreezeWindow], environment: str, now: datetime
) -> datetime | None:
    """When ``environment`` stops being frozen (UTC), or None if it is not frozen now."""
    freeze = active_freeze(windows, environment, now)
    return freeze.until if freeze is not None else None


def _covering(windows: list[FreezeWindow], instant: datetime) -> list[tuple[str, datetime]]:
    """(name, end) of every window whose interval contains ``instant``."""
    return [
        (window.name, end)
        for window in windows
        for start, end in _intervals(window, instant)
        if start <= instant < end
    ]


def _intervals(window: FreezeWindow, instant: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The UTC intervals of ``window`` that could contain ``instant``."""
    problems = window_problems(window)
    if problems:
        raise ValueError(f"freeze window {window.name}: {'; '.join(problems)}")
    if window.from_time is not None and window.to_time is not None:
        yield _utc(window.from_time), _utc(window.to_time)
        return
    zone = ZoneInfo(window.timezone)
    start_time = _parse_hhmm(window.start or "00:00")
    end_time = _parse_hhmm(window.end or "00:00")
    days = {WEEKDAYS.index(day.lower()) for day in window.days} or set(range(7))
    # A window lasts at most 24 hours of wall time (25 real hours on a
    # fall-back night), so only windows starting on the local day of
    # ``instant`` or the day before can contain it.
    today = instant.astimezone(zone).date()
    for start_day in (today - timedelta(days=1), today):
        if start_day.weekday() not in days:
            continue
        end_day = start_day if end_time > start_time else start_day + timedelta(days=1)
        yield (
            _wall_to_utc(start_day, start_time, zone, latest=False),
            _wall_to_utc(end_day, end_time, zone, latest=True),
        )


def _wall_to_utc(day: date, wall: time, zone: ZoneInfo, *, latest: bool) -> datetime:
    """The UTC instant of a wall clock time, resolving DST gaps and repeats.

    ``fold=0`` shifts a non-existent time forward by the gap and picks the
    first of two repeated times; ``latest`` picks the second of two repeated
    times instead (both folds agree on ordinary times).
    """
    first = datetime.combine(day, wall, tzinfo=zone).astimezone(UTC)
    if not latest:
        return first
    second = datetime.combine(day, wall, tzinfo=zone).replace(fold=1).astimezone(UTC)
    return max(first, second)


def _parse_hhmm(text: str) -> time:
    match = _HHMM.fullmatch(text)
    if match is None:  # window_problems has already rejected it; kept for mypy
        raise ValueError(f"not a time HH:MM: {text!r}")
    return time(int(match.group(1)), int(match.group(2)))


def _utc(moment: datetime) -> datetime:
    # Aware datetimes sharing one tzinfo compare by wall time, which is wrong
    # across DST; converting everything to UTC first avoids that trap.
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: a time zone is required")
    return moment.astimezone(UTC)
