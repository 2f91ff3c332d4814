"""Slot arithmetic without a database: schedules, exceptions, buffers, daylight saving."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from documents.accounts.profiles import ExceptionKind, ScheduleException, TimeRange
from resolvers.marketplace.availability import (
    Held,
    Schedule,
    day_span,
    first_instant,
    is_free,
    occurrences,
    open_starts,
    schedule_starts,
)

NEW_YORK = ZoneInfo("America/New_York")
SYDNEY = ZoneInfo("Australia/Sydney")
UTC_ZONE = ZoneInfo("UTC")
HOUR = timedelta(hours=1)
HALF_HOUR = timedelta(minutes=30)
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clean_state() -> None:
    """Overrides the autouse fixture of conftest: nothing here touches the database."""


def hours(start: str, end: str) -> TimeRange:
    def minute(clock: str) -> int:
        h, m = clock.split(":")
        return int(h) * 60 + int(m)

    return TimeRange(start_minute=minute(start), end_minute=minute(end))


def every_day(
    zone: ZoneInfo, *ranges: TimeRange, exceptions: list[ScheduleException] | None = None
) -> Schedule:
    return Schedule(zone, [list(ranges)] * 7, exceptions or [], step=HALF_HOUR)


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def test_new_york_spring_forward_skips_the_missing_hour() -> None:
    # 2026-03-08: 02:00 EST becomes 03:00 EDT (07:00 UTC). 01:00 to 04:00 is two real hours.
    starts = schedule_starts(every_day(NEW_YORK, hours("01:00", "04:00")), date(2026, 3, 8), HOUR)
    # 01:00 EST, 01:30 EST (ending 03:30 EDT: an hour later), 03:00 EDT; no 02:00 or 02:30.
    assert starts == [at(3, 8, 6), at(3, 8, 6, 30), at(3, 8, 7)]


def test_new_york_fall_back_offers_both_instants_of_the_repeated_times() -> None:
    # 2026-11-01: 02:00 EDT becomes 01:00 EST (06:00 UTC). 00:30 to 03:00 is 3.5 real hours.
    starts = schedule_starts(every_day(NEW_YORK, hours("00:30", "03:00")), date(2026, 11, 1), HOUR)
    assert starts == [
        at(11, 1, 4, 30),  # 00:30 EDT
        at(11, 1, 5),  # 01:00 EDT
        at(11, 1, 5, 30),  # 01:30 EDT
        at(11, 1, 6),  # 01:00 EST
        at(11, 1, 6, 30),  # 01:30 EST
        at(11, 1, 7),  # 02:00 EST, ending at 03:00 EST, the end of the hours
    ]


def test_sydney_fall_back_in_april() -> None:
    # 2026-04-05: 03:00 AEDT becomes 02:00 AEST (16:00 UTC on the 4th).
    starts = schedule_starts(every_day(SYDNEY, hours("01:00", "04:00")), date(2026, 4, 5), HOUR)
    assert starts == [
        at(4, 4, 14),  # 01:00 AEDT
        at(4, 4, 14, 30),
        at(4, 4, 15),  # 02:00 AEDT
        at(4, 4, 15, 30),  # 02:30 AEDT
        at(4, 4, 16),  # 02:00 AEST
        at(4, 4, 16, 30),  # 02:30 AEST
        at(4, 4, 17),  # 03:00 AEST, ending at 04:00 AEST
    ]


def test_sydney_spring_forward_in_october() -> None:
    # 2026-10-04: 02:00 AEST becomes 03:00 AEDT (16:00 UTC on the 3rd).
    starts = schedule_starts(every_day(SYDNEY, hours("01:00", "04:00")), date(2026, 10, 4), HOUR)
    assert starts == [at(10, 3, 15), at(10, 3, 15, 30), at(10, 3, 16)]


def test_sydney_working_day_away_from_a_change() -> None:
    starts = schedule_starts(
        every_day(SYDNEY, hours("09:00", "12:00")), date(2026, 10, 5), 2 * HOUR
    )
    assert starts == [at(10, 4, 22), at(10, 4, 22, 30), at(10, 4, 23)]  # 09:00 to 10:00 AEDT


def test_hours_starting_in_the_gap_begin_when_the_clock_jumps() -> None:
    zone_hours = every_day(NEW_YORK, hours("02:30", "05:00"))
    assert schedule_starts(zone_hours, date(2026, 3, 8), HOUR) == [
        at(3, 8, 7),
        at(3, 8, 7, 30),
        at(3, 8, 8),
    ]
    assert first_instant(NEW_YORK, datetime(2026, 3, 8, 2, 30)) == at(3, 8, 7)


def test_wall_clock_conversions_on_change_days() -> None:
    assert occurrences(NEW_YORK, datetime(2026, 3, 8, 2, 30)) == []
    assert occurrences(NEW_YORK, datetime(2026, 11, 1, 1, 30)) == [
        at(11, 1, 5, 30),
        at(11, 1, 6, 30),
    ]
    assert occurrences(SYDNEY, datetime(2026, 10, 5, 9)) == [at(10, 4, 22)]
    spring, autumn = day_span(NEW_YORK, date(2026, 3, 8)), day_span(NEW_YORK, date(2026, 11, 1))
    assert (spring.start, spring.end) == (at(3, 8, 5), at(3, 9, 4))
    assert autumn.end - autumn.start == timedelta(hours=25)


def test_starts_are_aligned_from_the_start_of_each_range() -> None:
    schedule = every_day(UTC_ZONE, hours("09:15", "11:00"), hours("13:00", "14:00"))
    assert schedule_starts(schedule, date(2026, 6, 1), HALF_HOUR) == [
        at(6, 1, 9, 15),
        at(6, 1, 9, 45),
        at(6, 1, 10, 15),
        at(6, 1, 13),
        at(6, 1, 13, 30),
    ]


def test_exceptions_take_away_and_add_hours() -> None:
    day = date(2026, 6, 1)
    exceptions = [
        ScheduleException(
            day=day, kind=ExceptionKind.UNAVAILABLE, ranges=[hours("10:00", "11:00")]
        ),
        ScheduleException(
            day=day, kind=ExceptionKind.EXTRA_HOURS, ranges=[hours("14:00", "16:00")]
        ),
        ScheduleException(day=date(2026, 6, 2), kind=ExceptionKind.UNAVAILABLE),
    ]
    schedule = every_day(UTC_ZONE, hours("09:00", "13:00"), exceptions=exceptions)
    assert schedule_starts(schedule, day, HOUR) == [
        at(6, 1, 9),
        at(6, 1, 11),
        at(6, 1, 11, 30),
        at(6, 1, 12),
        at(6, 1, 14),
        at(6, 1, 14, 30),
        at(6, 1, 15),
    ]
    assert schedule_starts(schedule, date(2026, 6, 2), HOUR) == []  # the whole day off
    assert len(schedule_starts(schedule, date(2026, 6, 3), HOUR)) == 7  # 09:00 to 12:00


def test_extra_hours_adjoining_the_weekly_hours_make_one_stretch() -> None:
    day = date(2026, 6, 1)
    extra = ScheduleException(
        day=day, kind=ExceptionKind.EXTRA_HOURS, ranges=[hours("12:00", "13:00")]
    )
    schedule = every_day(UTC_ZONE, hours("10:00", "12:00"), exceptions=[extra])
    assert schedule_starts(schedule, day, 2 * HOUR) == [
        at(6, 1, 10),
        at(6, 1, 10, 30),
        at(6, 1, 11),
    ]


def test_the_buffer_separates_bookings_by_the_larger_of_the_two() -> None:
    held = [Held(at(6, 1, 10), at(6, 1, 12), timedelta(minutes=30))]
    no_buffer = timedelta(0)
    assert not is_free(at(6, 1, 12), HOUR, no_buffer, held)  # right after: no gap
    assert not is_free(at(6, 1, 12, 29), HOUR, no_buffer, held)
    assert is_free(at(6, 1, 12, 30), HOUR, no_buffer, held)
    assert is_free(at(6, 1, 8, 30), HOUR, no_buffer, held)  # ends 09:30, 30 minutes before
    assert not is_free(at(6, 1, 8, 45), HOUR, no_buffer, held)
    assert not is_free(at(6, 1, 11), HOUR, no_buffer, held)  # inside
    # The new booking's own buffer counts too: 45 minutes now.
    assert not is_free(at(6, 1, 12, 30), HOUR, timedelta(minutes=45), held)
    assert is_free(at(6, 1, 12, 45), HOUR, timedelta(minutes=45), held)


def test_open_starts_leave_out_held_time_and_short_notice() -> None:
    schedule = every_day(UTC_ZONE, hours("09:00", "14:00"))
    held = [Held(at(6, 1, 11), at(6, 1, 12), timedelta(minutes=30))]
    assert open_starts(schedule, date(2026, 6, 1), HOUR, HALF_HOUR, held, LONG_AGO) == [
        at(6, 1, 9),
        at(6, 1, 9, 30),  # ends 10:30, 30 minutes before the held booking
        at(6, 1, 12, 30),
        at(6, 1, 13),
    ]
    assert open_starts(schedule, date(2026, 6, 1), HOUR, HALF_HOUR, held, at(6, 1, 9, 1)) == [
        at(6, 1, 9, 30),
        at(6, 1, 12, 30),
        at(6, 1, 13),
    ]
