"""No double booking: of concurrent requests for overlapping times with one provider,
through two API instances at once, exactly one holds the time."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from documents.accounts.profiles import ProviderProfile
from documents.events import DomainEvent, EventKind
from documents.marketplace.bookings import Booking, BookingStatus
from server.runtime import Runtime
from tests.conftest import serve
from tests.support.bookings import act, book, create_package, freeze_clock, provider, slots, utc
from tests.support.graphql_client import GraphQLClient, error_codes
from tests.support.marketplace import object_id, poster

DAY = date(2026, 6, 1)


@pytest.fixture(autouse=True)
def new_year(monkeypatch: pytest.MonkeyPatch) -> None:
    """It is 2026-01-01 for these tests, so the dates they book stay in the future."""
    freeze_clock(monkeypatch, datetime(2026, 1, 1, tzinfo=UTC))


async def test_concurrent_overlapping_bookings_have_one_winner_per_time(
    runtime: Runtime, client: GraphQLClient
) -> None:
    tom = await provider(client, "tom@example.com", hours=("08:00", "18:00"), buffer_minutes=30)
    package = await create_package(client, tom)  # two hours
    customers = [await poster(client, f"c{i}@example.com") for i in range(16)]
    # Eight want 09:00 exactly; eight want 13:00 to 14:30, all within two hours of each other.
    wanted = [utc(DAY, 9)] * 8 + [utc(DAY, 13 + i // 4, 30 * (i // 2 % 2)) for i in range(8)]

    async with (
        serve(runtime) as second_instance,
        httpx.AsyncClient(base_url=second_instance, timeout=60) as http,
    ):
        other = GraphQLClient(http)
        payloads = await asyncio.gather(
            *(
                book(client if i % 2 else other, who, package["id"], start)
                for i, (who, start) in enumerate(zip(customers, wanted, strict=True))
            )
        )

    winners = [p["booking"] for p in payloads if not p["errors"]]
    assert len(winners) == 2
    assert [w["start"] for w in winners if w["start"] in wanted[:8]] == [utc(DAY, 9)]
    assert len([w for w in winners if w["start"] in wanted[8:]]) == 1
    assert all(error_codes(p) == ["UNAVAILABLE"] for p in payloads if p["errors"])

    stored = await Booking.find(Booking.status == BookingStatus.PENDING).to_list()
    assert {b.id for b in stored} == {object_id(w["id"]) for w in winners}
    first, second = sorted(stored, key=lambda b: b.start_at)
    assert second.start_at - first.end_at >= timedelta(minutes=30)
    profile = await ProviderProfile.get(object_id(tom.user_id))
    assert profile is not None and profile.schedule_version == 2  # losers' bumps rolled back
    requested = await DomainEvent.find(DomainEvent.kind == EventKind.BOOKING_REQUESTED).count()
    assert requested == 2


async def test_a_freed_slot_can_be_taken_by_exactly_one_of_many(client: GraphQLClient) -> None:
    tom = await provider(client, "tom@example.com", hours=("09:00", "12:00"))
    package = await create_package(client, tom, durationMinutes=180)
    first, *others = [await poster(client, f"c{i}@example.com") for i in range(11)]
    taken = await book(client, first, package["id"], utc(DAY, 9))
    assert await slots(client, tom.user_id, package["id"], DAY) == []

    cancelling = act(client, "cancelBooking", first, taken["booking"]["id"], reason="Away")
    results = await asyncio.gather(
        cancelling, *(book(client, who, package["id"], utc(DAY, 9)) for who in others)
    )
    assert results[0]["booking"]["status"] == "CANCELLED"
    # Those that ran before the cancellation committed found the time taken; at most one
    # of the rest got it.
    winners = [r for r in results[1:] if not r["errors"]]
    assert len(winners) <= 1
    assert all(error_codes(r) == ["UNAVAILABLE"] for r in results[1:] if r["errors"])
    # Whoever asks now, one after another: the time is held exactly once.
    for who in others[:2]:
        await book(client, who, package["id"], utc(DAY, 9))
    assert await Booking.find(Booking.status == BookingStatus.PENDING).count() == 1
