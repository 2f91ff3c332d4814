"""No calendar squatting: a booking request holds its time only until the provider's
answer is due, a customer has only a few waiting at once, and what is booked is the
total the customer was shown."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest

from documents.accounts.profiles import ProviderProfile
from documents.events import DomainEvent, EventKind, Notification
from documents.marketplace.bookings import Booking, BookingStatus
from documents.payments.escrow import Escrow
from resolvers.marketplace.request_expiry import expire_unanswered_requests
from server.background import marketplace_jobs, running
from server.runtime import Runtime
from tests.conftest import serve, with_settings
from tests.support.bookings import (
    act,
    booking_input,
    create_package,
    freeze_clock,
    provider,
    slots,
    utc,
)
from tests.support.graphql_client import GraphQLClient, Tokens, error_codes, graphql_error_codes
from tests.support.marketplace import aud, object_id, poster

NEW_YEAR = datetime(2026, 1, 1, tzinfo=UTC)
JUNE = [date(2026, 6, 1), date(2026, 6, 2), date(2026, 6, 3)]
CAP = 3  # GIGQL_MAX_PENDING_BOOKINGS by default
REQUEST_FIELDS = """booking { id status start respondBy price { total { amount currency } }
  cancellation { by { id } role reason rejected refundBp refundable { amount currency } }
  history { status by { id } } }"""
MY_BOOKINGS = """query($role: BookingRole!) { myBookings(role: $role) {
  edges { node { id status respondBy } } } }"""


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


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def _status(booking_id: str) -> BookingStatus:
    booking = await Booking.get(object_id(booking_id))
    assert booking is not None
    return booking.status


async def _kinds_notified(who: Tokens) -> list[EventKind]:
    found = await Notification.find(Notification.user_id == object_id(who.user_id)).to_list()
    return sorted(n.kind for n in found)


async def test_one_customer_cannot_empty_a_providers_calendar(client: GraphQLClient) -> None:
    tom = await provider(client, "tom@example.com", hours=("09:00", "17:00"))
    hour = await create_package(client, tom, durationMinutes=60)
    free_before = [await slots(client, tom.user_id, hour["id"], day) for day in JUNE]
    # Every hour of three working days, as asked of one provider by one customer.
    every_hour = [utc(day, h) for day in JUNE for h in range(9, 17)]
    assert len(every_hour) == 24 and set(every_hour) <= {s for day in free_before for s in day}

    squatter = await poster(client, "squatter@example.com")
    answers = [await _request(client, squatter, hour["id"], start) for start in every_hour]

    assert [a["booking"]["start"] for a in answers[:CAP]] == every_hour[:CAP]
    assert [error_codes(a) for a in answers[CAP:]] == [["TOO_MANY_PENDING"]] * (24 - CAP)
    assert all(a["booking"] is None for a in answers[CAP:])
    assert await Booking.find_all().count() == CAP
    assert await DomainEvent.find_all().count() == CAP  # the refused asked nobody anything
    assert await _kinds_notified(tom) == [EventKind.BOOKING_REQUESTED] * CAP

    # Everyone else still finds the rest of the three days open, and can book it.
    free_after = [await slots(client, tom.user_id, hour["id"], day) for day in JUNE]
    assert free_after[1:] == free_before[1:]
    assert utc(JUNE[0], 12) in free_after[0] and utc(JUNE[0], 10) not in free_after[0]
    bob = await poster(client, "bob@example.com")
    assert (await _requested(client, bob, hour["id"], utc(JUNE[1], 9)))["status"] == "PENDING"

    # An answer frees a place among the squatter's requests: one more, and no more.
    first = answers[0]["booking"]["id"]
    declined = await act(client, "rejectBooking", tom, first, reason="Fully booked that day")
    assert declined["errors"] == [], declined
    again = [await _request(client, squatter, hour["id"], utc(JUNE[2], h)) for h in (9, 10)]
    assert again[0]["errors"] == [] and error_codes(again[1]) == ["TOO_MANY_PENDING"]


async def test_concurrent_requests_of_one_customer_stay_within_the_cap(
    runtime: Runtime, client: GraphQLClient
) -> None:
    # Each request to another provider, so that no provider's calendar orders them.
    providers = [await provider(client, f"p{i}@example.com") for i in range(8)]
    packages = [await create_package(client, who) for who in providers]
    ann = await poster(client, "ann@example.com")

    async with (
        serve(runtime) as second_instance,
        httpx.AsyncClient(base_url=second_instance, timeout=60) as http,
    ):
        other = GraphQLClient(http)
        answers = await asyncio.gather(
            *(
                _request(client if i % 2 else other, ann, package["id"], utc(JUNE[0], 10))
                for i, package in enumerate(packages)
            )
        )

    booked = [a["booking"] for a in answers if not a["errors"]]
    assert len(booked) == CAP
    assert sorted(error_codes(a) for a in answers if a["errors"]) == [["TOO_MANY_PENDING"]] * (
        8 - CAP
    )
    stored = await Booking.find(Booking.customer_id == object_id(ann.user_id)).to_list()
    assert {str(b.id) for b in stored} == {str(object_id(b["id"])) for b in booked}
    # The refused changed no provider's calendar either.
    versions = [(await ProviderProfile.get(object_id(p.user_id))) for p in providers]
    assert sorted(v.schedule_version for v in versions if v) == [0] * (8 - CAP) + [1] * CAP


async def test_an_unanswered_request_expires_once_freeing_its_time_and_telling_both(
    runtime: Runtime, client: GraphQLClient
) -> None:
    tom = await provider(client, "tom@example.com", hours=("09:00", "17:00"))
    package = await create_package(client, tom, durationMinutes=60)
    ann = await poster(client, "ann@example.com")
    request = await _requested(client, ann, package["id"], utc(JUNE[0], 10))
    respond_by = _instant(request["respondBy"])
    assert respond_by == NEW_YEAR + timedelta(hours=24)  # GIGQL_BOOKING_REQUEST_EXPIRY
    assert utc(JUNE[0], 10) not in await slots(client, tom.user_id, package["id"], JUNE[0])

    services = runtime.services
    assert await expire_unanswered_requests(services, now=respond_by - timedelta(seconds=1)) == 0
    # Two instances' runs at once: one expires it.
    runs = await asyncio.gather(
        *(expire_unanswered_requests(services, now=respond_by) for _ in range(2))
    )
    assert sorted(runs) == [0, 1]
    assert await expire_unanswered_requests(services, now=respond_by + timedelta(days=1)) == 0

    [expired] = (await client.data(MY_BOOKINGS, {"role": "CUSTOMER"}, token=ann.access))[
        "myBookings"
    ]["edges"]
    assert expired["node"]["status"] == "CANCELLED"
    stored = await Booking.get(object_id(request["id"]))
    assert stored is not None and stored.cancellation is not None
    assert stored.cancellation.model_dump(exclude={"at"}) == {
        "by": None,
        "role": "system",
        "reason": "The provider did not answer the request in time.",
        "rejected": False,
        "refund_bp": 0,
        "refundable": {"amount": 0, "currency": "AUD"},
    }
    assert [(h.status, h.by, h.move) for h in stored.history] == [
        (BookingStatus.PENDING, object_id(ann.user_id), None),
        (BookingStatus.CANCELLED, None, "expire"),
    ]
    cancelled = await DomainEvent.find(DomainEvent.kind == EventKind.BOOKING_CANCELLED).to_list()
    assert [e.actor_id for e in cancelled] == [None]
    assert await _kinds_notified(ann) == [EventKind.BOOKING_CANCELLED]
    assert await _kinds_notified(tom) == [
        EventKind.BOOKING_CANCELLED,
        EventKind.BOOKING_REQUESTED,
    ]

    # The time is free again, and nothing of the request can be confirmed.
    assert utc(JUNE[0], 10) in await slots(client, tom.user_id, package["id"], JUNE[0])
    confirming = await act(client, "confirmBooking", tom, request["id"])
    assert error_codes(confirming) == ["INVALID_STATE"]
    bob = await poster(client, "bob@example.com")
    assert (await _requested(client, bob, package["id"], utc(JUNE[0], 10)))["status"] == "PENDING"
    assert await Escrow.find_all().count() == 0


async def test_a_request_past_its_answer_time_is_not_confirmed_before_it_is_expired(
    client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    tom = await provider(client, "tom@example.com")
    package = await create_package(client, tom)
    ann = await poster(client, "ann@example.com")
    request = await _requested(client, ann, package["id"], utc(JUNE[0], 10))
    respond_by = _instant(request["respondBy"])

    freeze_clock(monkeypatch, respond_by)
    answer = await act(client, "confirmBooking", tom, request["id"])
    assert [(e["field"], e["code"]) for e in answer["errors"]] == [("bookingId", "INVALID_STATE")]
    assert await _status(request["id"]) is BookingStatus.PENDING  # until the expiry runs
    assert await Escrow.find_all().count() == 0

    freeze_clock(monkeypatch, respond_by - timedelta(milliseconds=1))
    confirmed = await act(client, "confirmBooking", tom, request["id"])
    assert confirmed["errors"] == [] and confirmed["booking"]["status"] == "CONFIRMED"


async def test_a_request_must_be_answered_by_its_start_less_the_notice(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    morning = datetime.combine(JUNE[0], time(6), UTC)
    freeze_clock(monkeypatch, morning)
    async with (
        serve(runtime, booking_request_expiry=timedelta(hours=2)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        client = GraphQLClient(http)
        tom = await provider(client, "tom@example.com")
        package = await create_package(client, tom, durationMinutes=60)
        ann = await poster(client, "ann@example.com")
        soon = await _requested(client, ann, package["id"], utc(JUNE[0], 7, 30))
        later = await _requested(client, ann, package["id"], utc(JUNE[1], 10))

    # 07:30 less the hour's notice comes before the two hours the provider is given.
    assert _instant(soon["respondBy"]) == datetime.combine(JUNE[0], time(6, 30), UTC)
    assert _instant(later["respondBy"]) == morning + timedelta(hours=2)
    services = with_settings(runtime, booking_request_expiry=timedelta(hours=2)).services
    assert await expire_unanswered_requests(services, now=morning + timedelta(minutes=30)) == 1
    assert await _status(soon["id"]) is BookingStatus.CANCELLED
    assert await _status(later["id"]) is BookingStatus.PENDING


async def test_every_instance_expires_unanswered_requests_in_the_background(
    runtime: Runtime, client: GraphQLClient
) -> None:
    tom = await provider(client, "tom@example.com")
    package = await create_package(client, tom)
    ann = await poster(client, "ann@example.com")
    # Asked on 2026-01-01, answer due the next day: long past by the real clock.
    request = await _requested(client, ann, package["id"], utc(JUNE[0], 10))

    services = with_settings(runtime, escrow_sweep_interval=timedelta(milliseconds=10)).services
    async with asyncio.timeout(10), running(marketplace_jobs(services)):
        while await Booking.find(Booking.status == BookingStatus.PENDING).count():
            await asyncio.sleep(0.01)
    expired = await Booking.get(object_id(request["id"]))
    assert expired is not None and expired.status is BookingStatus.CANCELLED
    assert expired.history[-1].move == "expire"


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


async def test_bookings_are_listed_by_a_side_that_takes_part(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    answer = await client.execute(MY_BOOKINGS, {"role": "SYSTEM"}, token=ann.access)
    assert graphql_error_codes(answer) == ["INVALID_INPUT"]
