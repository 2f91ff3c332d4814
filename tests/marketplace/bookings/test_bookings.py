"""Booking a slot and the booking's lifecycle: what is agreed, who may do what, refunds,
events, privacy and listing."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from documents.accounts.profiles import ProviderProfile
from documents.events import DomainEvent, EventKind, Notification
from documents.marketplace.bookings import Booking, BookingStatus, Cancellation, CancelledBy
from server.runtime import Runtime
from tests.support.bookings import (
    act,
    book,
    booked,
    booking_input,
    create_package,
    freeze_clock,
    provider,
    utc,
)
from tests.support.command_log import CommandLog
from tests.support.graphql_client import GraphQLClient, Tokens, error_codes
from tests.support.marketplace import aud, logged_in_admin, object_id, place, poster, tasker
from tests.support.payments.escrow import pay_booking

JUNE_1 = date(2026, 6, 1)
UNKNOWN_BOOKING = base64.b64encode(b"Booking:" + b"0" * 24).decode()
NODE = """query($id: ID!) { node(id: $id) { ... on Booking { id status
  serviceLocation { address { line1 } } instructions } } }"""


@pytest.fixture(autouse=True)
def new_year(monkeypatch: pytest.MonkeyPatch) -> None:
    """It is 2026-01-01 for these tests, so the dates they book stay in the future."""
    freeze_clock(monkeypatch, datetime(2026, 1, 1, tzinfo=UTC))


async def _parties(client: GraphQLClient) -> tuple[Tokens, Tokens, dict[str, Any]]:
    """A provider working all day (UTC, 15 minutes' buffer) with a package, and a customer."""
    tom = await provider(client, "tom@example.com", buffer_minutes=15)
    ann = await client.member("ann@example.com", roles=("POSTER",), phone="+61412345678")
    return tom, ann, await create_package(client, tom)


async def test_booking_a_slot_records_what_was_agreed(client: GraphQLClient) -> None:
    tom, ann, package = await _parties(client)
    booking = await booked(client, ann, package["id"], utc(JUNE_1, 10))
    assert booking == {
        "id": booking["id"],
        "status": "PENDING",
        "start": utc(JUNE_1, 10),
        "end": utc(JUNE_1, 12),
        "bufferMinutes": 15,
        "packageSnapshot": {"name": "Deep clean", "type": "DEEP", "durationMinutes": 120},
        "price": {
            "packagePrice": {"amount": 8999, "currency": "AUD"},
            "platformFee": {"amount": 900},  # 10 % of 89.99, rounded half up
            "total": {"amount": 9899},
            "feeBp": 1000,
        },
        "cancellationPolicy": {
            "tiers": [
                {"minHoursBefore": 24, "refundBp": 10000},
                {"minHoursBefore": 6, "refundBp": 5000},
            ],
            "providerCancelRefundBp": 10000,
        },
        "cancellation": None,
        "customer": {"id": ann.user_id},
        "provider": {"id": tom.user_id},
        "package": {"id": package["id"]},
        "instructions": "The key is under the mat.",
        "serviceLocation": {"address": {"line1": "1 George St"}},
        "history": [{"status": "PENDING", "by": {"id": ann.user_id}}],
    }
    profile = await ProviderProfile.get(object_id(tom.user_id))
    assert profile is not None and profile.schedule_version == 1

    [event] = await DomainEvent.find_all().to_list()
    assert event.kind is EventKind.BOOKING_REQUESTED and event.booking_id == object_id(
        booking["id"]
    )
    assert set(event.audience) == {object_id(ann.user_id), object_id(tom.user_id)}
    [notification] = await Notification.find_all().to_list()
    assert notification.user_id == object_id(tom.user_id)
    assert notification.title == "Test User asks to book “Deep clean” at Mon 01 Jun 2026 10:00 UTC"

    # Later changes to the package do not rewrite what was agreed.
    await client.mutate(
        "updateServicePackage",
        {"packageId": package["id"], "price": aud(20000), "durationMinutes": 60},
        token=tom.access,
    )
    stored = await Booking.get(object_id(booking["id"]))
    assert stored is not None and stored.price.total.amount == 9899
    assert stored.end_at - stored.start_at == timedelta(hours=2)


async def test_bad_booking_input_is_refused_and_nothing_stored(client: GraphQLClient) -> None:
    tom, ann, package = await _parties(client)
    start = utc(JUNE_1, 10)
    cases: list[tuple[dict[str, Any], list[tuple[str, str]]]] = [
        (
            booking_input(package["id"], start, instructions="x" * 2001),
            [("instructions", "INVALID_INPUT")],
        ),
        (
            booking_input(package["id"], start, savedAddressId="abc"),
            [("serviceLocation", "INVALID_INPUT")],
        ),
        (
            booking_input(package["id"], start, serviceLocation=None),
            [("serviceLocation", "INVALID_INPUT")],
        ),
        (
            booking_input(package["id"], start, serviceLocation=None, savedAddressId="abc"),
            [("savedAddressId", "NOT_FOUND")],
        ),
        (
            booking_input(package["id"], start, serviceLocation=place(latitude=95)),
            [("serviceLocation", "INVALID_INPUT")],
        ),
        (booking_input(package["id"], "2026-06-01T10:00:00"), [("start", "INVALID_INPUT")]),
        (booking_input(package["id"], "2025-06-01T10:00:00+00:00"), [("start", "INVALID_INPUT")]),
        (booking_input(package["id"], "2027-06-01T10:00:00+00:00"), [("start", "INVALID_INPUT")]),
        (booking_input(package["id"], utc(JUNE_1, 10, 5)), [("start", "UNAVAILABLE")]),
        (booking_input(ann.user_id, start), [("packageId", "INVALID_ID")]),
        (
            booking_input("U2VydmljZVBhY2thZ2U6MDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAw", start),
            [("packageId", "NOT_FOUND")],
        ),
    ]
    for given, expected in cases:
        payload = await client.mutate("bookSlot", given, token=ann.access)
        assert [(e["field"], e["code"]) for e in payload["errors"]] == expected, (given, payload)

    only_works = await tasker(client, "sue@example.com")
    both = await client.member("bo@example.com", roles=("POSTER", "TASKER"))
    await client.mutate(
        "updateProviderProfile", {"timeZone": "UTC"}, token=both.access
    )  # a provider too
    own = await create_package(client, both)
    assert error_codes(await book(client, only_works, package["id"], start)) == ["FORBIDDEN"]
    assert error_codes(await book(client, both, own["id"], start)) == ["FORBIDDEN"]

    assert await Booking.count() == 0
    assert await DomainEvent.count() == 0
    profile = await ProviderProfile.get(object_id(tom.user_id))
    assert profile is not None and profile.schedule_version == 0


async def test_booking_at_a_saved_address(client: GraphQLClient) -> None:
    _, ann, package = await _parties(client)
    saved = await client.mutate(
        "saveAddress",
        {
            "label": "Mum's",
            "location": {
                "latitude": -33.89,
                "longitude": 151.27,
                "address": {"line1": "9 Beach Rd", "city": "Bondi", "country": "AU"},
            },
        },
        "profile { savedAddresses { id } }",
        token=ann.access,
    )
    address_id = saved["profile"]["savedAddresses"][0]["id"]
    booking = await booked(
        client, ann, package["id"], utc(JUNE_1, 10), serviceLocation=None, savedAddressId=address_id
    )
    assert booking["serviceLocation"] == {"address": {"line1": "9 Beach Rd"}}
    # Someone else's saved address id is not found for me.
    bob = await poster(client, "bob@example.com")
    foreign = await book(
        client, bob, package["id"], utc(JUNE_1, 14), serviceLocation=None, savedAddressId=address_id
    )
    assert [(e["field"], e["code"]) for e in foreign["errors"]] == [("savedAddressId", "NOT_FOUND")]


async def test_the_lifecycle_and_its_guards(client: GraphQLClient) -> None:
    tom, ann, package = await _parties(client)
    sue = await provider(client, "sue@example.com")
    booking = await booked(client, ann, package["id"], utc(JUNE_1, 10))
    booking_id = booking["id"]

    async def status(name: str, who: Tokens, **extra: Any) -> str | list[str]:
        payload = await act(client, name, who, booking_id, **extra)
        return error_codes(payload) if payload["errors"] else str(payload["booking"]["status"])

    assert await status("confirmBooking", ann) == ["FORBIDDEN"]  # the provider decides
    assert await status("confirmBooking", sue) == ["NOT_FOUND"]  # not hers to see
    assert await status("startBooking", tom) == ["INVALID_STATE"]  # not confirmed yet
    assert await status("confirmBooking", tom) == "CONFIRMED"
    assert await status("confirmBooking", tom) == ["INVALID_STATE"]
    assert await status("rejectBooking", tom, reason="Too far") == ["INVALID_STATE"]
    assert await status("startBooking", ann) == ["FORBIDDEN"]
    assert await status("completeBooking", tom) == ["INVALID_STATE"]
    assert await status("startBooking", tom) == ["PAYMENT_REQUIRED"]  # the work waits for it
    await pay_booking(client, ann, booking_id)
    assert await status("startBooking", tom) == "IN_PROGRESS"
    assert await status("completeBooking", ann) == ["FORBIDDEN"]
    assert await status("completeBooking", tom) == "COMPLETED"
    assert await status("cancelBooking", ann, reason="Changed my mind") == ["INVALID_STATE"]
    wrong_type = await act(client, "startBooking", tom, package["id"])
    assert [(e["code"], e["field"]) for e in wrong_type["errors"]] == [("INVALID_ID", "bookingId")]
    assert error_codes(await act(client, "startBooking", tom, UNKNOWN_BOOKING)) == ["NOT_FOUND"]

    final = await act(client, "confirmBooking", tom, booking_id)
    stored = await Booking.get(object_id(booking_id))
    assert stored is not None and stored.status is BookingStatus.COMPLETED and final["errors"]
    assert [(h.status, str(h.by)) for h in stored.history] == [
        (BookingStatus.PENDING, str(object_id(ann.user_id))),
        (BookingStatus.CONFIRMED, str(object_id(tom.user_id))),
        (BookingStatus.IN_PROGRESS, str(object_id(tom.user_id))),
        (BookingStatus.COMPLETED, str(object_id(tom.user_id))),
    ]
    profile = await ProviderProfile.get(object_id(tom.user_id))
    assert profile is not None and profile.completed_jobs == 1
    events = await DomainEvent.find(DomainEvent.booking_id == stored.id).sort("_id").to_list()
    assert [(e.kind, e.data.get("status")) for e in events] == [
        (EventKind.BOOKING_REQUESTED, None),
        (EventKind.BOOKING_CONFIRMED, "confirmed"),
        (EventKind.PAYMENT_SUCCEEDED, "held"),
        (EventKind.BOOKING_STATUS_CHANGED, "in_progress"),
        (EventKind.BOOKING_STATUS_CHANGED, "completed"),
    ]
    told_ann = await Notification.find(Notification.user_id == object_id(ann.user_id)).count()
    assert told_ann == 4


async def test_the_provider_declines_with_a_reason_and_a_full_refund(
    client: GraphQLClient,
) -> None:
    tom, ann, package = await _parties(client)
    booking = await booked(client, ann, package["id"], utc(JUNE_1, 10))
    for reason in [" ", "x" * 501]:
        refused = await act(client, "rejectBooking", tom, booking["id"], reason=reason)
        assert [(e["field"], e["code"]) for e in refused["errors"]] == [("reason", "INVALID_INPUT")]
    assert error_codes(await act(client, "rejectBooking", ann, booking["id"], reason="Not me")) == [
        "FORBIDDEN"
    ]

    rejected = await act(client, "rejectBooking", tom, booking["id"], reason="Fully booked")
    assert rejected["booking"]["status"] == "CANCELLED"
    assert rejected["booking"]["cancellation"] == {
        "by": {"id": tom.user_id},
        "role": "PROVIDER",
        "reason": "Fully booked",
        "rejected": True,
        "refundBp": 10000,
        "refundable": {"amount": 9899, "currency": "AUD"},
    }
    kinds = [e.kind for e in await DomainEvent.find_all().sort("_id").to_list()]
    assert kinds == [EventKind.BOOKING_REQUESTED, EventKind.BOOKING_REJECTED]


async def test_cancellation_refunds_follow_the_policy_agreed(
    client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    tom, ann, package = await _parties(client)
    at_ten = [utc(JUNE_1 + timedelta(days=d), 10) for d in range(4)]
    bookings = [await booked(client, ann, package["id"], start) for start in at_ten[:2]]
    await act(client, "confirmBooking", tom, bookings[1]["id"])
    # Three requests waiting at once, as many as a customer may have.
    bookings += [await booked(client, ann, package["id"], start) for start in at_ten[2:]]

    async def cancel(index: int, who: Tokens, hours_before: timedelta) -> dict[str, Any]:
        start = datetime.combine(JUNE_1 + timedelta(days=index), time(10), UTC)
        freeze_clock(monkeypatch, start - hours_before)
        payload = await act(client, "cancelBooking", who, bookings[index]["id"], reason="Sorry")
        assert payload["errors"] == [], payload
        cancellation: dict[str, Any] = payload["booking"]["cancellation"]
        return cancellation

    full = await cancel(0, ann, timedelta(hours=24))
    assert full == {
        "by": {"id": ann.user_id},
        "role": "CUSTOMER",
        "reason": "Sorry",
        "rejected": False,
        "refundBp": 10000,
        "refundable": {"amount": 9899, "currency": "AUD"},
    }
    half = await cancel(1, ann, timedelta(hours=6))
    assert (half["refundBp"], half["refundable"]["amount"]) == (5000, 4950)  # 49.495 rounded up
    late = await cancel(2, ann, timedelta(hours=5, minutes=59))
    assert (late["refundBp"], late["refundable"]["amount"]) == (0, 0)
    by_provider = await cancel(3, tom, timedelta(hours=1))
    assert (by_provider["role"], by_provider["refundBp"], by_provider["refundable"]["amount"]) == (
        "PROVIDER",
        10000,
        9899,
    )
    stored = await Booking.find(Booking.status == BookingStatus.CANCELLED).count()
    assert stored == 4
    cancelled = await DomainEvent.find(DomainEvent.kind == EventKind.BOOKING_CANCELLED).count()
    assert cancelled == 4


async def test_a_booking_is_seen_only_by_its_parties_and_admins(
    runtime: Runtime, client: GraphQLClient
) -> None:
    tom, ann, package = await _parties(client)
    sue = await poster(client, "sue@example.com")
    root = await logged_in_admin(client, runtime)
    booking = await booked(client, ann, package["id"], utc(JUNE_1, 10))
    full = {
        "id": booking["id"],
        "status": "PENDING",
        "serviceLocation": {"address": {"line1": "1 George St"}},
        "instructions": "The key is under the mat.",
    }
    for who in (ann, tom, root):
        assert (await client.data(NODE, {"id": booking["id"]}, token=who.access))["node"] == full
    assert (await client.data(NODE, {"id": booking["id"]}, token=sue.access))["node"] is None
    assert (await client.data(NODE, {"id": booking["id"]}))["node"] is None
    refused = await act(client, "cancelBooking", sue, booking["id"], reason="Let me in")
    assert error_codes(refused) == ["NOT_FOUND"]
    assert error_codes(await act(client, "confirmBooking", root, booking["id"])) == ["FORBIDDEN"]


async def test_contacts_are_shared_once_a_booking_is_confirmed(client: GraphQLClient) -> None:
    tom, ann, package = await _parties(client)
    query = "query($id: ID!) { node(id: $id) { ... on User { email phone } } }"

    async def seen_by_tom() -> dict[str, Any]:
        data = await client.data(query, {"id": ann.user_id}, token=tom.access)
        node: dict[str, Any] = data["node"]
        return node

    declined = await booked(client, ann, package["id"], utc(JUNE_1, 10))
    await act(client, "rejectBooking", tom, declined["id"], reason="Away that day")
    booking = await booked(client, ann, package["id"], utc(JUNE_1, 14))
    assert await seen_by_tom() == {"email": None, "phone": None}
    await act(client, "confirmBooking", tom, booking["id"])
    assert await seen_by_tom() == {"email": "ann@example.com", "phone": "+61412345678"}
    seen_by_ann = await client.data(query, {"id": tom.user_id}, token=ann.access)
    assert seen_by_ann["node"]["email"] == "tom@example.com"
    await act(client, "startBooking", tom, booking["id"])
    await act(client, "completeBooking", tom, booking["id"])
    assert (await seen_by_tom())["email"] == "ann@example.com"


async def test_my_bookings_by_role_and_status_latest_start_first(client: GraphQLClient) -> None:
    tom, ann, package = await _parties(client)
    sue = await provider(client, "sue@example.com")
    starts = [utc(JUNE_1 + timedelta(days=d), 10) for d in range(3)]
    made = [await booked(client, ann, package["id"], start) for start in starts]
    await act(client, "confirmBooking", tom, made[0]["id"])
    query = """query($role: BookingRole!, $statuses: [BookingStatus!], $first: Int, $after: String) {
      myBookings(role: $role, statuses: $statuses, first: $first, after: $after) {
        edges { node { id start } } pageInfo { hasNextPage endCursor } } }"""

    async def listed(who: Tokens, **variables: Any) -> dict[str, Any]:
        data = await client.data(query, {"role": "CUSTOMER", **variables}, token=who.access)
        page: dict[str, Any] = data["myBookings"]
        return page

    first = await listed(ann, first=2)
    assert [e["node"]["start"] for e in first["edges"]] == [starts[2], starts[1]]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = await listed(ann, first=2, after=first["pageInfo"]["endCursor"])
    assert [e["node"]["id"] for e in rest["edges"]] == [made[0]["id"]]
    assert rest["pageInfo"]["hasNextPage"] is False
    pending = await listed(ann, statuses=["PENDING"])
    assert [e["node"]["id"] for e in pending["edges"]] == [made[2]["id"], made[1]["id"]]
    as_provider = await listed(tom, role="PROVIDER", statuses=["CONFIRMED"])
    assert [e["node"]["id"] for e in as_provider["edges"]] == [made[0]["id"]]
    assert (await listed(tom))["edges"] == []  # tom booked nothing himself
    assert (await listed(sue, role="PROVIDER"))["edges"] == []


async def test_a_page_of_bookings_costs_the_same_round_trips_for_5_or_30(
    client: GraphQLClient, command_log: CommandLog
) -> None:
    tom, ann, package = await _parties(client)
    customers = [ann, *[await poster(client, f"c{i}@example.com") for i in range(4)]]
    await booked(client, ann, package["id"], utc(JUNE_1, 10))
    template = await Booking.find_one()
    assert template is not None
    copies = [
        template.model_copy(
            update={
                "id": None,
                "customer_id": object_id(customers[i % 5].user_id),
                "start_at": template.start_at + timedelta(days=i + 1),
                "cancellation": Cancellation(
                    by=object_id(tom.user_id),
                    role=CancelledBy.PROVIDER,
                    reason="Away",
                    refund_bp=10_000,
                    refundable=template.price.total,
                )
                if i % 3 == 0
                else None,
            }
        )
        for i in range(29)
    ]
    await Booking.insert_many(copies)
    page_query = """query($first: Int) { myBookings(role: PROVIDER, first: $first) {
      edges { node { id start customer { id name } provider { id } package { id name }
        history { by { id } } cancellation { by { id } refundable { amount } } } } } }"""

    costs = {}
    for first in (5, 30):
        request_id = f"bookings-cost-{first:04d}"
        with command_log.recording(request_id) as commands:
            data = await client.data(
                page_query, {"first": first}, token=tom.access, headers={"X-Request-ID": request_id}
            )
        edges = data["myBookings"]["edges"]
        assert len(edges) == first
        assert {e["node"]["customer"]["id"] for e in edges} == {c.user_id for c in customers}
        assert all(e["node"]["package"]["name"] == "Deep clean" for e in edges)
        costs[first] = sorted(commands)
    assert costs[5] == costs[30]
    # The caller (user, session), the page, its people, its packages.
    assert costs[30] == sorted(
        [
            ("find", "users"),
            ("find", "sessions"),
            ("find", "bookings"),
            ("find", "users"),
            ("find", "service_packages"),
        ]
    )
