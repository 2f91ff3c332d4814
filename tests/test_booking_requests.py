"""What a booking request books is the total the customer was shown."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from documents.bookings import Booking
from documents.events import DomainEvent
from documents.profiles import ProviderProfile
from tests.booking_support import booking_input, create_package, freeze_clock, provider, utc
from tests.graphql_client import GraphQLClient, Tokens
from tests.marketplace import aud, object_id, poster

NEW_YEAR = datetime(2026, 1, 1, tzinfo=UTC)
JUNE = [date(2026, 6, 1), date(2026, 6, 2), date(2026, 6, 3)]
REQUEST_FIELDS = """booking { id status start price { total { amount currency } } }"""


@pytest.fixture(autouse=True)
def new_year(monkeypatch: pytest.MonkeyPatch) -> None:
    """It is 2026-01-01 for these tests, so the dates they book stay in the future."""
    freeze_clock(monkeypatch, NEW_YEAR)


async def _request(
    client: GraphQLClient, who: Tokens, package_id: str, start: str, **changes: Any
) -> dict[str, Any]:
    """The bookSlot payload, errors included."""
    return await client.mutate(
        "bookSlot", booking_input(package_id, start, **changes), REQUEST_FIELDS, token=who.access
    )


async def _requested(
    client: GraphQLClient, who: Tokens, package_id: str, start: str, **changes: Any
) -> dict[str, Any]:
    payload = await _request(client, who, package_id, start, **changes)
    assert payload["errors"] == [], payload
    booking: dict[str, Any] = payload["booking"]
    return booking


async def test_a_booking_is_made_at_the_total_shown_or_not_at_all(client: GraphQLClient) -> None:
    tom = await provider(client, "tom@example.com")
    package = await create_package(client, tom)  # 89.99, and a 10 % fee: 98.99
    ann = await poster(client, "ann@example.com")
    raised = await client.mutate(
        "updateServicePackage", {"packageId": package["id"], "price": aud(12000)}, token=tom.access
    )
    assert raised["errors"] == [], raised

    for shown in (aud(9899), {"amount": 13200, "currency": "USD"}):
        answer = await _request(client, ann, package["id"], utc(JUNE[0], 10), expectedTotal=shown)
        assert [(e["field"], e["code"]) for e in answer["errors"]] == [
            ("expectedTotal", "OFFER_CHANGED")
        ]
        assert "132.00 AUD" in answer["errors"][0]["message"] and answer["booking"] is None
    assert await Booking.find_all().count() == 0
    assert await DomainEvent.find_all().count() == 0
    profile = await ProviderProfile.get(object_id(tom.user_id))
    assert profile is not None and profile.schedule_version == 0

    booking = await _requested(
        client, ann, package["id"], utc(JUNE[0], 10), expectedTotal=aud(13200)
    )
    assert booking["price"]["total"] == aud(13200)
