"""A page of tasks costs the same few database round trips whatever its size (no N+1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from documents.clock import utcnow
from documents.geo import Address, GeoPoint, Place
from documents.marketplace.offers import Offer
from documents.marketplace.tasks import StatusChange, Task, TaskStatus
from documents.money import Money
from tests.support.command_log import CommandLog
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import object_id, poster, tasker

FEED = """query($first: Int) { tasks(first: $first) { edges { node {
  id title budget { amount currency } offerCount area { city }
  poster { id name } myOffer { id status amount { amount } }
} } pageInfo { hasNextPage endCursor } } }"""


async def _seed(posters: list[str], tasker_id: str, count: int) -> None:
    """Many tasks by several posters, a third of them with an offer by the tasker."""
    place = Place(
        point=GeoPoint.at(-33.87, 151.21),
        address=Address(line1="1 George St", city="Sydney", country="AU"),
    )
    now = utcnow()
    tasks = [
        Task(
            poster_id=object_id(posters[i % len(posters)]),
            title=f"Task number {i}",
            description="Something that needs doing soon.",
            category="handyman",
            budget=Money(amount=5000 + i, currency="AUD"),
            place=place,
            due_at=datetime.now(UTC) + timedelta(days=2),
            offer_count=1 if i % 3 == 0 else 0,
            history=[StatusChange(status=TaskStatus.OPEN)],
            created_at=now - timedelta(seconds=i),
        )
        for i in range(count)
    ]
    await Task.insert_many(tasks)
    stored = await Task.find_all().to_list()
    offers = [
        Offer(
            task_id=t.id,
            tasker_id=object_id(tasker_id),
            poster_id=t.poster_id,
            amount=t.budget,
            message="Can do",
        )
        for t in stored
        if t.offer_count
    ]
    await Offer.insert_many(offers)


async def test_a_feed_page_costs_the_same_round_trips_for_5_or_50_tasks(
    client: GraphQLClient, command_log: CommandLog
) -> None:
    posters = [await poster(client, f"p{i}@example.com") for i in range(7)]
    tom = await tasker(client, "tom@example.com")
    await _seed([p.user_id for p in posters], tom.user_id, 60)

    costs = {}
    for first in (5, 50):
        request_id = f"feed-cost-{first:04d}"
        with command_log.recording(request_id) as commands:
            page = (
                await client.data(
                    FEED, {"first": first}, token=tom.access, headers={"X-Request-ID": request_id}
                )
            )["tasks"]
        assert len(page["edges"]) == first
        costs[first] = list(commands)
        # The nested fields were really resolved, not skipped.
        assert all(e["node"]["poster"]["name"] == "Test User" for e in page["edges"])
        assert sum(1 for e in page["edges"] if e["node"]["myOffer"]) == len(range(0, first, 3))

    assert sorted(costs[5]) == sorted(costs[50]), costs  # the same, in whatever order they ran
    # Who is calling (user, session), the page of tasks, their posters, the caller's offers.
    assert sorted(costs[50]) == sorted(
        [
            ("find", "users"),
            ("find", "sessions"),
            ("find", "tasks"),
            ("find", "users"),
            ("find", "offers"),
        ]
    )
