"""Quiet hours as deliveries go out: SMS and push wait for their end, e-mail only when
the person asked it to."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time, timedelta

from bson import ObjectId

from documents.notifications.catalogue import Channel, NotificationKind
from documents.notifications.deliveries import Delivery, DeliveryStatus
from documents.notifications.preferences import (
    NotificationPreferences,
    Phone,
    PushSubscription,
    QuietHours,
)
from integrations.mail import MemoryMailer
from integrations.push import LogPush
from resolvers.common.services import Services
from resolvers.notifications.sending import send_due
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import object_id

NIGHT_IN_PARIS = datetime(2026, 6, 1, 21, 30, tzinfo=UTC)
"""23:30 in Paris (summer time, UTC+2)."""
MORNING_IN_PARIS = datetime(2026, 6, 2, 5, 0, tzinfo=UTC)
"""07:00 in Paris: the quiet hours' end."""


def logged(runtime: Runtime) -> Services:
    """The services with web push written to the log: these tests are about when messages
    go, not about the push service (tests/notifications/channels/test_web_push.py)."""
    return dataclasses.replace(runtime.services, push=LogPush())


async def reachable_everywhere(user_id: ObjectId, *, email_waits: bool) -> None:
    """Preferences as the person's settings would leave them: a verified phone, a
    browser subscribed, quiet hours from 22:00 to 07:00 in Paris."""
    await NotificationPreferences(
        user_id=user_id,
        quiet_hours=QuietHours(
            start=time(22, 0), end=time(7, 0), time_zone="Europe/Paris", email_waits=email_waits
        ),
        phone=Phone(number="+33612345678", verified_at=NIGHT_IN_PARIS - timedelta(days=30)),
        push_subscriptions=[
            PushSubscription(endpoint="https://push.example.com/ann", p256dh="key", auth="auth")
        ],
    ).insert()


async def due(user_id: ObjectId, *channels: Channel) -> list[Delivery]:
    """A booking request's deliveries on `channels`, due now (in the night)."""
    deliveries = [
        Delivery(
            key=f"test:{user_id}:{channel.value}",
            user_id=user_id,
            kind=NotificationKind.BOOKING_REQUESTED,
            channel=channel,
            title="New booking request",
            due_at=NIGHT_IN_PARIS,
        )
        for channel in channels
    ]
    await Delivery.insert_many(deliveries)
    return deliveries


async def stored(delivery: Delivery) -> Delivery:
    found = await Delivery.find_one(Delivery.key == delivery.key)
    assert found is not None
    return found


async def test_sms_and_push_wait_for_the_end_of_quiet_hours_and_email_does_not(
    client: GraphQLClient, runtime: Runtime, outbox: MemoryMailer
) -> None:
    ann = await client.member("ann@example.com")
    user_id = object_id(ann.user_id)
    await reachable_everywhere(user_id, email_waits=False)
    sms, push, email = await due(user_id, Channel.SMS, Channel.PUSH, Channel.EMAIL)

    assert await send_due(logged(runtime), now=NIGHT_IN_PARIS) == 3
    for waiting in (sms, push):
        later = await stored(waiting)
        assert later.status is DeliveryStatus.PENDING and later.due_at == MORNING_IN_PARIS
        assert later.attempts == 0  # waiting is no failure
    sent = await stored(email)
    assert sent.status is DeliveryStatus.SENT
    assert [m.subject for m in outbox.outbox if m.header("Message-ID")] == ["New booking request"]

    # Nothing goes out before the end; at the end, both do.
    assert await send_due(logged(runtime), now=MORNING_IN_PARIS - timedelta(minutes=1)) == 0
    assert await send_due(logged(runtime), now=MORNING_IN_PARIS) == 2
    assert {(await stored(d)).status for d in (sms, push)} == {DeliveryStatus.SENT}


async def test_email_waits_too_when_asked(
    client: GraphQLClient, runtime: Runtime, outbox: MemoryMailer
) -> None:
    ann = await client.member("ann@example.com")
    user_id = object_id(ann.user_id)
    await reachable_everywhere(user_id, email_waits=True)
    [email] = await due(user_id, Channel.EMAIL)

    await send_due(logged(runtime), now=NIGHT_IN_PARIS)
    later = await stored(email)
    assert later.status is DeliveryStatus.PENDING and later.due_at == MORNING_IN_PARIS
    assert [m for m in outbox.outbox if m.header("Message-ID")] == []

    await send_due(logged(runtime), now=MORNING_IN_PARIS)
    assert (await stored(email)).status is DeliveryStatus.SENT
    assert [m.subject for m in outbox.outbox if m.header("Message-ID")] == ["New booking request"]


async def test_outside_quiet_hours_nothing_waits(client: GraphQLClient, runtime: Runtime) -> None:
    ann = await client.member("ann@example.com")
    user_id = object_id(ann.user_id)
    await reachable_everywhere(user_id, email_waits=True)
    deliveries = await due(user_id, Channel.SMS, Channel.PUSH, Channel.EMAIL)
    noon_in_paris = datetime(2026, 6, 2, 10, 0, tzinfo=UTC)
    assert await send_due(logged(runtime), now=noon_in_paris) == 3
    assert {(await stored(d)).status for d in deliveries} == {DeliveryStatus.SENT}


async def test_a_reminder_that_quiet_hours_would_hold_past_its_moment_is_skipped(
    client: GraphQLClient, runtime: Runtime
) -> None:
    ann = object_id((await client.member("ann@example.com")).user_id)
    await reachable_everywhere(ann, email_waits=False)
    # A booking at 06:30 in Paris: its half-hour reminder falls in the quiet hours, which
    # end after the booking has started.
    reminder = Delivery(
        key=f"test:{ann}:soon",
        user_id=ann,
        kind=NotificationKind.BOOKING_REMINDER_SOON,
        channel=Channel.SMS,
        title="Your booking starts in 30 minutes",
        due_at=MORNING_IN_PARIS - timedelta(hours=1),
        drop_after=MORNING_IN_PARIS - timedelta(minutes=30),
    )
    await reminder.insert()
    assert await send_due(logged(runtime), now=MORNING_IN_PARIS - timedelta(hours=1)) == 1
    skipped = await stored(reminder)
    assert skipped.status is DeliveryStatus.SKIPPED
    assert skipped.ended_reason == "quiet hours last past its moment"

    late = Delivery(
        key=f"test:{ann}:late",
        user_id=ann,
        kind=NotificationKind.BOOKING_REMINDER_DAY,
        channel=Channel.EMAIL,
        title="Your booking is tomorrow",
        due_at=MORNING_IN_PARIS,
        drop_after=MORNING_IN_PARIS + timedelta(hours=1),
    )
    await late.insert()
    assert await send_due(logged(runtime), now=MORNING_IN_PARIS + timedelta(hours=2)) == 1
    assert (await stored(late)).status is DeliveryStatus.SKIPPED
