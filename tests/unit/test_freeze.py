"""Freeze windows: one-off and recurring, across time zones and DST transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reconciler.freeze import (
    ActiveFreeze,
    active_freeze,
    frozen_until,
    is_frozen,
    window_problems,
)
from reconciler.model import FreezeWindow


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


NIGHTLY_BERLIN = FreezeWindow("nightly", timezone="Europe/Berlin", start="22:00", end="06:00")


# --- one-off windows ---------------------------------------------------------------------------

ONE_OFF = FreezeWindow("launch", from_time=utc(2024, 12, 20, 18), to_time=utc(2025, 1, 6, 8))


@pytest.mark.parametrize(
    ("now", "frozen"),
    [
        (utc(2024, 12, 20, 17, 59, 59), False),
        (utc(2024, 12, 20, 18), True),  # start is inside
        (utc(2024, 12, 31, 12), True),
        (utc(2025, 1, 6, 7, 59, 59), True),
        (utc(2025, 1, 6, 8), False),  # end is outside (half-open)
    ],
)
def test_one_off_window_is_half_open(now: datetime, frozen: bool) -> None:
    assert is_frozen(ONE_OFF, "prod", now) is frozen


def test_one_off_window_with_offsets_compares_instants() -> None:
    window = FreezeWindow(
        "tokyo-maintenance",
        from_time=datetime(2024, 6, 1, 9, tzinfo=ZoneInfo("Asia/Tokyo")),  # 00:00 UTC
        to_time=datetime(2024, 6, 1, 10, tzinfo=ZoneInfo("Asia/Tokyo")),
    )
    assert is_frozen(window, "prod", utc(2024, 6, 1, 0, 30))
    assert not is_frozen(window, "prod", utc(2024, 6, 1, 9, 30))


# --- recurring windows -------------------------------------------------------------------------

NIGHTLY_UTC = FreezeWindow("nightly", start="22:00", end="06:00")
FRIDAY_NIGHT = FreezeWindow("friday-night", days=("fri",), start="22:00", end="06:00")
WEEKEND = FreezeWindow("weekend", days=("sat", "sun"))


@pytest.mark.parametrize(
    ("window", "now", "frozen"),
    [
        (NIGHTLY_UTC, utc(2024, 5, 6, 21, 59), False),
        (NIGHTLY_UTC, utc(2024, 5, 6, 22, 0), True),
        (NIGHTLY_UTC, utc(2024, 5, 7, 0, 0), True),  # spans midnight
        (NIGHTLY_UTC, utc(2024, 5, 7, 5, 59), True),
        (NIGHTLY_UTC, utc(2024, 5, 7, 6, 0), False),
        (NIGHTLY_UTC, utc(2024, 5, 7, 12, 0), False),
        # days name the day a window starts: Friday 22:00 to Saturday 06:00
        (FRIDAY_NIGHT, utc(2024, 5, 10, 23, 0), True),  # Friday night
        (FRIDAY_NIGHT, utc(2024, 5, 11, 5, 0), True),  # Saturday morning, started Friday
        (FRIDAY_NIGHT, utc(2024, 5, 11, 23, 0), False),  # Saturday night
        (FRIDAY_NIGHT, utc(2024, 5, 10, 5, 0), False),  # Friday morning: Thursday's would be
        # days without times cover whole days
        (WEEKEND, utc(2024, 5, 10, 23, 59), False),  # Friday
        (WEEKEND, utc(2024, 5, 11, 0, 0), True),
        (WEEKEND, utc(2024, 5, 12, 23, 59), True),
        (WEEKEND, utc(2024, 5, 13, 0, 0), False),  # Monday
    ],
)
def test_recurring_windows(window: FreezeWindow, now: datetime, frozen: bool) -> None:
    assert is_frozen(window, "prod", now) is frozen


def test_equal_start_and_end_is_a_whole_day() -> None:
    window = FreezeWindow("tuesday", days=("tue",), start="09:00", end="09:00")
    assert is_frozen(window, "prod", utc(2024, 5, 7, 9, 0))  # Tuesday 09:00
    assert is_frozen(window, "prod", utc(2024, 5, 8, 8, 59))  # Wednesday 08:59
    assert not is_frozen(window, "prod", utc(2024, 5, 8, 9, 0))
    assert frozen_until([window], "prod", utc(2024, 5, 7, 12)) == utc(2024, 5, 8, 9)


def test_day_names_are_case_insensitive() -> None:
    window = FreezeWindow("friday", days=("FRI",))
    assert is_frozen(window, "prod", utc(2024, 5, 10, 12))


# --- time zones and daylight saving time ---------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "until"),
    [
        # Berlin spring forward, Sun 2024-03-31 02:00 CET -> 03:00 CEST: the night is 7 h long.
        (utc(2024, 3, 30, 20, 59), None),  # 21:59 CET
        (utc(2024, 3, 30, 21, 0), utc(2024, 3, 31, 4, 0)),  # 22:00 CET .. 06:00 CEST
        (utc(2024, 3, 31, 3, 59), utc(2024, 3, 31, 4, 0)),
        (utc(2024, 3, 31, 4, 30), None),  # 06:30 CEST: a fixed +01:00 would still say frozen
        # Berlin fall back, Sun 2024-10-27 03:00 CEST -> 02:00 CET: the night is 9 h long.
        (utc(2024, 10, 26, 19, 59), None),  # 21:59 CEST
        (utc(2024, 10, 26, 20, 0), utc(2024, 10, 27, 5, 0)),  # 22:00 CEST .. 06:00 CET
        (utc(2024, 10, 27, 4, 30), utc(2024, 10, 27, 5, 0)),  # 05:30 CET: +02:00 would say free
        (utc(2024, 10, 27, 5, 0), None),
        # an ordinary winter night: 22:00 CET .. 06:00 CET
        (utc(2024, 1, 15, 21, 0), utc(2024, 1, 16, 5, 0)),
    ],
)
def test_berlin_night_window_across_dst(now: datetime, until: datetime | None) -> None:
    assert frozen_until([NIGHTLY_BERLIN], "prod", now) == until
    assert is_frozen(NIGHTLY_BERLIN, "prod", now) is (until is not None)


NEW_YORK_OFFICE = FreezeWindow(
    "office-hours",
    timezone="America/New_York",
    days=("mon", "tue", "wed", "thu", "fri"),
    start="09:00",
    end="17:00",
)


@pytest.mark.parametrize(
    ("now", "frozen"),
    [
        (utc(2024, 1, 8, 13, 30), False),  # Mon 08:30 EST
        (utc(2024, 1, 8, 14, 0), True),  # Mon 09:00 EST
        (utc(2024, 1, 8, 21, 59), True),  # Mon 16:59 EST
        (utc(2024, 1, 8, 22, 0), False),
        (utc(2024, 7, 1, 13, 0), True),  # Mon 09:00 EDT
        (utc(2024, 7, 1, 21, 0), False),  # Mon 17:00 EDT
        (utc(2024, 7, 6, 14, 0), False),  # Saturday
        (utc(2024, 7, 2, 2, 0), False),  # Mon 22:00 EDT, but already Tuesday in UTC
    ],
)
def test_new_york_office_hours(now: datetime, frozen: bool) -> None:
    assert is_frozen(NEW_YORK_OFFICE, "prod", now) is frozen


def test_start_time_skipped_by_spring_forward_is_shifted_forward() -> None:
    # New York, Sun 2024-03-10: 02:00 EST jumps to 03:00 EDT, so 02:30 never happens.
    window = FreezeWindow(
        "early", timezone="America/New_York", days=("sun",), start="02:30", end="04:00"
    )
    assert not is_frozen(window, "prod", utc(2024, 3, 10, 7, 29))  # 03:29 EDT
    assert is_frozen(window, "prod", utc(2024, 3, 10, 7, 30))  # 03:30 EDT
    assert frozen_until([window], "prod", utc(2024, 3, 10, 7, 30)) == utc(2024, 3, 10, 8, 0)


def test_repeated_wall_times_give_the_longer_freeze() -> None:
    # New York, Sun 2024-11-03: 02:00 EDT falls back to 01:00 EST, so 01:00-02:00 happens twice.
    window = FreezeWindow(
        "repeat", timezone="America/New_York", days=("sun",), start="01:30", end="01:45"
    )
    assert not is_frozen(window, "prod", utc(2024, 11, 3, 5, 29))
    assert is_frozen(window, "prod", utc(2024, 11, 3, 5, 30))  # first 01:30 (EDT)
    assert is_frozen(window, "prod", utc(2024, 11, 3, 6, 0))  # 01:00 EST, second pass
    assert frozen_until([window], "prod", utc(2024, 11, 3, 5, 30)) == utc(2024, 11, 3, 6, 45)


# --- several windows, environments -----------------------------------------------------------


def test_chained_windows_freeze_until_the_last_one_ends() -> None:
    evening = FreezeWindow("evening", start="18:00", end="22:00")
    night = FreezeWindow("night", start="22:00", end="23:30")
    unrelated = FreezeWindow("morning", start="07:00", end="08:00")
    freeze = active_freeze([unrelated, night, evening], "prod", utc(2024, 5, 6, 19))
    assert freeze == ActiveFreeze(window="evening", until=utc(2024, 5, 6, 23, 30))


def test_overlapping_windows_name_the_one_lasting_longest() -> None:
    short = FreezeWindow("short", start="10:00", end="11:00")
    long = FreezeWindow("long", start="09:00", end="15:00")
    assert active_freeze([short, long], "prod", utc(2024, 5, 6, 10, 30)) == ActiveFreeze(
        "long", utc(2024, 5, 6, 15)
    )


def test_windows_only_cover_their_environments() -> None:
    window = FreezeWindow("prod-only", environments=("prod",), start="00:00", end="00:00")
    now = utc(2024, 5, 6, 12)
    assert is_frozen(window, "prod", now)
    assert not is_frozen(window, "staging", now)
    assert frozen_until([window], "staging", now) is None


def test_not_frozen_without_windows() -> None:
    assert active_freeze([], "prod", utc(2024, 5, 6)) is None


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        is_frozen(NIGHTLY_UTC, "prod", datetime(2024, 5, 6, 12))


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "problems"),
    [
        (NIGHTLY_BERLIN, []),
        (ONE_OFF, []),
        (FreezeWindow("empty"), ["a freeze window needs days/start/end or from/to"]),
        (
            FreezeWindow("both", start="01:00", from_time=utc(2024, 1, 1), to_time=utc(2024, 1, 2)),
            ["use either days/start/end or from/to, not both"],
        ),
        (
            FreezeWindow("half", from_time=utc(2024, 1, 1)),
            ["a one-off freeze window needs both from and to"],
        ),
        (
            FreezeWindow("backwards", from_time=utc(2024, 1, 2), to_time=utc(2024, 1, 1)),
            ["from must be before to"],
        ),
        (
            FreezeWindow(
                "naive",
                from_time=datetime(2024, 1, 1),
                to_time=datetime(2024, 1, 2),
            ),
            ["from and to need a time zone offset"],
        ),
        (
            FreezeWindow("bad", days=("friday",), start="24:00", end="6:00", timezone="Mars/Base"),
            [
                "unknown day 'friday': use one of mon, tue, wed, thu, fri, sat, sun",
                "start '24:00' is not a time HH:MM (00:00 to 23:59)",
                "end '6:00' is not a time HH:MM (00:00 to 23:59)",
                "unknown time zone 'Mars/Base'",
            ],
        ),
    ],
)
def test_window_problems(window: FreezeWindow, problems: list[str]) -> None:
    assert window_problems(window) == problems


def test_malformed_window_raises_instead_of_never_freezing() -> None:
    window = FreezeWindow("typo", start="25:00", end="06:00")
    with pytest.raises(ValueError, match=r"freeze window typo: start '25:00' is not a time"):
        is_frozen(window, "prod", utc(2024, 5, 6))


# --- properties ---------------------------------------------------------------------------------

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
HHMM = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 30, 59]))


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    start=HHMM,
    end=HHMM,
    days=st.lists(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]), max_size=3),
    now=st.datetimes(
        min_value=datetime(2024, 1, 1),
        max_value=datetime(2025, 12, 31),
        timezones=st.just(UTC),
    ),
)
def test_a_freeze_ends_when_it_says_and_lasts_at_most_a_day(
    zone: str, start: str, end: str, days: list[str], now: datetime
) -> None:
    assume(start != end)  # whole-day windows on consecutive days chain into longer freezes
    window = FreezeWindow("w", timezone=zone, days=tuple(days), start=start, end=end)
    until = frozen_until([window], "prod", now)
    if until is None:
        assert not is_frozen(window, "prod", now)
        return
    assert is_frozen(window, "prod", now)
    assert now < until <= now + timedelta(hours=25)
    assert not is_frozen(window, "prod", until)
    # The wall clock reads the configured end time then (later only inside a DST gap).
    assert until.astimezone(ZoneInfo(zone)).strftime("%H:%M") >= end
