"""How each kind of notification reaches me, and when I am not to be disturbed.

A choice counts from the next change on: deliveries are planned with the preferences
read when they are made, right after the change that causes them commits (outbox.derive),
and checked again when they go out (sending.py), so a kind turned off meanwhile is not
sent either. Kinds
that may not be turned off (security messages, payment receipts) keep their default
channels: a choice that drops one is refused, and nothing is changed.

Each kind is written on its own path (`choices.<kind>`), so two updates of different
kinds at once both count; a choice equal to the defaults is stored as no choice, so
that the person follows the catalogue if its defaults change.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import time
from functools import cache
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from beanie import PydanticObjectId
from beanie.odm.utils.encoder import Encoder
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from documents.accounts.users import User, UserStatus
from documents.clock import utcnow
from documents.errors import ErrorCode
from documents.notifications.catalogue import CATALOGUE, Channel, NotificationKind
from documents.notifications.preferences import NotificationPreferences, QuietHours
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.inputs import KEEP, Keep
from resolvers.common.validation import Checked

_CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")
MAX_TIME_ZONE = 64
"""Longer than any IANA name; refused unread."""


@dataclass(frozen=True, slots=True)
class Choice:
    """The channels chosen for one kind: an empty list turns it off everywhere."""

    kind: NotificationKind
    channels: Sequence[Channel]


@dataclass(frozen=True, slots=True)
class QuietHoursInput:
    """Wall-clock times as "HH:MM" in an IANA time zone; an end before the start runs
    past midnight."""

    start: str
    end: str
    time_zone: str
    email_waits: bool = False


@dataclass(frozen=True, slots=True)
class KindSetting:
    """What a person receives one kind on, beside what everyone gets by default."""

    kind: NotificationKind
    channels: frozenset[Channel]
    """As chosen (the defaults if they never chose), whether or not they can be reached
    there yet (a phone to verify, a browser to subscribe)."""
    default: frozenset[Channel]
    optional: bool


async def preferences_of(user_id: ObjectId) -> NotificationPreferences:
    """What the person chose, or the defaults if they never chose."""
    found = await NotificationPreferences.find_one(NotificationPreferences.user_id == user_id)
    return found or NotificationPreferences(user_id=PydanticObjectId(user_id))


async def my_preferences(viewer: Viewer) -> NotificationPreferences:
    return await preferences_of(viewer.user_id)


def kind_settings(preferences: NotificationPreferences) -> list[KindSetting]:
    """Every kind of the catalogue, in its order, as this person receives it."""
    return [
        KindSetting(kind, preferences.chosen(kind), entry.default, entry.optional)
        for kind, entry in CATALOGUE.items()
    ]


async def update_preferences(
    viewer: Viewer,
    choices: Sequence[Choice] = (),
    quiet_hours: QuietHoursInput | Keep | None = KEEP,
) -> NotificationPreferences:
    """Set the channels of the kinds in `choices` (the others keep theirs) and the quiet
    hours (None clears them, KEEP leaves them). Every problem is reported at once, and
    nothing is written while any remain."""
    checked = Checked()
    chosen = _choices(checked, choices)
    quiet = KEEP if quiet_hours is KEEP else _quiet_hours(checked, quiet_hours)
    checked.raise_if_any()
    changes: dict[str, Any] = {"updated_at": utcnow()}
    cleared: dict[str, str] = {}
    for kind, channels in chosen.items():
        path = f"choices.{kind.value}"
        if channels == CATALOGUE[kind].default:
            cleared[path] = ""
        else:
            changes[path] = [channel.value for channel in Channel if channel in channels]
    if quiet is not KEEP:
        changes["quiet_hours"] = None if quiet is None else _stored(quiet)
    update: dict[str, Any] = {"$set": changes}
    if cleared:
        update["$unset"] = cleared
    await _ensure_document(viewer.user_id)
    raw = await NotificationPreferences.get_pymongo_collection().find_one_and_update(
        {"user_id": viewer.user_id}, update, return_document=ReturnDocument.AFTER
    )
    updated: NotificationPreferences = NotificationPreferences.model_validate(raw)
    return updated


async def turn_off_email(user_id: ObjectId, kind: NotificationKind) -> bool:
    """Stop e-mails of `kind` to the person, keeping its other channels (one-click
    unsubscribe). False, changing nothing, for a kind that may not be turned off or an
    account that no longer exists."""
    if not CATALOGUE[kind].optional:
        return False
    user = await User.get(user_id)
    if user is None or user.status is UserStatus.DELETED:
        return False
    await _ensure_document(user_id)
    collection = NotificationPreferences.get_pymongo_collection()
    path = f"choices.{kind.value}"
    rest = [c.value for c in Channel if c in CATALOGUE[kind].default and c is not Channel.EMAIL]
    # Two conditional writes, either of which matches: from their choice, or from the
    # defaults while they have none. A choice made in between makes both miss; again.
    for _ in range(3):
        now = utcnow()
        pulled = await collection.update_one(
            {"user_id": user_id, path: {"$exists": True}},
            {"$pull": {path: Channel.EMAIL.value}, "$set": {"updated_at": now}},
        )
        if pulled.matched_count:
            return True
        from_defaults = await collection.update_one(
            {"user_id": user_id, path: {"$exists": False}},
            {"$set": {path: rest, "updated_at": now}},
        )
        if from_defaults.matched_count:
            return True
    raise RuntimeError(f"the e-mail of {kind.value} could not be turned off for {user_id}")


async def _ensure_document(user_id: ObjectId) -> None:
    """The person's preferences document, made with the defaults if they have none, so
    that every change after is a plain update of named fields."""
    fresh = NotificationPreferences(user_id=PydanticObjectId(user_id))
    # Made at the same moment by another request of theirs: there it is.
    with suppress(DuplicateKeyError):
        await NotificationPreferences.get_pymongo_collection().update_one(
            {"user_id": user_id},
            {"$setOnInsert": _stored(fresh, exclude={"id", "revision_id", "user_id"})},
            upsert=True,
        )


def _stored(value: Any, exclude: set[str] | None = None) -> Any:
    """`value` as the preferences document stores it (times of day as "HH:MM")."""
    if exclude is not None:
        value = value.model_dump(exclude=exclude)
    encoders = cast(
        "dict[type, Callable[[Any], Any]]", NotificationPreferences.Settings.bson_encoders
    )
    return Encoder(custom_encoders=encoders).encode(value)


def _choices(
    checked: Checked, choices: Sequence[Choice]
) -> dict[NotificationKind, frozenset[Channel]]:
    if len(choices) > len(CATALOGUE):
        checked.fail(ErrorCode.INVALID_INPUT, "Choose each kind at most once.", "choices")
        return {}
    chosen: dict[NotificationKind, frozenset[Channel]] = {}
    for index, choice in enumerate(choices):
        entry = CATALOGUE[choice.kind]
        channels = frozenset(choice.channels)
        if choice.kind in chosen:
            message = f"{choice.kind.value} is chosen more than once."
            checked.fail(ErrorCode.INVALID_INPUT, message, f"choices.{index}.kind")
        elif not entry.optional and not entry.default <= channels:
            kept = ", ".join(c.value for c in Channel if c in entry.default)
            message = f"{choice.kind.value} cannot be turned off; it always goes by {kept}."
            checked.fail(ErrorCode.NOTIFICATION_REQUIRED, message, f"choices.{index}.channels")
        chosen[choice.kind] = channels
    return chosen


def _quiet_hours(checked: Checked, given: QuietHoursInput | None) -> QuietHours | None:
    if given is None:
        return None
    start = _clock(checked, given.start, "quietHours.start")
    end = _clock(checked, given.end, "quietHours.end")
    zone = _time_zone(checked, given.time_zone, "quietHours.timeZone")
    if start is not None and start == end:
        message = "Quiet hours must end at another time than they start."
        checked.fail(ErrorCode.INVALID_INPUT, message, "quietHours.end")
    if start is None or end is None or zone is None or start == end:
        return None
    return QuietHours(start=start, end=end, time_zone=zone, email_waits=given.email_waits)


def _clock(checked: Checked, value: str, field: str) -> time | None:
    # ASCII digits only: a regex \d would take other scripts' digits too.
    clock = _CLOCK.fullmatch(value)
    if clock is None:
        checked.fail(ErrorCode.INVALID_INPUT, f"{value!r} is not a time like 22:30.", field)
        return None
    return time(int(clock[1]), int(clock[2]))


def _time_zone(checked: Checked, name: str, field: str) -> str | None:
    if len(name) <= MAX_TIME_ZONE and name in _iana_names():
        try:
            ZoneInfo(name)
            return name
        except (ZoneInfoNotFoundError, ValueError):
            pass
    message = f"Unknown time zone {name[:MAX_TIME_ZONE]!r}; use an IANA name, like Europe/Paris."
    checked.fail(ErrorCode.INVALID_INPUT, message, field)
    return None


@cache
def _iana_names() -> frozenset[str]:
    """The zones the time zone database names (not `localtime` or a file path)."""
    return frozenset(available_timezones())
