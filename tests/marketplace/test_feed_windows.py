"""The task feed read in windows of `created_at` (resolvers/common/pagination.py
`paginate_in_windows`): every page, cursor and `hasNextPage` exactly as the plain query
gives them, and the reads sent bounded on `created_at`, which the index on the filter's
equalities then `created_at` answers without gathering every open task."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId

from documents.clock import utcnow
from documents.geo import Address, GeoPoint, Place
from documents.marketplace.tasks import Task, TaskStatus
from documents.money import Money
from resolvers.common.cursors import CursorKey
from resolvers.common.pagination import Page, PageRequest, paginate
from resolvers.common.request_ids import request_id_var
from resolvers.marketplace.task_search import ORDERS, TaskQuery, TaskSort, _filters, search_tasks
from tests.conftest import TEST_JWT_SECRET
from tests.support.command_log import CommandLog

CURSORS = CursorKey(TEST_JWT_SECRET).of("Query.tasks")
NEWEST = ORDERS[TaskSort.NEWEST]
CATEGORIES = ["gardening", "cleaning", "moving"]
POSTERS = [ObjectId() for _ in range(3)]
WHERE = Place(
    point=GeoPoint.at(-33.8688, 151.2093),
    address=Address(line1="1 George St", city="Sydney", country="AU"),
)


def _task(created_at: datetime, rng: random.Random) -> Task:
    return Task(
        poster_id=rng.choice(POSTERS),
        title="Mow the lawn",
        description="Front and back, about 200 square metres.",
        category=rng.choice(CATEGORIES),
        budget=Money(amount=rng.choice([5000, 8000, 12000]), currency="AUD"),
        place=WHERE,
        status=TaskStatus.OPEN if rng.random() < 0.8 else TaskStatus.ASSIGNED,
        keywords=["mow", "lawn"],
        created_at=created_at,
    )


async def _seed() -> datetime:
    """About 200 tasks on a grid of whole hours back from the last hour (so that window
    bounds, counted in hours from a cursor, fall on tasks' times), many sharing a time:
    most within days, some older than every bounded window, a group of 25 posted at
    the same moment, and one a little in the future (another instance's clock)."""
    rng = random.Random(16)  # noqa: S311 - a repeatable seed, not a secret
    hour = utcnow().replace(minute=0, second=0, microsecond=0)
    times = [hour - timedelta(hours=int(rng.expovariate(1 / 30))) for _ in range(140)]
    times += [hour - timedelta(hours=rng.randint(1400, 3000)) for _ in range(30)]
    times += [hour - timedelta(hours=5)] * 25
    times += [utcnow() + timedelta(minutes=10)]
    await Task.insert_many([_task(at, rng) for at in times])
    return hour


def _shown(page: Page[Task]) -> tuple[list[tuple[str, Any]], bool, bool]:
    return (
        [(cursor, task.id) for cursor, task in page.edges],
        page.has_next_page,
        page.has_previous_page,
    )


async def _plain(query: TaskQuery, request: PageRequest) -> Page[Task]:
    """The plain query, its filter inside `$and`: SecantusDB then checks every task
    against it and uses no index, whose range scans have quirks of their own."""
    return await paginate(Task, {"$and": [_filters(query)]}, NEWEST, request)


async def _every_page(query: TaskQuery, size: int) -> int:
    """Walks every page of `query` both ways, checking each is the plain query's;
    returns how many tasks were seen."""
    request = PageRequest(size, None, CURSORS)
    seen = 0
    while True:
        windowed = await search_tasks(query, request)
        plain = await _plain(query, request)
        assert _shown(windowed) == _shown(plain), (query, size, seen)
        seen += len(plain.edges)
        if not plain.has_next_page:
            return seen
        request = replace(request, after=plain.edges[-1][0])


async def test_every_page_of_the_feed_is_the_plain_querys() -> None:
    await _seed()
    open_tasks = await Task.find({"status": "open"}).count()
    for size in (1, 3, 7, 20, 100):
        assert await _every_page(TaskQuery(), size) == open_tasks


async def test_every_filter_of_the_feed_gives_the_plain_querys_pages() -> None:
    await _seed()
    queries = [
        TaskQuery(category="gardening"),
        TaskQuery(category=" Moving "),
        TaskQuery(statuses=[TaskStatus.ASSIGNED]),
        TaskQuery(statuses=[TaskStatus.OPEN, TaskStatus.ASSIGNED]),
        TaskQuery(poster_id=POSTERS[0]),
        TaskQuery(text="lawn mo"),
        TaskQuery(min_budget=5000, max_budget=8000, currency="AUD"),
        TaskQuery(currency="AUD", category="cleaning"),
    ]
    for query in queries:
        for size in (2, 20):
            assert await _every_page(query, size) > 0, query


async def test_empty_results_and_empty_pages_are_the_plain_querys() -> None:
    assert await _every_page(TaskQuery(), 20) == 0
    await _seed()
    assert await _every_page(TaskQuery(category="astrology"), 20) == 0
    for query in (TaskQuery(), TaskQuery(category="cleaning")):
        request = PageRequest(0, None, CURSORS)
        windowed = await search_tasks(query, request)
        plain = await _plain(query, request)
        assert _shown(windowed) == _shown(plain) and windowed.has_next_page


@contextmanager
def _finds(command_log: CommandLog) -> Iterator[list[dict[str, Any]]]:
    token = request_id_var.set("feed-windows")
    try:
        with command_log.recording("feed-windows"):
            yield command_log.documents
    finally:
        request_id_var.reset(token)


async def test_the_feed_reads_windows_of_created_at_the_index_bounds(
    command_log: CommandLog,
) -> None:
    hour = await _seed()
    with _finds(command_log) as sent:
        first = await search_tasks(TaskQuery(), PageRequest(20, None, CURSORS))
    reads = [command for command in sent if "find" in command]
    assert reads and all(command["find"] == "tasks" for command in reads)
    assert all(set(command["filter"]) == {"status", "created_at"} for command in reads)
    assert all(command["sort"] == {"created_at": -1, "_id": -1} for command in reads)
    # From now back an hour first, with no upper bound (a clock ahead is still shown).
    assert set(reads[0]["filter"]["created_at"]) == {"$gt"}
    assert reads[0]["limit"] == 21
    later = first.edges[-1][1].created_at
    with _finds(command_log) as sent:
        await search_tasks(TaskQuery(), PageRequest(20, first.edges[-1][0], CURSORS))
    reads = [command for command in sent if "find" in command]
    bounds = reads[0]["filter"]["created_at"]
    # From the cursor's time back, including it: tasks of that time may follow the cursor.
    assert bounds["$lte"] == later.replace(tzinfo=None) and bounds["$gt"] < bounds["$lte"]
    assert reads[0]["filter"]["status"] == "open"
    assert later <= hour


async def test_a_category_is_read_in_windows_from_its_own_index(
    command_log: CommandLog,
) -> None:
    await _seed()
    with _finds(command_log) as sent:
        await search_tasks(TaskQuery(category="gardening"), PageRequest(5, None, CURSORS))
    reads = [command for command in sent if "find" in command]
    assert reads and all(
        set(command["filter"]) == {"status", "category", "created_at"} for command in reads
    )


async def test_filters_no_index_bounds_by_time_are_sent_as_before(
    command_log: CommandLog,
) -> None:
    await _seed()
    with _finds(command_log) as sent:
        await search_tasks(TaskQuery(text="lawn"), PageRequest(5, None, CURSORS))
        await search_tasks(
            TaskQuery(statuses=[TaskStatus.OPEN, TaskStatus.ASSIGNED]),
            PageRequest(5, None, CURSORS),
        )
    reads = [command for command in sent if "find" in command]
    assert len(reads) == 2
    assert all("created_at" not in str(command["filter"]) for command in reads)
