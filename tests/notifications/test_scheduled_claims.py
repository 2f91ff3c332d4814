"""Every instance runs the job that turns due scheduled messages into deliveries; each
message still becomes exactly one set of deliveries: concurrent claimers, a claimer
whose lease ran out, an instance that stopped holding a lease, two served processes."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial
from pathlib import Path

from documents.clock import utcnow
from documents.notifications.catalogue import NotificationKind as K
from documents.notifications.deliveries import Delivery
from documents.notifications.scheduled import ScheduledMessage, ScheduledStatus
from documents.settings import Settings
from documents.transactions import run_in_transaction
from resolvers.notifications.scheduled import LEASE, claim, settle, turn_due
from server.runtime import Runtime
from tests.support.gigql_process import GigqlServer, sharing_the_test_database
from tests.support.graphql_client import GraphQLClient
from tests.support.scheduled import booking_in_days, deliveries, due_message, statuses

MANY = 40


async def test_concurrent_claimers_turn_a_due_reminder_into_one_set_of_deliveries(
    client: GraphQLClient, runtime: Runtime
) -> None:
    booked = await booking_in_days(client)
    day_before = booked.start - timedelta(hours=23)
    claimed = await asyncio.gather(*(turn_due(runtime.services, day_before) for _ in range(3)))
    assert sum(claimed) == 2  # the day-before reminder to each side, each claimed once
    assert await deliveries() == sorted(
        [
            (K.BOOKING_REMINDER_DAY, booked.customer_id, "email"),
            (K.BOOKING_REMINDER_DAY, booked.provider_id, "email"),
        ]
    )
    assert await statuses(kind=K.BOOKING_REMINDER_DAY) == {ScheduledStatus.DONE}
    assert await turn_due(runtime.services, day_before) == 0


async def test_many_due_messages_are_each_settled_once_by_concurrent_claimers(
    runtime: Runtime,
) -> None:
    now = utcnow()
    await ScheduledMessage.insert_many([due_message(i, now) for i in range(MANY)])
    claimed = await asyncio.gather(*(turn_due(runtime.services, now) for _ in range(4)))
    assert sum(claimed) == MANY
    assert len([c for c in claimed if c]) > 1  # they did run side by side
    assert await statuses() == {ScheduledStatus.DONE}
    assert len(await deliveries()) == MANY  # one e-mail each


async def test_a_claimer_whose_lease_ran_out_settles_nothing(runtime: Runtime) -> None:
    now = utcnow()
    await due_message(1, now).insert()
    slow = await claim(now)  # an instance that stalls past its lease
    assert slow is not None and await claim(now) is None
    later = now + LEASE + timedelta(seconds=1)
    taken_over = await claim(later)
    assert taken_over is not None and taken_over.id == slow.id
    assert await run_in_transaction(partial(settle, taken_over, later)) is ScheduledStatus.DONE
    assert await run_in_transaction(partial(settle, slow, later)) is None
    assert len(await deliveries()) == 1


async def test_a_lease_left_by_a_stopped_instance_is_taken_up_once_it_runs_out(
    runtime: Runtime,
) -> None:
    now = utcnow()
    await due_message(1, now).insert()
    assert await claim(now) is not None  # and the instance stops before settling it
    # A restarted instance leaves it alone while the lease lasts, then takes it up.
    assert await turn_due(runtime.services, now + LEASE - timedelta(seconds=1)) == 0
    assert await statuses() == {ScheduledStatus.PENDING}
    assert await turn_due(runtime.services, now + LEASE + timedelta(seconds=1)) == 1
    assert await statuses() == {ScheduledStatus.DONE}
    assert len(await deliveries()) == 1


async def test_two_served_instances_turn_each_due_message_into_one_set_of_deliveries(
    tmp_path: Path, settings: Settings
) -> None:
    often = {"GIGQL_NOTIFICATION_SEND_INTERVAL": "PT0.05S"}
    async with (
        sharing_the_test_database(tmp_path / "a", settings, **often) as a,
        sharing_the_test_database(tmp_path / "b", settings, **often) as b,
    ):
        now = utcnow()
        await ScheduledMessage.insert_many([due_message(i, now) for i in range(MANY)])

        async def settled() -> bool:
            return (
                await ScheduledMessage.find({"status": ScheduledStatus.PENDING.value}).count() == 0
            )

        done = False
        for _ in range(600):  # 30 s
            if done := await settled():
                break
            await asyncio.sleep(0.05)
        assert done, f"a:\n{a.output()}\nb:\n{b.output()}"
        failures = [*_failures(a), *_failures(b)]
    assert await statuses() == {ScheduledStatus.DONE}
    assert await Delivery.find({"key": {"$regex": "^scheduled:"}}).count() == MANY
    assert failures == []


def _failures(server: GigqlServer) -> list[str]:
    """Log lines of a scheduled message that failed (a second settling would, on the
    deliveries' unique keys)."""
    logged = server.stdout_path.read_text(errors="replace") + server.stderr()
    return [line for line in logged.splitlines() if "scheduled message" in line]
