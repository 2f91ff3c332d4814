"""Helpers for the tests of scheduled messages: a confirmed booking days ahead, the
messages and deliveries stored, and due messages made directly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from bson import ObjectId

from documents.clock import utcnow
from documents.notifications.catalogue import NotificationKind
from documents.notifications.deliveries import Delivery
from documents.notifications.scheduled import ScheduledMessage, ScheduledStatus
from tests.support.bookings import act, booked, create_package, provider
from tests.support.graphql_client import GraphQLClient, Tokens
from tests.support.marketplace import object_id


@dataclass(frozen=True)
class Booked:
    customer: Tokens
    provider: Tokens
    booking_id: str
    start: datetime

    @property
    def id(self) -> ObjectId:
        return object_id(self.booking_id)

    @property
    def customer_id(self) -> ObjectId:
        return object_id(self.customer.user_id)

    @property
    def provider_id(self) -> ObjectId:
        return object_id(self.provider.user_id)


async def booking_in_days(client: GraphQLClient, days: int = 3, *, confirm: bool = True) -> Booked:
    """Ann's booking of Tom's package at 10:00 UTC `days` from today, confirmed by Tom."""
    tom = await provider(client, "tom@example.com")
    ann = await client.member("ann@example.com", roles=("POSTER",))
    package = await create_package(client, tom)
    start = datetime.combine(utcnow().date() + timedelta(days=days), time(10), UTC)
    booking = await booked(client, ann, package["id"], start.isoformat())
    if confirm:
        confirmed = await act(client, "confirmBooking", tom, booking["id"])
        assert confirmed["errors"] == [], confirmed
    return Booked(ann, tom, booking["id"], start)


async def scheduled_messages(**query: object) -> list[ScheduledMessage]:
    return await ScheduledMessage.find(query).sort("due_at", "key").to_list()


async def by_kind_and_person(
    **query: object,
) -> dict[tuple[NotificationKind, ObjectId], ScheduledMessage]:
    return {(m.kind, m.user_id): m for m in await scheduled_messages(**query)}


async def statuses(**query: object) -> set[ScheduledStatus]:
    return {m.status for m in await scheduled_messages(**query)}


async def deliveries(**query: object) -> list[tuple[NotificationKind, ObjectId, str]]:
    """(kind, person, channel) of each delivery of a scheduled message in the outbox (not
    those of events), sorted."""
    found = await Delivery.find({"key": {"$regex": "^scheduled:"}, **query}).to_list()
    return sorted((d.kind, d.user_id, d.channel.value) for d in found)


def due_message(number: int, due_at: datetime, user_id: ObjectId | None = None) -> ScheduledMessage:
    """A message of a kind with nothing to check when it comes due (the claiming alone)."""
    return ScheduledMessage(
        key=f"test:{number}",
        kind=NotificationKind.TASK_COMPLETED,
        user_id=user_id or ObjectId(),
        due_at=due_at,
        title=f"Test message {number}",
    )
