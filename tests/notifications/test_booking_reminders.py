"""A confirmed booking's reminders: scheduled with the confirmation 24 hours, 1 hour and
30 minutes before its start; cancelled with the booking; dropped, not sent late, when
they come due after the start or once the booking is no longer confirmed."""

from __future__ import annotations

from datetime import timedelta

from documents.marketplace.bookings import Booking, BookingStatus
from documents.notifications.catalogue import NotificationKind as K
from documents.notifications.scheduled import ScheduledMessage, ScheduledStatus
from resolvers.marketplace.lapses import lapse_unpaid_deals
from resolvers.notifications.follow_ups import schedule_reminders
from resolvers.notifications.scheduled import turn_due
from server.runtime import Runtime
from tests.support.bookings import act
from tests.support.graphql_client import GraphQLClient
from tests.support.scheduled import (
    booking_in_days,
    by_kind_and_person,
    deliveries,
    scheduled_messages,
    statuses,
)

DAY, HOUR, SOON = K.BOOKING_REMINDER_DAY, K.BOOKING_REMINDER_HOUR, K.BOOKING_REMINDER_SOON


async def test_confirming_a_booking_schedules_its_three_reminders(client: GraphQLClient) -> None:
    booked = await booking_in_days(client, confirm=False)
    assert await scheduled_messages() == []  # a request is not reminded of
    assert (await act(client, "confirmBooking", booked.provider, booked.booking_id))["errors"] == []

    reminders = await by_kind_and_person(booking_id=booked.id)
    start, ann, tom = booked.start, booked.customer_id, booked.provider_id
    assert {key: m.due_at for key, m in reminders.items()} == {
        (DAY, ann): start - timedelta(hours=24),
        (DAY, tom): start - timedelta(hours=24),
        (HOUR, tom): start - timedelta(hours=1),
        (SOON, ann): start - timedelta(minutes=30),
    }
    for message in reminders.values():
        assert message.status is ScheduledStatus.PENDING
        assert message.drop_after == start
        assert "Deep clean" in message.title and "10:00 UTC" in message.title
        assert message.context["booking_id"] == str(booked.id)


async def test_a_reminder_whose_time_has_passed_is_not_scheduled(client: GraphQLClient) -> None:
    booked = await booking_in_days(client)
    await ScheduledMessage.get_pymongo_collection().delete_many({})
    booking = await Booking.get(booked.id)
    assert booking is not None
    # Confirmed 45 minutes before the start: only the 30-minute reminder is still ahead.
    assert await schedule_reminders(None, booking, booked.start - timedelta(minutes=45)) == 1
    assert list(await by_kind_and_person()) == [(SOON, booked.customer_id)]


async def test_cancelling_the_booking_cancels_its_reminders(
    client: GraphQLClient, runtime: Runtime
) -> None:
    booked = await booking_in_days(client)
    cancelled = await act(
        client, "cancelBooking", booked.customer, booked.booking_id, reason="Plans changed"
    )
    assert cancelled["errors"] == [], cancelled

    reminders = await scheduled_messages(booking_id=booked.id)
    assert len(reminders) == 4
    assert {(m.status, m.ended_reason) for m in reminders} == {
        (ScheduledStatus.CANCELLED, "the booking is cancelled")
    }
    assert await turn_due(runtime.services, booked.start - timedelta(minutes=1)) == 0
    assert await deliveries() == []


async def test_a_booking_lapsing_unpaid_cancels_its_reminders(
    client: GraphQLClient, runtime: Runtime
) -> None:
    booked = await booking_in_days(client)
    assert await lapse_unpaid_deals(runtime.services, booked.start - timedelta(hours=2)) == 1
    assert await statuses(booking_id=booked.id) == {ScheduledStatus.CANCELLED}


async def test_due_reminders_go_to_the_outbox_on_their_channels(
    client: GraphQLClient, runtime: Runtime
) -> None:
    booked = await booking_in_days(client)
    start, ann, tom = booked.start, booked.customer_id, booked.provider_id

    # The day before: an e-mail to each side; the others are not due yet.
    assert await turn_due(runtime.services, start - timedelta(hours=23)) == 2
    assert await deliveries() == sorted([(DAY, ann, "email"), (DAY, tom, "email")])
    reminders = await by_kind_and_person(booking_id=booked.id)
    assert reminders[DAY, ann].status is ScheduledStatus.DONE
    assert reminders[HOUR, tom].status is ScheduledStatus.PENDING

    # The last two go out by SMS or push only: done, with no delivery for someone who
    # gave neither a verified phone nor a browser.
    assert await turn_due(runtime.services, start - timedelta(minutes=29)) == 2
    assert await statuses(booking_id=booked.id) == {ScheduledStatus.DONE}
    assert len(await deliveries()) == 2


async def test_a_reminder_that_comes_due_after_the_start_is_dropped(
    client: GraphQLClient, runtime: Runtime
) -> None:
    booked = await booking_in_days(client)
    # Every instance was down until after the start: nothing is sent late.
    assert await turn_due(runtime.services, booked.start + timedelta(minutes=1)) == 4
    reminders = await scheduled_messages(booking_id=booked.id)
    assert {(m.status, m.ended_reason) for m in reminders} == {
        (ScheduledStatus.DROPPED, "it came due after the moment it was about")
    }
    assert await deliveries() == []


async def test_a_reminder_of_a_booking_no_longer_confirmed_is_dropped(
    client: GraphQLClient, runtime: Runtime
) -> None:
    booked = await booking_in_days(client)
    # A change that did not cancel the reminders itself (say, written before they existed).
    await Booking.get_pymongo_collection().update_one(
        {"_id": booked.id}, {"$set": {"status": BookingStatus.IN_PROGRESS.value}}
    )
    assert await turn_due(runtime.services, booked.start - timedelta(hours=23)) == 2
    assert await statuses(booking_id=booked.id, kind=DAY) == {ScheduledStatus.DROPPED}
    assert await deliveries() == []
