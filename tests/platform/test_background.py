"""The periodic jobs each API instance runs: they repeat, outlive failures, stop cleanly."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from datetime import timedelta

import pytest

from documents import leases
from documents.clock import utcnow
from documents.leases import JobLease
from documents.marketplace.reviews import Review
from server import background
from server.background import PeriodicJob, marketplace_jobs, running
from server.runtime import Runtime
from tests.conftest import with_settings
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import poster, tasker
from tests.support.reviews import completed_task, ratings, reviewed

OFTEN = timedelta(milliseconds=10)


async def test_a_job_repeats_outlives_its_failures_and_stops_with_the_block(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("the database is away")

    with caplog.at_level(logging.ERROR, logger="server.background"):
        async with asyncio.timeout(5), running([PeriodicJob("flaky", OFTEN, flaky)]):
            while runs < 3:
                await asyncio.sleep(0.005)
    stopped_at = runs
    await asyncio.sleep(0.05)
    assert runs == stopped_at
    assert [r.getMessage() for r in caplog.records] == ["background job flaky failed"]


async def test_the_marketplace_jobs_publish_due_reviews(
    runtime: Runtime, client: GraphQLClient
) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    await reviewed(client, ann, await completed_task(client, ann, tom), 4)
    await Review.get_pymongo_collection().update_many(
        {}, {"$set": {"published_at": utcnow() - timedelta(seconds=1)}}
    )
    services = with_settings(runtime, review_publish_interval=OFTEN).services
    async with asyncio.timeout(5), running(marketplace_jobs(services)):
        while not await Review.find_one(Review.counted == True):  # noqa: E712
            await asyncio.sleep(0.01)
    assert (await ratings(client, tom.user_id))["provider"] == {"average": 4.0, "count": 1}


async def test_a_lease_is_held_by_one_instance_renewed_by_it_and_free_once_run_out(
    runtime: Runtime,
) -> None:
    lasting = timedelta(minutes=1)
    start = utcnow()
    assert await leases.take("lease-rules", "a", lasting, now=start)
    assert not await leases.take("lease-rules", "b", lasting, now=start + timedelta(seconds=30))
    # The holder renews: another still waits past the first expiry.
    assert await leases.take("lease-rules", "a", lasting, now=start + timedelta(seconds=50))
    assert not await leases.take("lease-rules", "b", lasting, now=start + timedelta(seconds=70))
    # Run out (the holder died): the next instance takes it.
    assert await leases.take("lease-rules", "b", lasting, now=start + timedelta(seconds=111))
    lease = await JobLease.get("lease-rules")
    assert lease is not None and lease.holder == "b"


async def test_with_many_instances_one_runs_a_sweep_and_another_takes_over_when_it_stops(
    runtime: Runtime,
) -> None:
    runs: dict[str, int] = {"a": 0, "b": 0}

    def job_of(instance: str) -> PeriodicJob:
        async def sweep() -> None:
            runs[instance] += 1

        return PeriodicJob("lease-sweep", OFTEN, sweep)

    async with asyncio.timeout(10), AsyncExitStack() as instance_b:
        async with running([job_of("a")], holder="a"):
            while runs["a"] < 5:
                await asyncio.sleep(0.005)
            await instance_b.enter_async_context(running([job_of("b")], holder="b"))
            await asyncio.sleep(0.3)  # about 30 periods: none of them b's
            assert runs["b"] == 0
        # a stopped and gave the lease up: b takes the sweep over at once, not when the
        # lease (over ten seconds) runs out.
        async with asyncio.timeout(2):
            while runs["b"] < 3:
                await asyncio.sleep(0.005)


async def test_a_long_run_keeps_its_lease_and_outbox_senders_run_on_every_instance(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(background, "LEASE_MARGIN", timedelta(milliseconds=100))
    started: list[str] = []
    sent: dict[str, int] = {"a": 0, "b": 0}

    def jobs_of(instance: str) -> list[PeriodicJob]:
        async def slow_sweep() -> None:
            started.append(instance)
            await asyncio.sleep(1)  # five times the lease: renewed while it runs

        async def send() -> None:
            sent[instance] += 1

        return [
            PeriodicJob("lease-slow-sweep", OFTEN, slow_sweep),
            PeriodicJob("lease-outbox", OFTEN, send, every_instance=True),
        ]

    async with asyncio.timeout(10), running(jobs_of("a"), holder="a"):
        while not started:
            await asyncio.sleep(0.005)
        async with running(jobs_of("b"), holder="b"):
            await asyncio.sleep(0.8)
    assert started == ["a"]
    assert sent["a"] > 0 and sent["b"] > 0
