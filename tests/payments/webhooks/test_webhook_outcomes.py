"""Events received, and outcomes of events finished, at the same time: written together.

A final outcome (processed, ignored) of each event is written on the condition that its
runner still holds it; the outcomes of events finished at once share one update
(bench/README.md, Issue 16, third pass), and an event another runner took over in the
meantime keeps that runner's outcome, as it does when written alone.
"""

from __future__ import annotations

import asyncio

from pymongo.errors import BulkWriteError, DocumentTooLarge

from documents.payments.webhooks import WebhookEvent, WebhookStatus
from integrations.payments.gateway import GatewayEvent
from resolvers.common.request_ids import request_id_var
from resolvers.common.services import Services
from resolvers.payments.webhooks.inbox import receive
from server.runtime import Runtime
from tests.support.command_log import CommandLog
from tests.support.payments.webhooks import (
    FLAKY,
    event_id_of,
    signature,
    stored,
    stripe_event,
    webhook_secret,
)

EVENTS = 4


class Gate:
    """A handler that waits until every event is being handled, so that all finish at once."""

    def __init__(self) -> None:
        self.waiting = 0
        self.open = asyncio.Event()

    async def __call__(self, services: Services, event: GatewayEvent) -> None:
        self.waiting += 1
        await self.open.wait()

    async def release_when(self, count: int) -> None:
        while self.waiting < count:
            await asyncio.sleep(0.01)
        self.open.set()


async def test_events_finished_at_once_are_recorded_in_one_write(
    runtime: Runtime, command_log: CommandLog
) -> None:
    gate = Gate()
    bodies = [stripe_event(FLAKY) for _ in range(EVENTS)]
    secret = webhook_secret(runtime.services)
    token = request_id_var.set("finished-together")
    try:
        with command_log.recording("finished-together") as commands:
            await asyncio.gather(
                gate.release_when(EVENTS),
                *(
                    receive(runtime.services, body, signature(body, secret), {FLAKY: gate})
                    for body in bodies
                ),
            )
    finally:
        request_id_var.reset(token)

    assert commands.count(("update", "webhook_events")) == 1, commands
    for body in bodies:
        kept = await stored(event_id_of(body))
        assert kept.status is WebhookStatus.PROCESSED and kept.attempts == 1
        assert kept.processed_at is not None


async def test_an_event_taken_over_meanwhile_keeps_the_other_runners_outcome(
    runtime: Runtime,
) -> None:
    gate = Gate()
    bodies = [stripe_event(FLAKY) for _ in range(EVENTS)]
    secret = webhook_secret(runtime.services)
    taken_over = event_id_of(bodies[0])

    async def take_over_then_release() -> None:
        while gate.waiting < EVENTS:
            await asyncio.sleep(0.01)
        # Another runner's claim after the lease ran out: one more attempt counted.
        await WebhookEvent.get_pymongo_collection().update_one(
            {"event_id": taken_over}, {"$inc": {"attempts": 1}}
        )
        gate.open.set()

    await asyncio.gather(
        take_over_then_release(),
        *(
            receive(runtime.services, body, signature(body, secret), {FLAKY: gate})
            for body in bodies
        ),
    )

    kept = await stored(taken_over)
    assert kept.status is WebhookStatus.RECEIVED and kept.attempts == 2
    assert kept.processed_at is None
    for body in bodies[1:]:
        assert (await stored(event_id_of(body))).status is WebhookStatus.PROCESSED


async def test_events_received_at_once_are_stored_in_one_insert_each_once(
    runtime: Runtime, command_log: CommandLog
) -> None:
    bodies = [stripe_event() for _ in range(EVENTS)]
    secret = webhook_secret(runtime.services)
    # The first event twice more, in the same moment: stored once, the others refused.
    deliveries = [*bodies, bodies[0], bodies[0]]
    token = request_id_var.set("received-together")
    try:
        with command_log.recording("received-together") as commands:
            received = await asyncio.gather(
                *(receive(runtime.services, body, signature(body, secret)) for body in deliveries)
            )
    finally:
        request_id_var.reset(token)

    assert commands.count(("insert", "webhook_events")) == 1, commands
    assert await WebhookEvent.get_pymongo_collection().count_documents(
        {"event_id": {"$in": [event_id_of(body) for body in bodies]}}
    ) == len(bodies)
    assert {event.event_id for event in received} == {event_id_of(body) for body in bodies}
    for body in bodies:
        kept = await stored(event_id_of(body))
        assert kept.status is WebhookStatus.IGNORED and kept.attempts == 1


async def test_an_event_that_cannot_be_stored_fails_only_its_own_delivery(
    runtime: Runtime, command_log: CommandLog
) -> None:
    """One event of a group too large for a document: its delivery fails (the gateway
    retries it), and the others received with it are stored and processed as usual."""
    bodies = [stripe_event() for _ in range(EVENTS)]
    too_large = stripe_event(data_object={"id": "obj_large", "blob": "x" * (17 * 1024 * 1024)})
    secret = webhook_secret(runtime.services)
    deliveries = [bodies[0], bodies[1], too_large, *bodies[2:]]
    token = request_id_var.set("one-too-large")
    try:
        with command_log.recording("one-too-large") as commands:
            received = await asyncio.gather(
                *(receive(runtime.services, body, signature(body, secret)) for body in deliveries),
                return_exceptions=True,
            )
    finally:
        request_id_var.reset(token)

    failed = received.pop(2)
    assert isinstance(failed, DocumentTooLarge), failed
    assert await WebhookEvent.find_one({"event_id": event_id_of(too_large)}) is None
    assert all(isinstance(event, WebhookEvent) for event in received), received
    # Received together: one insert (the large one, tried again alone, is refused unsent).
    assert commands.count(("insert", "webhook_events")) == 1, commands
    for body in bodies:
        kept = await stored(event_id_of(body))
        assert kept.status is WebhookStatus.IGNORED and kept.attempts == 1


async def test_an_event_bson_cannot_encode_fails_only_its_own_delivery(runtime: Runtime) -> None:
    """A genuinely signed event whose id holds a lone surrogate (valid JSON, not UTF-8):
    the driver cannot encode it, which fails its delivery alone."""
    bodies = [stripe_event() for _ in range(EVENTS)]
    unencodable = stripe_event(event_id="evt_\ud800")
    secret = webhook_secret(runtime.services)
    deliveries = [bodies[0], bodies[1], unencodable, *bodies[2:]]
    received = await asyncio.gather(
        *(receive(runtime.services, body, signature(body, secret)) for body in deliveries),
        return_exceptions=True,
    )

    failed = received.pop(2)
    assert isinstance(failed, Exception) and not isinstance(failed, BulkWriteError), failed
    assert all(isinstance(event, WebhookEvent) for event in received), received
    for body in bodies:
        kept = await stored(event_id_of(body))
        assert kept.status is WebhookStatus.IGNORED and kept.attempts == 1
