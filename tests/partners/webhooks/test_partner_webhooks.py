"""Webhooks to partners: every event reaches the partner's receiver once, signed, in
order per wallet, through failures, concurrent senders, the retry period and
redelivery; and a partner sees only its own deliveries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from documents.partners.webhooks import DeliveryStatus, PartnerWebhookDelivery
from resolvers.common.services import Services
from resolvers.partners.webhooks.sender import send_due, webhook_poster
from server.background import PeriodicJob, running
from server.runtime import Runtime
from tests.conftest import serve, with_settings
from tests.support.graphql_client import GraphQLClient
from tests.support.partners import webhooks as support
from tests.support.partners.partners import approved_partner, wallet_document
from tests.support.partners.receiver import Receiver, receiving, verify

FAST = {
    "partner_webhook_allow_private_hosts": True,
    "partner_webhook_retry_base": timedelta(seconds=0.2),
    "partner_webhook_send_interval": timedelta(seconds=0.1),
}


@pytest.fixture
def services(runtime: Runtime) -> Services:
    return with_settings(runtime, **FAST).services


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[GraphQLClient]:
    """The API, served with the same settings as the sender."""
    async with serve(runtime, **FAST) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        yield GraphQLClient(http)


DELIVERIES = """
query($filter: PartnerWebhookDeliveryFilter) {
  webhookDeliveries(filter: $filter, first: 50) {
    edges { node {
      id eventId eventType status sequence walletId endpointId nextAttemptAt deliveredAt payload
      attempts { at statusCode responseBody durationMs }
    } }
  }
}
"""


async def deliveries(api: GraphQLClient, key: str, **filter: Any) -> list[dict[str, Any]]:
    data = await api.data(DELIVERIES, {"filter": filter or None}, token=key)
    return [edge["node"] for edge in data["webhookDeliveries"]["edges"]]


async def test_each_event_is_received_once_signed_and_as_documented(services: Services) -> None:
    made = await approved_partner(scopes=support.WEBHOOK_SCOPES)
    receiver = Receiver()
    async with receiving(receiver) as url:
        receiver.secret = await support.endpoint_secret(made, url)
        wallet = await wallet_document(made, "w-1")
        events = [
            await support.money_moved(services, wallet, amount, balance)
            for amount, balance in ((500, 500), (250, 750))
        ]
        await support.send_until(services, lambda: len(receiver.accepted) == 2)
        # Nothing is sent again.
        assert await send_due(services, webhook_poster(services.settings)) == 0
    assert receiver.unverified == []
    assert [e["id"] for e in receiver.accepted] == [f"evt_{e.id}" for e in events]
    first = receiver.accepted[0]
    assert first["object"] == "event"
    assert first["type"] == "transaction.completed"
    assert first["sequence"] == 1
    assert first["created"] == int(events[0].created_at.timestamp())
    assert first["data"]["object"]["wallet"]["externalWalletId"] == "w-1"
    assert first["data"]["object"]["wallet"]["balance"] == 500
    assert first["data"]["object"]["transaction"]["amount"] == 500
    assert receiver.accepted[1]["data"]["object"]["wallet"]["balance"] == 750
    post = receiver.posts[0]
    assert post.signature.count("v1=") == 1
    assert post.headers["Content-Type"] == "application/json"
    stored = await PartnerWebhookDelivery.find_all().to_list()
    assert [d.status for d in stored] == [DeliveryStatus.DELIVERED] * 2
    assert all(len(d.attempts) == 1 and d.attempts[0].status_code == 200 for d in stored)
    # The README's snippet itself verifies what was posted, and nothing altered.
    readme_verify = _readme_snippet()
    assert readme_verify(post.body, post.signature, receiver.secret)
    assert not readme_verify(post.body + b" ", post.signature, receiver.secret)
    assert not readme_verify(post.body, post.signature, "whsec_other")


def _readme_snippet() -> Callable[[bytes, str, str], bool]:
    """`verify` as the README's "Webhooks to partners" shows it to partners."""
    text = (Path(__file__).parents[3] / "README.md").read_text()
    section = text[text.index("### Webhooks to partners") :]
    code = section[section.index("```python") + len("```python") :]
    namespace: dict[str, Any] = {}
    exec(code[: code.index("```")], namespace)  # noqa: S102 # our own README
    verify: Callable[[bytes, str, str], bool] = namespace["verify"]
    return verify


async def test_a_receiver_that_fails_for_a_while_gets_every_event_once_in_order(
    services: Services,
) -> None:
    made = await approved_partner(scopes=support.WEBHOOK_SCOPES)
    receiver = Receiver(failing=500)
    async with receiving(receiver) as url:
        receiver.secret = await support.endpoint_secret(made, url)
        wallets = [await wallet_document(made, f"w-{n}") for n in range(3)]
        job = PeriodicJob(
            "send-partner-webhooks",
            services.settings.partner_webhook_send_interval,
            lambda: send_due(services, webhook_poster(services.settings)),
        )
        async with running([job]):
            # Events of three wallets, interleaved, some while the receiver is failing...
            for round_ in range(2):
                for wallet in wallets:
                    await support.money_moved(services, wallet, 100, 100 * (round_ + 1))
            async with asyncio.timeout(10):
                while len(receiver.posts) < 6:  # the heads failed, twice each
                    await asyncio.sleep(0.05)
            # ...and more while it is still failing.
            for round_ in range(2, 4):
                for wallet in wallets:
                    await support.money_moved(services, wallet, 100, 100 * (round_ + 1))
            await asyncio.sleep(0.5)
            receiver.failing = None
            async with asyncio.timeout(20):
                while len(receiver.accepted) < 12:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # time for anything sent twice to arrive
    assert receiver.unverified == []
    failed = [p.event for p in receiver.posts if p.answered != 200]
    assert failed, "the receiver failed some posts"
    # While the receiver failed, only each wallet's first event was tried: the rest waited.
    assert {e["sequence"] for e in failed} == {1}
    ids = [e["id"] for e in receiver.accepted]
    assert len(ids) == len(set(ids)) == 12
    for wallet in wallets:
        mine = [
            e["sequence"]
            for e in receiver.accepted
            if e["data"]["object"]["wallet"]["externalWalletId"] == wallet.external_wallet_id
        ]
        assert mine == [1, 2, 3, 4]
    stored = await PartnerWebhookDelivery.find_all().to_list()
    assert {d.status for d in stored} == {DeliveryStatus.DELIVERED}


async def test_two_senders_at_once_never_send_a_delivery_twice(services: Services) -> None:
    made = await approved_partner(scopes=support.WEBHOOK_SCOPES)
    receiver = Receiver(delay=0.02)
    async with receiving(receiver) as url:
        receiver.secret = await support.endpoint_secret(made, url)
        wallets = [await wallet_document(made, f"w-{n}") for n in range(4)]
        for round_ in range(5):
            for wallet in wallets:
                await support.money_moved(services, wallet, 100, 100 * (round_ + 1))
        poster = webhook_poster(services.settings)
        async with asyncio.timeout(20):
            while len(receiver.posts) < 20:
                await asyncio.gather(send_due(services, poster), send_due(services, poster))
        await asyncio.gather(send_due(services, poster), send_due(services, poster))
    ids = [p.event["id"] for p in receiver.posts]
    assert len(ids) == len(set(ids)) == 20
    for wallet in wallets:
        mine = [
            p.event["sequence"]
            for p in receiver.posts
            if p.event["data"]["object"]["wallet"]["externalWalletId"] == wallet.external_wallet_id
        ]
        assert mine == [1, 2, 3, 4, 5]


async def test_a_delivery_past_its_retry_period_is_dead_and_can_be_redelivered(
    runtime: Runtime,
) -> None:
    changes = {**FAST, "partner_webhook_retry_period": timedelta(seconds=1)}
    services = with_settings(runtime, **changes).services
    made = await approved_partner(scopes=support.WEBHOOK_SCOPES)
    receiver = Receiver(failing=503)
    async with (
        receiving(receiver) as url,
        serve(runtime, **changes) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as http,
    ):
        api = GraphQLClient(http)
        receiver.secret = await support.endpoint_secret(made, url)
        wallet = await wallet_document(made, "w-1")
        await support.money_moved(services, wallet, 100, 100)

        async def dead() -> bool:
            return await PartnerWebhookDelivery.find_one({"status": "dead"}) is not None

        async with asyncio.timeout(10):
            while not await dead():
                await send_due(services, webhook_poster(services.settings))
                await asyncio.sleep(0.1)
        [listed] = await deliveries(api, made.key, status="DEAD")
        assert listed["nextAttemptAt"] is None
        assert len(listed["attempts"]) >= 2
        assert {a["statusCode"] for a in listed["attempts"]} == {503}
        assert listed["attempts"][0]["responseBody"] == "receiver is down for maintenance"
        assert listed["payload"].encode() == receiver.posts[0].body
        assert listed["eventId"] == receiver.posts[0].event["id"]

        # A dead one does not hold back the wallet's next event.
        receiver.failing = None
        await support.money_moved(services, wallet, 100, 200)
        await support.send_until(services, lambda: len(receiver.accepted) == 1)
        assert receiver.accepted[0]["sequence"] == 2

        payload = await api.mutate(
            "redeliverWebhook",
            {"deliveryId": listed["id"]},
            "delivery { status nextAttemptAt }",
            token=made.key,
        )
        assert payload["errors"] == [], payload
        assert payload["delivery"]["status"] == "PENDING"
        again = await api.mutate(
            "redeliverWebhook", {"deliveryId": listed["id"]}, "delivery { id }", token=made.key
        )
        assert [e["code"] for e in again["errors"]] == ["INVALID_STATE"]
        await support.send_until(services, lambda: len(receiver.accepted) == 2)
        assert receiver.accepted[1]["id"] == listed["eventId"]
        assert verify(receiver.posts[-1].body, receiver.posts[-1].signature, receiver.secret)
        delivered = await deliveries(
            api,
            made.key,
            status="DELIVERED",
            eventType="TRANSACTION_COMPLETED",
            walletId=listed["walletId"],
            endpointId=listed["endpointId"],
        )
        # Newest first: the second event's delivery, then the redelivered one.
        assert [d["sequence"] for d in delivered] == [2, 1]
        assert [a["statusCode"] for a in delivered[1]["attempts"]][-1] == 200


async def test_a_partner_sees_nothing_of_anothers_endpoints_or_deliveries(
    services: Services, api: GraphQLClient
) -> None:
    mine, theirs = (
        await approved_partner("Mine", scopes=support.WEBHOOK_SCOPES),
        await approved_partner("Theirs", scopes=support.WEBHOOK_SCOPES),
    )
    for made in (mine, theirs):
        await support.endpoint_secret(made, "https://hooks.rosabank.com/x")
        await support.money_moved(services, await wallet_document(made, "w-1"), 100, 100)
    [their_delivery] = await deliveries(api, theirs.key)
    their_endpoint = their_delivery["endpointId"]
    [my_delivery] = await deliveries(api, mine.key)
    assert my_delivery["id"] != their_delivery["id"]
    listed = await api.data("{ webhookEndpoints { id } }", token=mine.key)
    assert [e["id"] for e in listed["webhookEndpoints"]] == [my_delivery["endpointId"]]
    assert await deliveries(api, mine.key, endpointId=their_endpoint) == []
    assert await deliveries(api, mine.key, walletId=their_delivery["walletId"]) == []
    attempts = [
        ("updateWebhookEndpoint", {"endpointId": their_endpoint, "enabled": False}),
        ("deleteWebhookEndpoint", {"endpointId": their_endpoint}),
        ("rotateWebhookSecret", {"endpointId": their_endpoint}),
        ("revealWebhookSecret", {"endpointId": their_endpoint}),
        ("redeliverWebhook", {"deliveryId": their_delivery["id"]}),
    ]
    for name, input in attempts:
        payload = await api.mutate(name, input, token=mine.key)
        assert [e["code"] for e in payload["errors"]] == ["NOT_FOUND"], name
    # Theirs is as it was.
    [still] = await deliveries(api, theirs.key)
    assert still["status"] == "PENDING"
    endpoints = await api.data("{ webhookEndpoints { id enabled } }", token=theirs.key)
    assert endpoints["webhookEndpoints"] == [{"id": their_endpoint, "enabled": True}]
