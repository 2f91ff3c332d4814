"""Webhooks to partners when an endpoint never answers: it holds back no other partner's
deliveries, takes only its share of the sender, and is paused by the circuit breaker,
its deliveries waiting in order until it is tried again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from documents.clock import utcnow
from documents.partners.webhooks import (
    DeliveryStatus,
    PartnerWebhookDelivery,
    PartnerWebhookEndpoint,
)
from resolvers.common.services import Services
from resolvers.partners.webhooks.sender import FAILURES_BEFORE_PAUSE, STREAMS_PER_ENDPOINT
from server.background import PeriodicJob, marketplace_jobs, running
from server.runtime import Runtime
from tests.conftest import with_settings
from tests.support.partners import webhooks as support
from tests.support.partners.partners import approved_partner, wallet_document
from tests.support.partners.receiver import Receiver, receiving


@dataclass
class Hanging:
    """A partner's host that accepts connections and never answers."""

    connections: int = 0
    open: set[asyncio.StreamWriter] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open.add(writer)
        try:
            while await reader.read(1024):
                pass  # read what comes, answer nothing
        finally:
            self.open.discard(writer)
            writer.close()


@asynccontextmanager
async def hanging(host: Hanging) -> AsyncIterator[str]:
    server = await asyncio.start_server(host.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hooks"
    finally:
        server.close()
        for writer in list(host.open):
            writer.close()


def _sender(services: Services) -> list[PeriodicJob]:
    """The background job that sends partner webhooks, as every instance runs it."""
    return [j for j in marketplace_jobs(services) if j.name == "send-partner-webhooks"]


async def test_an_endpoint_that_hangs_holds_back_no_other_partners_deliveries(
    runtime: Runtime,
) -> None:
    services = with_settings(
        runtime,
        partner_webhook_allow_private_hosts=True,
        partner_webhook_timeout=timedelta(seconds=60),
        partner_webhook_send_interval=timedelta(seconds=0.1),
    ).services
    slow, fast = (
        await approved_partner("Slow", scopes=support.WEBHOOK_SCOPES),
        await approved_partner("Fast", scopes=support.WEBHOOK_SCOPES),
    )
    host, receiver = Hanging(), Receiver()
    async with hanging(host) as slow_url, receiving(receiver) as fast_url:
        await support.endpoint_secret(slow, slow_url)
        receiver.secret = await support.endpoint_secret(fast, fast_url)
        for n in range(40):
            await support.money_moved(services, await wallet_document(slow, f"s-{n}"), 100, 100)
        async with running(_sender(services)):
            async with asyncio.timeout(10):
                while host.connections == 0:
                    await asyncio.sleep(0.05)
            # The slow partner's posts hang (for up to a minute each); meanwhile:
            wallet = await wallet_document(fast, "f-1")
            await support.money_moved(services, wallet, 100, 100)
            async with asyncio.timeout(10):  # far less than the slow posts' timeout
                while not receiver.accepted:
                    await asyncio.sleep(0.05)
            # The hanging endpoint had only its share of the sender.
            assert host.connections <= STREAMS_PER_ENDPOINT
    assert [e["data"]["object"]["wallet"]["externalWalletId"] for e in receiver.accepted] == ["f-1"]


async def test_an_endpoint_that_never_answers_is_paused_then_gets_everything_in_order(
    runtime: Runtime,
) -> None:
    services = with_settings(
        runtime,
        partner_webhook_allow_private_hosts=True,
        partner_webhook_timeout=timedelta(seconds=0.3),
        partner_webhook_retry_base=timedelta(seconds=0.1),
        partner_webhook_send_interval=timedelta(seconds=0.1),
        partner_webhook_pause=timedelta(hours=1),
    ).services
    made = await approved_partner(scopes=support.WEBHOOK_SCOPES)
    host, receiver = Hanging(), Receiver()
    async with hanging(host) as url, receiving(receiver) as later_url:
        receiver.secret = await support.endpoint_secret(made, url)
        wallets = [await wallet_document(made, f"w-{n}") for n in range(8)]
        for round_ in range(2):
            for wallet in wallets:
                await support.money_moved(services, wallet, 100, 100 * (round_ + 1))
        async with running(_sender(services)):
            async with asyncio.timeout(20):
                while (
                    await PartnerWebhookEndpoint.find_one({"paused_until": {"$ne": None}}) is None
                ):
                    await asyncio.sleep(0.05)
            tried = host.connections
            # The posts under way when it paused may still end; nothing more is sent.
            assert FAILURES_BEFORE_PAUSE <= tried < FAILURES_BEFORE_PAUSE + STREAMS_PER_ENDPOINT
            await asyncio.sleep(1)  # ten send intervals
            assert host.connections == tried
            pending = await PartnerWebhookDelivery.find_all().to_list()
            assert {d.status for d in pending} == {DeliveryStatus.PENDING}
            assert {d.sequence for d in pending if d.attempts} == {1}
            # The partner's endpoint answers again (the receiver serves it now), and the
            # pause is over: it is tried again.
            endpoint = await PartnerWebhookEndpoint.find_one({"paused_until": {"$ne": None}})
            assert endpoint is not None
            await PartnerWebhookEndpoint.get_pymongo_collection().update_one(
                {"_id": endpoint.id}, {"$set": {"url": later_url, "paused_until": utcnow()}}
            )
            async with asyncio.timeout(20):
                while len(receiver.accepted) < 16:
                    await asyncio.sleep(0.05)
    assert receiver.unverified == []
    for wallet in wallets:
        mine = [
            e["sequence"]
            for e in receiver.accepted
            if e["data"]["object"]["wallet"]["externalWalletId"] == wallet.external_wallet_id
        ]
        assert mine == [1, 2]
    answered = await PartnerWebhookEndpoint.get(endpoint.id)
    assert answered is not None and answered.failures_in_row == 0
    assert answered.paused_until is None
