"""The delivery outbox: deliveries written with the change that causes them, each sent
once whatever the number of senders, retried, dead after the last attempt, and retried
by an admin."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

from documents.clock import utcnow
from documents.notifications.catalogue import Channel, NotificationKind
from documents.notifications.deliveries import Delivery, DeliveryStatus
from documents.notifications.preferences import NotificationPreferences, Phone, PushSubscription
from integrations.mail import Mail, MemoryMailer, Postman, SmtpConfig, SmtpMailer
from resolvers.common.services import Services
from resolvers.notifications.outbox import LEASE, MAX_ATTEMPTS, backoff, claim, finish
from resolvers.notifications.sending import send_due
from server.embedded import free_port
from server.runtime import Runtime
from tests.support.graphql_client import STRONG_PASSWORD, GraphQLClient, Tokens, graphql_error_codes
from tests.support.marketplace import logged_in_admin, make_offer, object_id, post_task, poster
from tests.support.marketplace import tasker as a_tasker

DELIVERIES = """
query($f: NotificationDeliveryFilter) {
  notificationDeliveries(first: 20, filter: $f) {
    edges { node { id kind channel status attempts lastError endedReason user { name } } }
  }
}
"""


def notification_mails(mailer: MemoryMailer) -> list[Mail]:
    """The notifications in the outbox (account mails, like the address check, aside)."""
    return [mail for mail in mailer.outbox if mail.header("Message-ID") is not None]


async def offered(client: GraphQLClient, title: str = "Hang <b>two</b> shelves") -> Tokens:
    """A poster whose task has just received an offer; returns the poster."""
    who = await poster(client, "poster@example.com")
    worker = await a_tasker(client, "tasker@example.com")
    task = await post_task(client, who, title=title)
    await make_offer(client, worker, task["id"])
    return who


async def test_an_offer_leaves_the_poster_an_email_in_the_outbox_then_in_their_inbox(
    client: GraphQLClient, runtime: Runtime, outbox: MemoryMailer
) -> None:
    who = await offered(client)
    waiting = await Delivery.find(Delivery.user_id == object_id(who.user_id)).to_list()
    # E-mail only: no phone verified and no browser subscribed for push.
    assert [(d.kind, d.channel, d.status) for d in waiting] == [
        (NotificationKind.OFFER_RECEIVED, Channel.EMAIL, DeliveryStatus.PENDING)
    ]
    assert notification_mails(outbox) == []  # nothing is sent inside the request

    assert await send_due(runtime.services) == 1
    mail = await outbox.wait_for(lambda m: m.to == "poster@example.com" and m.html is not None)
    assert "Hang <b>two</b> shelves" in mail.subject
    assert mail.html is not None
    # What people write is text in the HTML part, never markup.
    assert "Hang &lt;b&gt;two&lt;/b&gt; shelves" in mail.html and "<b>two</b>" not in mail.html
    assert f"/tasks/{waiting[0].context['task_id']}" in mail.text
    assert mail.header("Message-ID") is not None
    sent = await Delivery.get(waiting[0].id)
    assert sent is not None and sent.status is DeliveryStatus.SENT and sent.sent_at is not None
    assert await send_due(runtime.services) == 0  # nothing twice


async def test_concurrent_senders_send_each_delivery_once(
    client: GraphQLClient, runtime: Runtime, outbox: MemoryMailer
) -> None:
    who = await poster(client, "poster@example.com")
    task = await post_task(client, who)
    for n in range(6):
        await make_offer(client, await a_tasker(client, f"tasker{n}@example.com"), task["id"])
    assert await Delivery.find(Delivery.status == DeliveryStatus.PENDING).count() == 6

    handled = await asyncio.gather(*(send_due(runtime.services) for _ in range(4)))
    assert sum(handled) == 6
    ids = [m.header("Message-ID") for m in notification_mails(outbox)]
    assert len(ids) == 6 and len(set(ids)) == 6


async def test_a_sender_that_crashed_leaves_its_delivery_to_the_next_after_the_lease(
    client: GraphQLClient,
) -> None:
    await offered(client)
    now = utcnow()
    taken = await claim(now)
    assert taken is not None
    assert await claim(now) is None  # leased: nobody else sends it meanwhile
    again = await claim(now + LEASE + timedelta(seconds=1))
    assert again is not None and again.id == taken.id and again.lease_id != taken.lease_id
    # The first sender's late answer no longer counts.
    assert not await finish(taken, DeliveryStatus.SENT)


def with_unreachable_mail(services: Services) -> Services:
    """The services with an SMTP relay that refuses every connection."""
    relay = SmtpConfig(host="127.0.0.1", port=free_port(), sender="gigql <a@example.com>")
    return dataclasses.replace(services, postman=Postman(SmtpMailer(relay)))


async def deliveries(client: GraphQLClient, admin: Tokens, **filters: Any) -> list[Any]:
    data = await client.data(DELIVERIES, {"f": filters}, token=admin.access)
    return [edge["node"] for edge in data["notificationDeliveries"]["edges"]]


async def test_a_delivery_that_keeps_failing_is_dead_and_an_admin_sends_it_again(
    client: GraphQLClient, runtime: Runtime, outbox: MemoryMailer
) -> None:
    await offered(client)
    failing = with_unreachable_mail(runtime.services)
    moment = utcnow()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        assert await send_due(failing, moment) == 1, attempt
        moment += backoff(attempt)
    assert await send_due(failing, moment + timedelta(days=1)) == 0  # dead: no more tries

    admin = await logged_in_admin(client, runtime)
    dead = await deliveries(client, admin, status="DEAD")
    assert len(dead) == 1 and dead[0]["attempts"] == MAX_ATTEMPTS
    assert dead[0]["lastError"] and "ConnectionRefusedError" in dead[0]["lastError"]
    assert dead[0]["user"]["name"]

    who = await poster(client, "someone@example.com")
    refused = await client.execute(
        "mutation($i: RetryNotificationDeliveryInput!) { retryNotificationDelivery(input: $i) "
        "{ errors { code } } }",
        {"i": {"id": dead[0]["id"]}},
        token=who.access,
    )
    assert graphql_error_codes(refused) == ["FORBIDDEN"]

    retried = await client.mutate(
        "retryNotificationDelivery",
        {"id": dead[0]["id"]},
        "delivery { status attempts }",
        token=admin.access,
    )
    assert retried["errors"] == [] and retried["delivery"] == {"status": "PENDING", "attempts": 0}
    again = await client.mutate(
        "retryNotificationDelivery", {"id": dead[0]["id"]}, "delivery { id }", token=admin.access
    )
    assert [e["code"] for e in again["errors"]] == ["INVALID_STATE"]

    assert await send_due(runtime.services) == 1
    await outbox.wait_for(lambda m: m.to == "poster@example.com" and m.html is not None)
    assert [d["status"] for d in await deliveries(client, admin)] == ["SENT"]


async def test_a_deleted_account_takes_its_phone_and_browsers_and_waiting_messages_with_it(
    client: GraphQLClient, runtime: Runtime, outbox: MemoryMailer
) -> None:
    who = await offered(client)
    user_id = object_id(who.user_id)
    await NotificationPreferences(
        user_id=user_id,
        phone=Phone(number="+14155550123", verified_at=utcnow()),
        push_subscriptions=[
            PushSubscription(endpoint="https://push.example.com/s/1", p256dh="k", auth="a")
        ],
    ).insert()

    deleted = await client.mutate(
        "deleteMyAccount", {"password": STRONG_PASSWORD}, "deletedUserId", token=who.access
    )
    assert deleted["errors"] == []
    assert (
        await NotificationPreferences.find_one(NotificationPreferences.user_id == user_id) is None
    )
    waiting = await Delivery.find(Delivery.user_id == user_id).to_list()
    assert waiting and {d.status for d in waiting} == {DeliveryStatus.SKIPPED}
    await send_due(runtime.services)  # what closing the account told the tasker goes out
    assert [m.to for m in notification_mails(outbox)] == ["tasker@example.com"] * len(
        notification_mails(outbox)
    )
