"""The periodic jobs each API instance runs: they repeat, outlive failures, stop cleanly."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from documents.clock import utcnow
from documents.marketplace.reviews import Review
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
