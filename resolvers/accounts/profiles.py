"""Provider and customer profiles: what people show, where they work, when they are free."""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from beanie.odm.utils.encoder import Encoder
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from documents.accounts.profiles import (
    DAYS_PER_WEEK,
    MINUTES_PER_DAY,
    CustomerProfile,
    ExceptionKind,
    ProviderProfile,
    SavedAddress,
    ScheduleException,
    TimeRange,
    no_hours,
)
from documents.accounts.users import Role
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from resolvers.accounts.auth.viewer import Viewer, require_role
from resolvers.common.inputs import KEEP, Keep, MoneyInput, PlaceInput, given_fields, if_given
from resolvers.common.services import Services
from resolvers.common.validation import Checked

MAX_BIO = 2000
MAX_SKILLS = 20
MAX_RADIUS_KM = 500
MAX_BUFFER_MINUTES = 240
MAX_SAVED_ADDRESSES = 20
MAX_EXCEPTIONS = 100
MAX_RANGES_PER_DAY = 12
MAX_LABEL = 50
EXCEPTIONS_AHEAD = timedelta(days=366)
"""How far ahead a dated exception may be: bookings are taken up to a year ahead."""
_CLOCK = re.compile(r"([0-9]{1,2}):([0-9]{2})")


@dataclass(frozen=True)
class RangeInput:
    """Wall-clock times as "HH:MM"; the end may be "24:00"."""

    start: str
    end: str


def _minutes(value: str) -> int | None:
    # ASCII digits only: str.isdigit() also takes "²", which int() then refuses.
    clock = _CLOCK.fullmatch(value.strip())
    if clock is None:
        return None
    hours, minutes = int(clock[1]), int(clock[2])
    total = hours * 60 + minutes
    return total if minutes < 60 and total <= MINUTES_PER_DAY else None


def _ranges(checked: Checked, ranges: list[RangeInput], field: str) -> list[TimeRange]:
    if len(ranges) > MAX_RANGES_PER_DAY:
        checked.fail(ErrorCode.INVALID_INPUT, f"At most {MAX_RANGES_PER_DAY} ranges a day.", field)
        return []
    parsed = []
    for item in ranges:
        start, end = _minutes(item.start), _minutes(item.end)
        if start is None or end is None or end <= start or start >= MINUTES_PER_DAY:
            message = f"{item.start} to {item.end} is not a time range like 09:00 to 17:30."
            checked.fail(ErrorCode.INVALID_INPUT, message, field)
            continue
        parsed.append(TimeRange(start_minute=start, end_minute=end))
    parsed.sort(key=lambda r: r.start_minute)
    for earlier, later in pairwise(parsed):
        if later.start_minute < earlier.end_minute:
            checked.fail(ErrorCode.INVALID_INPUT, "Time ranges of one day must not overlap.", field)
            break
    return parsed


def _skills(checked: Checked, services: Services, skills: list[str]) -> list[str]:
    """Categories, each once, in the order given."""
    chosen = list(
        dict.fromkeys(checked.category(s, services.settings.categories, "skills") for s in skills)
    )
    if len(chosen) > MAX_SKILLS:
        checked.fail(ErrorCode.INVALID_INPUT, f"At most {MAX_SKILLS} skills.", "skills")
    return chosen


def _experience(checked: Checked, years: int) -> int:
    if not 0 <= years <= 80:
        checked.fail(
            ErrorCode.INVALID_INPUT, "Years of experience must be 0 to 80.", "yearsOfExperience"
        )
    return years


def _hourly_rate(
    checked: Checked, services: Services, rate: MoneyInput | None
) -> dict[str, Any] | None:
    """The rate as stored; None for none."""
    if rate is None:
        return None
    rules = services.price_rules
    return checked.price(rate.amount, rate.currency, "hourlyRate", rules).model_dump()


def _place(checked: Checked, place: PlaceInput | None) -> dict[str, Any] | None:
    """Where the provider works from, as stored; None for nowhere in particular."""
    if place is None:
        return None
    return checked.place(place.latitude, place.longitude, place.address, "location").model_dump()


def _radius(checked: Checked, km: int) -> int:
    if not 1 <= km <= MAX_RADIUS_KM:
        checked.fail(
            ErrorCode.INVALID_INPUT,
            f"The radius must be 1 to {MAX_RADIUS_KM} km.",
            "serviceRadiusKm",
        )
    return km


def _buffer(checked: Checked, minutes: int) -> int:
    if not 0 <= minutes <= MAX_BUFFER_MINUTES:
        checked.fail(
            ErrorCode.INVALID_INPUT,
            f"The buffer must be 0 to {MAX_BUFFER_MINUTES} minutes.",
            "bufferMinutes",
        )
    return minutes


def _time_zone(checked: Checked, name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        checked.fail(
            ErrorCode.INVALID_INPUT, f"Unknown time zone {name!r}; use an IANA name.", "timeZone"
        )
    return name


def new_profile_fields(
    profile: ProviderProfile | CustomerProfile, *, besides: Collection[str]
) -> dict[str, Any]:
    """The fields of a new profile for `$setOnInsert`, but those the same update writes."""
    fresh: dict[str, Any] = Encoder().encode(profile.model_dump(exclude={"id", "revision_id"}))
    return {key: value for key, value in fresh.items() if key not in besides}


async def _save_provider(viewer: Viewer, changes: dict[str, Any]) -> ProviderProfile:
    # Beanie's encoder stores dates as midnight datetimes, as it does for whole documents.
    changes = Encoder().encode(changes)
    now = utcnow()
    raw = await ProviderProfile.get_pymongo_collection().find_one_and_update(
        {"_id": viewer.user_id},
        {
            "$set": {**changes, "updated_at": now},
            "$setOnInsert": new_profile_fields(
                ProviderProfile(created_at=now), besides={*changes, "updated_at"}
            ),
        },
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    profile: ProviderProfile = ProviderProfile.model_validate(raw)
    return profile


async def update_provider_profile(
    services: Services,
    viewer: Viewer,
    *,
    bio: str | Keep = KEEP,
    skills: list[str] | Keep = KEEP,
    years_experience: int | Keep = KEEP,
    hourly_rate: MoneyInput | Keep | None = KEEP,
    available: bool | Keep = KEEP,
    place: PlaceInput | Keep | None = KEEP,
    service_radius_km: int | Keep = KEEP,
    time_zone: str | Keep = KEEP,
    buffer_minutes: int | Keep = KEEP,
) -> ProviderProfile:
    require_role(viewer, Role.TASKER, "have a provider profile")
    checked = Checked()
    changes = given_fields(
        bio=if_given(bio, lambda text: checked.text(text, "bio", MAX_BIO, multiline=True)),
        skills=if_given(skills, lambda chosen: _skills(checked, services, chosen)),
        years_experience=if_given(years_experience, lambda years: _experience(checked, years)),
        hourly_rate=if_given(hourly_rate, lambda rate: _hourly_rate(checked, services, rate)),
        available=available,
        place=if_given(place, lambda where: _place(checked, where)),
        service_radius_km=if_given(service_radius_km, lambda km: _radius(checked, km)),
        time_zone=if_given(time_zone, lambda name: _time_zone(checked, name)),
        buffer_minutes=if_given(buffer_minutes, lambda minutes: _buffer(checked, minutes)),
    )
    checked.raise_if_any()
    return await _save_provider(viewer, changes)


@dataclass(frozen=True)
class WorkingDayInput:
    weekday: int
    """0 = Monday."""
    ranges: list[RangeInput]


async def set_weekly_hours(
    services: Services, viewer: Viewer, days: list[WorkingDayInput]
) -> ProviderProfile:
    """Replace the weekly hours; days not given have none, a day given twice is refused."""
    require_role(viewer, Role.TASKER, "set working hours")
    checked = Checked()
    hours = no_hours()
    given: set[int] = set()
    for index, day in enumerate(days):
        field = f"days.{index}"
        if not 0 <= day.weekday < DAYS_PER_WEEK:
            message = "Weekdays are 0 (Monday) to 6 (Sunday)."
            checked.fail(ErrorCode.INVALID_INPUT, message, f"{field}.weekday")
            continue
        if day.weekday in given:
            message = "This weekday is given twice; give each day once with all its ranges."
            checked.fail(ErrorCode.INVALID_INPUT, message, f"{field}.weekday")
        given.add(day.weekday)
        hours[day.weekday] = _ranges(checked, day.ranges, f"{field}.ranges")
    checked.raise_if_any()
    return await _save_provider(
        viewer, {"weekly_hours": [[r.model_dump() for r in day] for day in hours]}
    )


async def set_schedule_exception(
    services: Services, viewer: Viewer, day: date, kind: ExceptionKind, ranges: list[RangeInput]
) -> ProviderProfile:
    """Mark one date unavailable (wholly, or only `ranges`) or add extra hours on it."""
    require_role(viewer, Role.TASKER, "change working hours")
    checked = Checked()
    parsed = _ranges(checked, ranges, "ranges")
    if kind is ExceptionKind.EXTRA_HOURS and not parsed and not checked.problems:
        checked.fail(ErrorCode.INVALID_INPUT, "Give the extra hours.", "ranges")
    today = utcnow().date()
    if day < today - timedelta(days=1):  # a day behind: time zones west of UTC
        checked.fail(ErrorCode.INVALID_INPUT, "The date has passed.", "date")
    elif day > today + EXCEPTIONS_AHEAD:
        message = f"The date is more than {EXCEPTIONS_AHEAD.days} days ahead."
        checked.fail(ErrorCode.INVALID_INPUT, message, "date")
    checked.raise_if_any()
    exception = ScheduleException(day=day, kind=kind, ranges=parsed)
    profile = await get_provider_profile(viewer)
    # Past dates no longer matter; dropping them keeps the list short.
    yesterday = utcnow().date() - timedelta(days=1)
    others = [e for e in profile.exceptions if e.day != day and e.day >= yesterday]
    if len(others) >= MAX_EXCEPTIONS:
        raise DomainError(ErrorCode.INVALID_INPUT, "Too many dated exceptions.", "date")
    kept = sorted([*others, exception], key=lambda e: e.day)
    return await _save_provider(viewer, {"exceptions": [e.model_dump() for e in kept]})


async def remove_schedule_exception(
    services: Services, viewer: Viewer, day: date
) -> ProviderProfile:
    profile = await get_provider_profile(viewer)
    kept = [e for e in profile.exceptions if e.day != day]
    if len(kept) == len(profile.exceptions):
        raise DomainError(ErrorCode.NOT_FOUND, "No exception on that date.", "date")
    return await _save_provider(viewer, {"exceptions": [e.model_dump() for e in kept]})


async def get_provider_profile(viewer: Viewer) -> ProviderProfile:
    profile = await ProviderProfile.get(viewer.user_id)
    if profile is None:
        raise DomainError(ErrorCode.NOT_FOUND, "Create your provider profile first.")
    return profile


async def save_address(
    services: Services, viewer: Viewer, label: str, place: PlaceInput
) -> CustomerProfile:
    checked = Checked()
    label = checked.required_text(label, "label", min_length=1, max_length=MAX_LABEL)
    where = checked.place(place.latitude, place.longitude, place.address, "location")
    checked.raise_if_any()
    saved = SavedAddress(id=uuid.uuid4().hex, label=label, place=where)
    try:
        raw = await CustomerProfile.get_pymongo_collection().find_one_and_update(
            # Only while there is room: a full list does not match, and the upsert then
            # collides with the existing profile.
            {"_id": viewer.user_id, f"addresses.{MAX_SAVED_ADDRESSES - 1}": {"$exists": False}},
            {"$push": {"addresses": saved.model_dump()}, "$set": {"updated_at": utcnow()}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
    except DuplicateKeyError as error:
        message = f"At most {MAX_SAVED_ADDRESSES} saved addresses."
        raise DomainError(ErrorCode.INVALID_INPUT, message, "label") from error
    profile: CustomerProfile = CustomerProfile.model_validate(raw)
    return profile


async def remove_saved_address(
    services: Services, viewer: Viewer, address_id: str
) -> CustomerProfile:
    raw = await CustomerProfile.get_pymongo_collection().find_one_and_update(
        {"_id": viewer.user_id, "addresses.id": address_id},
        {"$pull": {"addresses": {"id": address_id}}, "$set": {"updated_at": utcnow()}},
        return_document=ReturnDocument.AFTER,
    )
    if raw is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such saved address.", "addressId")
    profile: CustomerProfile = CustomerProfile.model_validate(raw)
    return profile
