"""Helpers for the booking tests: providers with hours, packages, slots and bookings."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from resolvers.marketplace import bookings
from tests.support.graphql_client import GraphQLClient, Tokens
from tests.support.marketplace import aud, place

WEEK = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
PACKAGE_FIELDS = """package { id name description price { amount currency } durationMinutes
  type active provider { id } }"""
BOOKING_FIELDS = """booking { id status start end bufferMinutes
  packageSnapshot { name type durationMinutes }
  price { packagePrice { amount currency } platformFee { amount } total { amount } feeBp }
  cancellationPolicy { tiers { minHoursBefore refundBp } providerCancelRefundBp }
  cancellation { by { id } role reason rejected refundBp refundable { amount currency } }
  customer { id } provider { id } package { id } instructions
  serviceLocation { address { line1 } } history { status by { id } } }"""
SLOTS = """query($provider: ID!, $package: ID!, $date: Date!) {
  availableSlots(providerId: $provider, packageId: $package, date: $date) }"""


def freeze_clock(monkeypatch: pytest.MonkeyPatch, now: datetime) -> None:
    """Make the booking rules read `now` as the time (the app is served in this process)."""
    monkeypatch.setattr(bookings, "utcnow", lambda: now)


async def soonest_slot(client: GraphQLClient, provider: Tokens, package_id: str) -> str:
    """The first start open to book, today or tomorrow (UTC), for a provider working every
    hour: within the booking notice plus a slot step, so within the start window."""
    today = datetime.now(UTC).date()
    for day in (today, today + timedelta(days=1)):
        found = await slots(client, provider.user_id, package_id, day)
        if found:
            return found[0]
    raise AssertionError("the provider has no slot today or tomorrow")


def midday_zone() -> str:
    """A time zone where it is about noon now. A test that books a slot an hour or two
    ahead and starts it must not meet the end of the provider's day: a two-hour package
    starts by 22:00, so between about 20:30 and 22:00 the next slot is after midnight,
    beyond the start window. (`Etc/GMT-9` is nine hours ahead of UTC.)"""
    offset = 12 - datetime.now(UTC).hour
    return "Etc/GMT" + (f"{-offset:+d}" if offset else "")


def utc(day: date, hour: int, minute: int = 0) -> str:
    """An instant as the API writes it."""
    return datetime.combine(day, time(hour, minute), UTC).isoformat()


async def provider(
    client: GraphQLClient,
    email: str,
    *,
    name: str = "Test User",
    time_zone: str = "UTC",
    hours: tuple[str, str] = ("00:00", "24:00"),
    buffer_minutes: int = 0,
) -> Tokens:
    """A tasker with a provider profile working `hours` every day."""
    who = await client.member(email, name=name, roles=("TASKER",))
    profile = await client.mutate(
        "updateProviderProfile",
        {"timeZone": time_zone, "bufferMinutes": buffer_minutes},
        token=who.access,
    )
    assert profile["errors"] == [], profile
    start, end = hours
    weekly = await client.mutate(
        "setWeeklyHours",
        {"days": [{"weekday": day, "ranges": [{"start": start, "end": end}]} for day in WEEK]},
        token=who.access,
    )
    assert weekly["errors"] == [], weekly
    return who


def package_input(**changes: Any) -> dict[str, Any]:
    return {
        "name": "Deep clean",
        "description": "Kitchen, bathrooms and floors, top to bottom.",
        "price": aud(8999),
        "durationMinutes": 120,
        "type": "DEEP",
        **changes,
    }


async def create_package(client: GraphQLClient, who: Tokens, **changes: Any) -> dict[str, Any]:
    payload = await client.mutate(
        "createServicePackage", package_input(**changes), PACKAGE_FIELDS, token=who.access
    )
    assert payload["errors"] == [], payload
    package: dict[str, Any] = payload["package"]
    return package


async def slots(client: GraphQLClient, provider_id: str, package_id: str, day: date) -> list[str]:
    data = await client.data(
        SLOTS, {"provider": provider_id, "package": package_id, "date": day.isoformat()}
    )
    found: list[str] = data["availableSlots"]
    return found


def booking_input(package_id: str, start: str, **changes: Any) -> dict[str, Any]:
    return {
        "packageId": package_id,
        "start": start,
        "serviceLocation": place(),
        "instructions": "The key is under the mat.",
        **changes,
    }


async def book(
    client: GraphQLClient, who: Tokens, package_id: str, start: str, **changes: Any
) -> dict[str, Any]:
    """The bookSlot payload, errors included."""
    return await client.mutate(
        "bookSlot", booking_input(package_id, start, **changes), BOOKING_FIELDS, token=who.access
    )


async def booked(
    client: GraphQLClient, who: Tokens, package_id: str, start: str, **changes: Any
) -> dict[str, Any]:
    """A booking that must succeed."""
    payload = await book(client, who, package_id, start, **changes)
    assert payload["errors"] == [], payload
    booking: dict[str, Any] = payload["booking"]
    return booking


async def act(
    client: GraphQLClient, name: str, who: Tokens, booking_id: str, **extra: Any
) -> dict[str, Any]:
    """Run a booking mutation (confirmBooking, cancelBooking, ...) and return its payload."""
    return await client.mutate(
        name, {"bookingId": booking_id, **extra}, BOOKING_FIELDS, token=who.access
    )
