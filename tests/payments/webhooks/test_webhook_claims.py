"""Claims of a stored event by runners racing for it: the retry job on every instance and
the gateway's redeliveries. A claim reads the event and takes it on the attempts it
read, so of any number of runners exactly one processes it each time it is due."""

from __future__ import annotations

import asyncio

from documents.clock import utcnow
from documents.payments.webhooks import WebhookEvent, WebhookStatus
from resolvers.payments.webhooks.inbox import LEASE, process, receive
from server.runtime import Runtime
from tests.support.payments.webhooks import (
    FLAKY,
    Flaky,
    event_id_of,
    signature,
    stored,
    stripe_event,
    webhook_secret,
)


async def make_due(event_id: str) -> None:
    await WebhookEvent.get_pymongo_collection().update_one(
        {"event_id": event_id}, {"$set": {"next_attempt_at": utcnow()}}
    )


async def test_runners_racing_for_a_due_event_process_it_once_per_attempt(
    runtime: Runtime,
) -> None:
    flaky = Flaky()
    body = stripe_event(FLAKY)
    event_id = event_id_of(body)
    services = runtime.services
    header = signature(body, webhook_secret(services))
    await receive(services, body, header, flaky.table)
    assert flaky.calls == 1 and (await stored(event_id)).status is WebhookStatus.FAILED

    for attempt in (2, 3):
        await make_due(event_id)
        taken = await asyncio.gather(*(process(services, event_id, flaky.table) for _ in range(10)))
        assert len([event for event in taken if event is not None]) == 1
        assert flaky.calls == attempt
        assert (await stored(event_id)).attempts == attempt

    flaky.ready = True
    await make_due(event_id)
    outcomes = await asyncio.gather(
        *(process(services, event_id, flaky.table) for _ in range(10)),
        *(receive(services, body, header, flaky.table) for _ in range(5)),
    )
    assert flaky.handled == [event_id]
    event = await stored(event_id)
    assert event.status is WebhookStatus.PROCESSED and event.attempts == 4
    # Whoever got nothing to do answers with the stored event, as it was or as it ended.
    assert {o.event_id for o in outcomes if o is not None} == {event_id}


async def test_an_event_held_by_a_runner_is_not_taken_before_its_lease_ends(
    runtime: Runtime,
) -> None:
    flaky = Flaky()
    body = stripe_event(FLAKY)
    event_id = event_id_of(body)
    await WebhookEvent(
        event_id=event_id,
        type=FLAKY,
        created=utcnow(),
        payload=body.decode(),
        attempts=1,
        next_attempt_at=utcnow() + LEASE,
    ).insert()
    # A runner stored it and holds it (it died, or is still at it): nobody else runs it.
    assert await process(runtime.services, event_id, flaky.table) is None
    assert flaky.calls == 0
    await make_due(event_id)  # the lease ran out: the runner is presumed dead
    flaky.ready = True
    taken = await process(runtime.services, event_id, flaky.table)
    assert taken is not None and taken.status is WebhookStatus.PROCESSED and taken.attempts == 2
