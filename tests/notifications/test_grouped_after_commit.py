"""The after-commit work of requests that commit together, written together.

Requests whose commits come while another's notifications are being derived wait and go
as one group: one derivation and one mark for all their events (bench/README.md, Issue
16, third pass). Each still returns only once its own events are derived, published and
marked, and one request's event that cannot be derived leaves only that request's to
the job.
"""

from __future__ import annotations

import asyncio

from bson import ObjectId

from documents.clock import utcnow
from documents.events import DomainEvent
from documents.grouped_writes import GroupedWrites
from documents.notifications.preferences import NotificationPreferences
from resolvers.common.request_ids import request_id_var
from resolvers.common.unit_of_work import after_commit
from server.runtime import Runtime
from tests.notifications.test_derived_notifications import committed_then_crashed, made_for
from tests.support.command_log import CommandLog

REQUESTS = 4


async def test_requests_committing_together_derive_and_mark_their_events_in_one_group(
    runtime: Runtime, command_log: CommandLog
) -> None:
    people = [(ObjectId(), ObjectId()) for _ in range(REQUESTS)]
    events = [await committed_then_crashed(payer, provider) for payer, provider in people]

    token = request_id_var.set("together")
    try:
        with command_log.recording("together") as commands:
            await asyncio.gather(
                *(after_commit(runtime.services.broker, [event]) for event in events)
            )
    finally:
        request_id_var.reset(token)

    # One derivation (notifications, preferences, deliveries) and one mark for the
    # group, not four commands a request: sixteen before.
    assert commands.count(("insert", "notifications")) == 1, commands
    assert commands.count(("insert", "notification_deliveries")) == 1, commands
    assert commands.count(("update", "events")) == 1, commands
    for event, (payer, provider) in zip(events, people, strict=True):
        notifications, deliveries = await made_for(event)
        assert [person for person, _ in notifications] == sorted([payer, provider])
        assert len(deliveries) == 2
        stored = await DomainEvent.get(event.id)
        assert stored is not None and stored.notify_pending_since is None
        assert stored.published_at is not None


async def test_a_request_whose_event_cannot_be_derived_holds_up_no_other_in_its_group(
    runtime: Runtime,
) -> None:
    broken_payer, payer, provider = ObjectId(), ObjectId(), ObjectId()
    await NotificationPreferences.get_pymongo_collection().insert_one(
        {"user_id": broken_payer, "choices": "not a mapping", "updated_at": utcnow()}
    )
    stuck = await committed_then_crashed(broken_payer, provider)
    fine = [await committed_then_crashed(payer, provider) for _ in range(REQUESTS - 1)]

    await asyncio.gather(
        after_commit(runtime.services.broker, [stuck]),
        *(after_commit(runtime.services.broker, [event]) for event in fine),
    )

    for event in fine:
        stored = await DomainEvent.get(event.id)
        assert stored is not None and stored.notify_pending_since is None
        assert len((await made_for(event))[1]) == 2
    # The broken one is published, and left pending for the job.
    kept = await DomainEvent.get(stuck.id)
    assert kept is not None and kept.published_at is not None
    assert kept.notify_pending_since == stuck.occurred_at


async def test_a_request_cancelled_while_its_group_is_written_stops_nobody_elses(
    runtime: Runtime,
) -> None:
    people = [(ObjectId(), ObjectId()) for _ in range(REQUESTS)]
    events = [await committed_then_crashed(payer, provider) for payer, provider in people]
    requests = [
        asyncio.create_task(after_commit(runtime.services.broker, [event])) for event in events
    ]
    await asyncio.sleep(0)  # every request is waiting for its group
    requests[0].cancel()

    outcomes = await asyncio.gather(*requests, return_exceptions=True)

    assert isinstance(outcomes[0], asyncio.CancelledError)
    assert outcomes[1:] == [None] * (REQUESTS - 1)
    # The cancelled request's events were derived and marked all the same.
    for event in events:
        stored = await DomainEvent.get(event.id)
        assert stored is not None and stored.notify_pending_since is None
        assert stored.published_at is not None


async def test_a_later_group_is_not_written_in_the_first_callers_context() -> None:
    """The task writing the groups outlives the request that started it: a later group's
    work (its logs, its spans) is attributed to a caller of that group, not to the first."""
    first_written, release = asyncio.Event(), asyncio.Event()
    seen: list[str | None] = []

    async def write(items: list[str]) -> list[str | None]:
        seen.append(request_id_var.get())
        if not release.is_set():
            first_written.set()
            await release.wait()  # the later callers queue meanwhile, as the next group
        return [request_id_var.get() for _ in items]

    grouped: GroupedWrites[str, str | None] = GroupedWrites(write)

    async def submit_as(request_id: str) -> str | None:
        request_id_var.set(request_id)  # this task's own context
        return await grouped.submit(request_id)

    first = asyncio.create_task(submit_as("first"))
    await first_written.wait()
    later = [asyncio.create_task(submit_as(name)) for name in ("second", "third")]
    await asyncio.sleep(0.01)
    release.set()

    assert await first == "first"
    assert await asyncio.gather(*later) == ["second", "second"]
    assert seen == ["first", "second"]
    assert request_id_var.get() is None
