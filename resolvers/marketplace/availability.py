"""When a provider can start a booking: pure arithmetic on schedules, no database.

Schedules are wall-clock times in the provider's time zone; bookings are UTC instants
and last real elapsed time. The rules, across daylight-saving changes included:

- A time range of a day runs from the first instant the provider's clock shows its start
  to the first instant it shows its end. A time the clock skips (spring forward) counts
  from the instant the clock jumps past it.
- Working time is the weekly hours of that weekday plus EXTRA_HOURS, minus UNAVAILABLE
  ranges (none given: the whole day).
- Starts lie on a grid of `step` wall-clock minutes from the start of each working range.
  A grid time the clock skips is no start. A grid time the clock shows twice (fall back)
  is a start at both instants: both are real working time, and as UTC instants they are
  unambiguous to every client.
- A booking must fit wholly inside working time, and keep a gap of at least the larger
  of the two buffers from every booking that holds time: the buffer separates bookings
  (travel, setting up), so it is not needed before the first or after the last of a day.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from documents.accounts.profiles import ExceptionKind, ProviderProfile, ScheduleException, TimeRange

SECOND = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Interval:
    """[start, end) in UTC."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Held:
    """Time a booking holds, and the buffer it keeps around itself."""

    start: datetime
    end: datetime
    buffer: timedelta


@dataclass(frozen=True)
class Schedule:
    zone: ZoneInfo
    weekly_hours: Sequence[Sequence[TimeRange]]
    """Monday first."""
    exceptions: Sequence[ScheduleException]
    step: timedelta

    @classmethod
    def of(cls, profile: ProviderProfile, step: timedelta) -> Schedule:
        return cls(
            zone=ZoneInfo(profile.time_zone),
            weekly_hours=profile.weekly_hours,
            exceptions=profile.exceptions,
            step=step,
        )


def _wall_clock(day: date, minute: int) -> datetime:
    """The naive local time `minute` minutes after midnight (1440 is the next midnight)."""
    return datetime.combine(day, time()) + timedelta(minutes=minute)


def _local(zone: ZoneInfo, moment: datetime) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def occurrences(zone: ZoneInfo, wall: datetime) -> list[datetime]:
    """The instants at which the clock shows `wall`: none in a gap, two in a fold."""
    found: list[datetime] = []
    for fold in (0, 1):
        moment = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if _local(zone, moment) == wall and moment not in found:
            found.append(moment)
    return sorted(found)


def first_instant(zone: ZoneInfo, wall: datetime) -> datetime:
    """The first instant at which the clock shows `wall` or a later time."""
    found = occurrences(zone, wall)
    if found:
        return found[0]
    # In a gap the two offsets bracket the jump; zoneinfo does not expose transitions,
    # so find the jump by bisection (whole seconds: a gap is never longer than a day).
    low, high = sorted(wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1))
    while high - low > SECOND:
        middle = low + timedelta(seconds=(high - low) // SECOND // 2)
        if _local(zone, middle) >= wall:
            high = middle
        else:
            low = middle
    return high


def day_span(zone: ZoneInfo, day: date) -> Interval:
    """The instants of one local date."""
    return Interval(
        first_instant(zone, _wall_clock(day, 0)),
        first_instant(zone, _wall_clock(day + timedelta(days=1), 0)),
    )


def _interval(zone: ZoneInfo, day: date, time_range: TimeRange) -> Interval:
    return Interval(
        first_instant(zone, _wall_clock(day, time_range.start_minute)),
        first_instant(zone, _wall_clock(day, time_range.end_minute)),
    )


def _merged(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for interval in sorted(intervals, key=lambda i: i.start):
        if merged and interval.start <= merged[-1].end:
            last = merged.pop()
            interval = Interval(last.start, max(last.end, interval.end))
        merged.append(interval)
    return merged


def _without(intervals: list[Interval], holes: list[Interval]) -> list[Interval]:
    kept = intervals
    for hole in holes:
        kept = [
            piece
            for i in kept
            for piece in (
                Interval(i.start, min(i.end, hole.start)),
                Interval(max(i.start, hole.end), i.end),
            )
            if piece.start < piece.end
        ]
    return kept


def working_ranges(schedule: Schedule, day: date) -> list[TimeRange]:
    """The weekly hours of the day's weekday and any extra hours on that date."""
    extra = [
        r
        for e in schedule.exceptions
        if e.day == day and e.kind is ExceptionKind.EXTRA_HOURS
        for r in e.ranges
    ]
    return [*schedule.weekly_hours[day.weekday()], *extra]


def working_time(schedule: Schedule, day: date) -> list[Interval]:
    """When the provider works on that date, as disjoint UTC intervals."""
    off = [e for e in schedule.exceptions if e.day == day and e.kind is ExceptionKind.UNAVAILABLE]
    if any(not e.ranges for e in off):
        return []
    zone = schedule.zone
    working = _merged(_interval(zone, day, r) for r in working_ranges(schedule, day))
    return _without(working, [_interval(zone, day, r) for e in off for r in e.ranges])


def schedule_starts(schedule: Schedule, day: date, duration: timedelta) -> list[datetime]:
    """Starts on the grid of that date where a booking of `duration` fits working time."""
    windows = working_time(schedule, day)
    starts: set[datetime] = set()
    step = int(schedule.step // timedelta(minutes=1))
    for time_range in working_ranges(schedule, day):
        for minute in range(time_range.start_minute, time_range.end_minute, step):
            for start in occurrences(schedule.zone, _wall_clock(day, minute)):
                if any(w.start <= start and start + duration <= w.end for w in windows):
                    starts.add(start)
    return sorted(starts)


def is_free(start: datetime, duration: timedelta, buffer: timedelta, held: Iterable[Held]) -> bool:
    """Whether a booking keeps the larger of the two buffers from every booking held."""
    end = start + duration
    for other in held:
        gap = max(buffer, other.buffer)
        if start < other.end + gap and other.start < end + gap:
            return False
    return True


def open_starts(
    schedule: Schedule,
    day: date,
    duration: timedelta,
    buffer: timedelta,
    held: Sequence[Held],
    not_before: datetime,
) -> list[datetime]:
    """The starts on that date a customer may book now."""
    return [
        start
        for start in schedule_starts(schedule, day, duration)
        if start >= not_before and is_free(start, duration, buffer, held)
    ]
