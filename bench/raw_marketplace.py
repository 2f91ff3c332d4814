"""The floor bench/marketplace.py measures gigql against: the same database queries,
with no GraphQL and no Beanie.

A Starlette route at POST /graphql, served by uvicorn exactly as gigql is, answers the
two operations of the benchmark by their `operationName` with the JSON gigql gives for
them. The queries are built from gigql's own pure pieces (filters, orders, the stages
of a search near a point) and sent with PyMongo's async client, configured as gigql's; the
answers are plain dicts built from the raw documents. bench/marketplace.py checks that
both servers send the same commands and give the same answers before it loads them.
"""

from __future__ import annotations

import base64
import gc
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeAlias

from beanie.odm.utils.projection import get_projection
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from documents.accounts.profiles import ProviderProfile
from documents.accounts.users import Role, User, UserStatus
from documents.clock import utcnow
from documents.marketplace.tasks import Task
from resolvers.common.cursors import CursorKey, Cursors
from resolvers.common.pagination import Order, _encode, read_outwards
from resolvers.marketplace import discovery, task_search
from resolvers.marketplace.discovery import ProviderQuery, ProviderSort
from resolvers.marketplace.task_search import Near, TaskQuery, TaskSort
from server.runtime import mongo_client

Database: TypeAlias = AsyncDatabase[dict[str, Any]]
Raw: TypeAlias = dict[str, Any]

PAGE = 20
SYDNEY = Near(latitude=-33.8688, longitude=151.2093, radius_km=25)
FEED = "TaskFeed"
PROVIDERS = "NearbyProviders"

TASKS = Task.Settings.name
USERS = User.Settings.name
PROFILES = ProviderProfile.Settings.name
# gigql reads users through Beanie, which names every field of the model in a projection;
# sent here too, so that the database does the same work.
USER_PROJECTION = get_projection(User)

# `tasks(first: 20)`: open tasks, newest first (resolvers/marketplace/task_search.py), and one more
# than the page to tell whether there is a next one (resolvers/common/pagination.py).
FEED_FILTER = task_search._filters(TaskQuery())
FEED_ORDER = task_search.ORDERS[TaskSort.NEWEST]

# `searchProviders(first: 20, filter: {near: ...}, sort: DISTANCE)`: the parts
# resolvers/marketplace/discovery.py reads outwards from the point, measured as it measures
# them, then the page's profiles (`read_outwards`, which sends the commands and nothing
# else). Discovery reads one profile more than the page (to top the page up if an account
# must be hidden) and the read one more again, so it wants the page plus two.
PROVIDER_QUERY = ProviderQuery(near=SYDNEY, sort=ProviderSort.DISTANCE)
PROVIDER_ORDER = discovery.ORDERS[ProviderSort.DISTANCE]
PROVIDER_FILTERS = discovery._filters(PROVIDER_QUERY)
PROVIDER_DISTANCE = task_search.measure(SYDNEY, discovery.within_service_radius)


def global_id(type_name: str, object_id: ObjectId) -> str:
    """A Relay global id, as Strawberry writes it."""
    return base64.b64encode(f"{type_name}:{object_id}".encode()).decode()


def page_info(kept: Sequence[Raw], has_next_page: bool, order: Order, cursors: Cursors) -> Raw:
    # gigql's own cursor encoding and signing: the same cursor text, by construction.
    end = _encode(kept[-1], order, cursors) if kept else None
    return {"hasNextPage": has_next_page, "endCursor": end}


FEED_READS = ("windows", "plain")
"""How the raw server reads the feed: in gigql's windows of `created_at`, sending what
gigql sends (the default), or in the one plain query gigql sent before them."""


async def windowed_feed(database: Database) -> list[Raw]:
    """The first page as `paginate_in_windows` reads it (resolvers/common/pagination.py):
    newest first, a window of `created_at` at a time, until it is full."""
    found: list[Raw] = []
    upper: datetime | None = None
    for lower in task_search.FEED_WINDOWS.lower_bounds(utcnow()):
        bounds: dict[str, datetime] = {}
        if lower is not None:
            bounds["$gt"] = lower
        if upper is not None:
            bounds["$lte"] = upper
        query = {**FEED_FILTER, "created_at": bounds} if bounds else FEED_FILTER
        cursor = database[TASKS].find(query).sort(list(FEED_ORDER))
        found += await cursor.limit(PAGE + 1 - len(found)).to_list()
        if len(found) > PAGE or lower is None:
            return found
        upper = lower
    return found


async def plain_feed(database: Database) -> list[Raw]:
    return await database[TASKS].find(FEED_FILTER).sort(list(FEED_ORDER)).limit(PAGE + 1).to_list()


async def task_feed(database: Database, key: CursorKey, reads: str) -> Raw:
    raws = await (plain_feed(database) if reads == "plain" else windowed_feed(database))
    kept = raws[:PAGE]
    # The posters of the page in one query, as gigql's user DataLoader reads them.
    poster_ids = list({task["poster_id"] for task in kept})
    posters = await database[USERS].find({"_id": {"$in": poster_ids}}, USER_PROJECTION).to_list()
    names = {user["_id"]: user["name"] for user in posters}
    edges = [
        {
            "node": {
                "id": global_id("Task", task["_id"]),
                "title": task["title"],
                "budget": {
                    "amount": task["budget"]["amount"],
                    "currency": task["budget"]["currency"],
                },
                "offerCount": task["offer_count"],
                "poster": {
                    "id": global_id("User", task["poster_id"]),
                    "name": names[task["poster_id"]],
                },
            }
        }
        for task in kept
    ]
    info = page_info(kept, len(raws) > PAGE, FEED_ORDER, key.of("Query.tasks"))
    return {"tasks": {"edges": edges, "pageInfo": info}}


async def nearby_providers(database: Database, key: CursorKey, reads: str) -> Raw:
    parts = task_search.outwards(SYDNEY, PROVIDER_FILTERS, fields=["service_radius_km"])
    raws = await read_outwards(
        database[PROFILES], parts, PROVIDER_DISTANCE, PROVIDER_ORDER, PAGE + 2, None
    )
    read = raws[: PAGE + 1]
    # The accounts that may be shown, in one query, as resolvers/marketplace/discovery.py
    # reads them.
    # gigql would read further profiles if some were hidden; the demo's never are, and
    # bench/marketplace.py checks that gigql sends exactly these commands.
    users = await (
        database[USERS]
        .find(
            {
                "_id": {"$in": [profile["_id"] for profile in read]},
                "status": UserStatus.ACTIVE.value,
                "roles": Role.TASKER.value,
            },
            USER_PROJECTION,
        )
        .to_list()
    )
    by_id = {user["_id"]: user for user in users}
    shown = [profile for profile in read if profile["_id"] in by_id]
    kept = shown[:PAGE]
    edges = [
        {
            "node": {
                "user": {
                    "id": global_id("User", profile["_id"]),
                    "name": by_id[profile["_id"]]["name"],
                },
                "profile": {
                    "hourlyRate": _money(profile.get("hourly_rate")),
                    "rating": {
                        "average": profile["rating"]["average"],
                        "count": profile["rating"]["count"],
                    },
                },
                "distanceKm": task_search.kilometres(profile["distance"]),
            }
        }
        for profile in kept
    ]
    info = page_info(kept, len(shown) > PAGE, PROVIDER_ORDER, key.of("Query.searchProviders"))
    return {"searchProviders": {"edges": edges, "pageInfo": info}}


def _money(money: Raw | None) -> Raw | None:
    return None if money is None else {"amount": money["amount"], "currency": money["currency"]}


OPERATIONS: dict[str, Callable[[Database, CursorKey, str], Awaitable[Raw]]] = {
    FEED: task_feed,
    PROVIDERS: nearby_providers,
}


async def graphql(request: Request) -> JSONResponse:
    body = await request.json()
    operation = OPERATIONS.get(body.get("operationName"))
    if operation is not None:
        state = request.app.state
        answer = await operation(state.database, state.cursors, state.feed_reads)
        return JSONResponse({"data": answer})
    if body.get("query") == "{ __typename }":  # the harness's readiness check
        return JSONResponse({"data": {"__typename": "Query"}})
    return JSONResponse({"errors": [{"message": "Unknown operation."}]}, status_code=400)


def create_app(
    mongodb_url: str, database_name: str, jwt_secret: str, feed_reads: str = "windows"
) -> Starlette:
    assert feed_reads in FEED_READS

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = mongo_client(mongodb_url)  # gigql's client settings (tz-aware, UTC)
        app.state.database = client[database_name]
        app.state.cursors = CursorKey(jwt_secret)  # gigql's cursor key, from the same secret
        app.state.feed_reads = feed_reads
        try:
            yield
        finally:
            await client.close()

    return Starlette(routes=[Route("/graphql", graphql, methods=["POST"])], lifespan=lifespan)


def app_from_environment() -> Starlette:
    """The uvicorn factory: the database gigql is given, from the same variables."""
    app = create_app(
        os.environ["MONGODB_URL"],
        os.environ["GIGQL_MONGODB_DATABASE"],
        os.environ["GIGQL_JWT_SECRET"],
        os.environ.get("BENCH_RAW_FEED", "windows"),
    )
    # As gigql does after start-up: long-lived objects out of the collector's way.
    gc.collect()
    gc.freeze()
    return app
