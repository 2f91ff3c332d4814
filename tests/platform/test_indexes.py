"""Every query the graph makes can be served by an index.

A tour of the API over demo data records each database command its requests send (by
request id). For each read, and for the filter of each write, an index must exist
whose leading field the filter constrains (or, for an unfiltered read, whose fields
lead with the sort). This is the condition for MongoDB's planner to avoid a collection
scan; it is checked against the indexes the database reports rather than by `explain`,
because SecantusDB's planner scans in cases MongoDB's does not (an extra `$in` on an
unindexed field, an `$or`). Only first pages are toured; `$geoNear` needs its index to
run at all, so it is not checked here.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from typing import Any

from documents import ALL_DOCUMENTS
from resolvers.accounts.admin import create_admin
from resolvers.common.services import RequestMeta
from server.demo_data import DEMO_PASSWORD, seed_demo
from server.runtime import Runtime
from tests.support.command_log import CommandLog
from tests.support.graphql_client import STRONG_PASSWORD, GraphQLClient

READS = {"find": "filter", "count": "query", "findAndModify": "query"}
WRITES = {"update": "updates", "delete": "deletes"}
SESSION_FIELDS = {
    "lsid",
    "txnNumber",
    "autocommit",
    "startTransaction",
    "readConcern",
    "writeConcern",
}

TOUR_AS_POSTER = [
    "{ tasks(first: 5) { edges { node { id poster { name } myOffer { id } } } } }",
    '{ tasks(first: 5, sort: BUDGET_HIGH, filter: {category: "gardening"}) { edges { node { id } } } }',
    '{ tasks(first: 5, filter: {text: "lawn mow", minBudget: 1000, maxBudget: 90000, currency: "AUD"}) { edges { node { id } } } }',
    "{ tasks(first: 5, filter: {statuses: [ASSIGNED, COMPLETED]}, sort: BUDGET_LOW) { edges { node { id } } } }",
    "{ myTasks(first: 5) { edges { node { id offers(first: 5) { edges { node { id tasker { name } } } } } } } }",
    "{ myBookings(first: 5) { edges { node { id } } } myReviews(first: 5) { edges { node { id } } } }",
    "{ myNotifications(first: 5, unreadOnly: true) { edges { node { id task { id } } } } unreadNotificationCount }",
    "{ me { sessions(first: 5) { edges { node { id } } } customerProfile { savedAddresses { id } } } }",
    '{ searchProviders(first: 5, filter: {category: "cleaning", minRating: 3}) { edges { node { user { name } } } } }',
    '{ searchProviders(first: 5, sort: PRICE, filter: {minPrice: 1000, maxPrice: 9000, currency: "AUD"}) { edges { node { user { id } } } } }',
]
TOUR_AS_PROVIDER = [
    "{ myTasks(role: TASKER, first: 5) { edges { node { id } } } myOffers(first: 5) { edges { node { task { title } } } } }",
    "{ myBookings(role: PROVIDER, first: 5) { edges { node { id } } } }",
    "{ me { id providerProfile { packages { id } rating { average } } reviews(first: 5) { edges { node { id } } } } }",
]
TOUR_AS_ADMIN = [
    "{ auditEvents(first: 5) { edges { node { id user { id } } } } }",
    "{ auditEvents(first: 5, kind: LOGIN_SUCCEEDED) { edges { node { id } } } }",
]


def _merged(filter_: dict[str, Any]) -> dict[str, Any]:
    """`{$and: [a, b]}` as `{**a, **b}` when no key repeats; what MongoDB's planner does."""
    clauses = filter_.get("$and")
    if not clauses or len(filter_) != 1:
        return filter_
    parts = [_merged(clause) for clause in clauses]
    keys = [key for part in parts for key in part]
    return (
        {k: v for part in parts for k, v in part.items()}
        if len(keys) == len(set(keys))
        else filter_
    )


def _reads(command: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(collection, filter, sort) of what one recorded command reads; none for geo or inserts."""
    name = next(iter(command))
    collection = command[name]
    if name in READS:
        return [
            (collection, _merged(command.get(READS[name]) or {}), dict(command.get("sort") or {}))
        ]
    if name in WRITES:
        return [(collection, _merged(s["q"]), {}) for s in command.get(WRITES[name], [])]
    if name == "aggregate" and not any("$geoNear" in stage for stage in command["pipeline"]):
        first = command["pipeline"][0]
        return [(collection, _merged(first.get("$match", {})), {})]
    return []


def _served(filter_: dict[str, Any], sort: dict[str, Any], indexes: list[list[str]]) -> bool:
    constrained = {key for key in filter_ if not key.startswith("$")}
    if constrained:
        # Every collection has its _id index, even one not created yet.
        return "_id" in constrained or any(fields[0] in constrained for fields in indexes)
    wanted = list(sort)
    return not wanted or any(fields[: len(wanted)] == wanted for fields in indexes)


async def test_every_query_of_the_tour_uses_an_index(
    runtime: Runtime, client: GraphQLClient, command_log: CommandLog
) -> None:
    await seed_demo(runtime.services, tasks=300, providers=40, posters=20, seed=11)
    await create_admin(
        runtime.services,
        RequestMeta(),
        name="Root",
        email="root@example.com",
        password=STRONG_PASSWORD,
    )
    poster = await client.login("poster1@demo.gigql.test", DEMO_PASSWORD)
    provider = await client.login("provider1@demo.gigql.test", DEMO_PASSWORD)
    admin = await client.login("root@example.com")
    counter = itertools.count()
    recorded: list[dict[str, Any]] = []

    async def run(
        query: str, token: str | None, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        request_id = f"index-tour-{next(counter):04d}"
        with command_log.recording(request_id):
            result = await client.execute(
                query, variables, token=token, headers={"X-Request-ID": request_id}
            )
            recorded.extend(command_log.documents)
        assert "errors" not in result, (query, result)
        return result

    for query in TOUR_AS_POSTER:
        await run(query, poster.access)
    for query in TOUR_AS_PROVIDER:
        await run(query, provider.access)
    for query in TOUR_AS_ADMIN:
        await run(query, admin.access)
    # Writes: an offer on an open task, accepted; a slot looked up; notifications read.
    open_task = await run(
        "{ myTasks(first: 1, statuses: [OPEN]) { edges { node { id } } } }", poster.access
    )
    task_id = open_task["data"]["myTasks"]["edges"][0]["node"]["id"]
    offer = await client.mutate(
        "makeOffer",
        {"taskId": task_id, "amount": {"amount": 9000, "currency": "AUD"}, "message": "Index tour"},
        "offer { id }",
        token=provider.access,
    )
    accept = "mutation($i: AcceptOfferInput!) { acceptOffer(input: $i) { errors { code } } }"
    await run(accept, poster.access, {"i": {"offerId": offer["offer"]["id"]}})
    await run("mutation { markNotificationsRead(input: {}) { marked } }", provider.access)
    packages = await run("{ me { providerProfile { packages { id } } } }", provider.access)
    package_id = packages["data"]["me"]["providerProfile"]["packages"][0]["id"]
    slots = "query($p: ID!, $k: ID!, $d: Date!) { availableSlots(providerId: $p, packageId: $k, date: $d) }"
    await run(
        slots,
        poster.access,
        {
            "p": provider.user_id,
            "k": package_id,
            "d": (date.today() + timedelta(days=3)).isoformat(),
        },
    )

    checked = 0
    indexes: dict[str, list[list[str]]] = {}
    for command in recorded:
        for collection, filter_, sort in _reads(command):
            if collection not in indexes:
                listed = await (await runtime.database[collection].list_indexes()).to_list()
                indexes[collection] = [list(index["key"]) for index in listed]
            assert _served(filter_, sort, indexes[collection]), (collection, filter_, sort)
            checked += 1
    assert checked >= 40, checked  # the tour really exercised the database


def test_no_two_indexes_of_a_document_have_the_same_fields() -> None:
    """Beanie keys declared indexes by their sorted fields and keeps only the last of two
    that share them: a second index on (b, a) silently drops a unique one on (a, b)."""
    for model in ALL_DOCUMENTS:
        # get_settings() holds Beanie's IndexModelFields, whose `fields` are sorted.
        declared = [index.fields for index in model.get_settings().indexes]
        assert len(declared) == len(set(declared)), (model.__name__, declared)
