"""Finding providers: each filter, each order, paging, and who never shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pytest

from documents.accounts.profiles import ProviderProfile
from server.runtime import Runtime
from tests.support.command_log import CommandLog
from tests.support.graphql_client import STRONG_PASSWORD, GraphQLClient, Tokens, graphql_error_codes
from tests.support.marketplace import SYDNEY, logged_in_admin, object_id, place

SEARCH = """query($first: Int, $after: String, $filter: ProviderFilter, $sort: ProviderSort!) {
  searchProviders(first: $first, after: $after, filter: $filter, sort: $sort) {
    edges { cursor node { distanceKm user { id name providerProfile { bio } }
      profile { rating { average count } hourlyRate { amount currency } } } }
    pageInfo { hasNextPage hasPreviousPage endCursor } } }"""

CITY = (SYDNEY["latitude"], SYDNEY["longitude"])
EAST = (SYDNEY["latitude"], 151.30)  # 8.38 km east of the city point
WEEKDAYS = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"]
WEEKEND = ["SATURDAY", "SUNDAY"]


def next_weekday(weekday: int) -> date:
    """The first such weekday (0 = Monday) at least a week ahead."""
    day = date.today() + timedelta(days=7)
    return day + timedelta(days=(weekday - day.weekday()) % 7)


SATURDAY = next_weekday(5)
MONDAY = next_weekday(0)


@dataclass(frozen=True)
class Listing:
    skills: list[str]
    rate: tuple[int, str]
    at: tuple[float, float] | None = CITY
    radius_km: int = 10
    days: list[str] = field(default_factory=lambda: WEEKDAYS)
    available: bool = True
    rating: float | None = None


async def list_provider(client: GraphQLClient, name: str, listing: Listing) -> Tokens:
    who = await client.member(f"{name.lower()}@example.com", name=name, roles=("TASKER", "POSTER"))
    amount, currency = listing.rate
    profile = await client.mutate(
        "updateProviderProfile",
        {
            "bio": f"I am {name}.",
            "skills": listing.skills,
            "hourlyRate": {"amount": amount, "currency": currency},
            "location": place(*listing.at) if listing.at else None,
            "serviceRadiusKm": listing.radius_km,
            "available": listing.available,
        },
        token=who.access,
    )
    assert profile["errors"] == [], profile
    hours = [{"weekday": d, "ranges": [{"start": "09:00", "end": "17:00"}]} for d in listing.days]
    assert (await client.mutate("setWeeklyHours", {"days": hours}, token=who.access))[
        "errors"
    ] == []
    if listing.rating is not None:
        # Ratings come from reviews (tests/marketplace/test_reviews.py); here they are given directly.
        await ProviderProfile.get_pymongo_collection().update_one(
            {"_id": object_id(who.user_id)},
            {"$set": {"rating": {"sum": 0, "count": 1, "average": listing.rating}}},
        )
    return who


async def day_off(client: GraphQLClient, who: Tokens, day: date, *ranges: tuple[str, str]) -> None:
    kind = "EXTRA_HOURS" if day.weekday() >= 5 else "UNAVAILABLE"
    given = [{"start": start, "end": end} for start, end in ranges]
    payload = await client.mutate(
        "setScheduleException",
        {"date": day.isoformat(), "kind": kind, "ranges": given},
        token=who.access,
    )
    assert payload["errors"] == [], payload


@pytest.fixture
async def market(runtime: Runtime, client: GraphQLClient) -> dict[str, Tokens]:
    """Providers in and around the city; Eve, Fay and Ivy may no longer be shown."""
    people = {
        "Amy": Listing(["cleaning", "gardening"], (4000, "AUD"), rating=4.5),
        "Ben": Listing(["gardening"], (3000, "AUD"), at=EAST, radius_km=5),
        "Cat": Listing(
            ["gardening"], (5000, "AUD"), at=EAST, radius_km=20, days=WEEKEND, rating=3.0
        ),
        "Dan": Listing(["plumbing"], (6000, "USD"), at=None, days=[]),
        "Gus": Listing(["gardening"], (3500, "AUD")),
        "Hal": Listing(["gardening"], (4500, "AUD"), available=False, rating=4.0),
        "Eve": Listing(["gardening"], (2000, "AUD"), rating=5.0),
        "Fay": Listing(["gardening"], (2000, "AUD"), rating=4.8),
        "Ivy": Listing(["gardening"], (2000, "AUD"), rating=4.9),
    }
    tokens = {name: await list_provider(client, name, listing) for name, listing in people.items()}
    await day_off(client, tokens["Amy"], SATURDAY, ("10:00", "14:00"))  # extra hours
    await day_off(client, tokens["Ben"], MONDAY)  # the whole day
    await day_off(client, tokens["Gus"], MONDAY, ("09:00", "12:00"))  # the morning only

    root = await logged_in_admin(client, runtime)
    suspended = await client.mutate(
        "suspendUser", {"userId": tokens["Eve"].user_id, "reason": "fraud"}, token=root.access
    )
    deleted = await client.mutate(
        "deleteMyAccount", {"password": STRONG_PASSWORD}, token=tokens["Fay"].access
    )
    retired = await client.mutate(
        "updateProfile", {"roles": ["POSTER"]}, token=tokens["Ivy"].access
    )
    assert [suspended["errors"], deleted["errors"], retired["errors"]] == [[], [], []]
    return tokens


async def search(client: GraphQLClient, sort: str = "RATING", **variables: Any) -> dict[str, Any]:
    data = await client.data(SEARCH, {"sort": sort, **variables})
    connection: dict[str, Any] = data["searchProviders"]
    return connection


async def names(client: GraphQLClient, sort: str = "RATING", **filter: Any) -> list[str]:
    found = await search(client, sort, filter=filter)
    return [edge["node"]["user"]["name"] for edge in found["edges"]]


def unrated(tokens: dict[str, Tokens], *people: str) -> list[str]:
    """Unrated providers sort by id, newest first."""
    return sorted(people, key=lambda name: object_id(tokens[name].user_id), reverse=True)


async def test_each_filter(client: GraphQLClient, market: dict[str, Tokens]) -> None:
    everyone = ["Amy", "Hal", "Cat", *unrated(market, "Ben", "Dan", "Gus")]
    assert await names(client) == everyone
    assert await names(client, category="Gardening") == [
        "Amy",
        "Hal",
        "Cat",
        *unrated(market, "Ben", "Gus"),
    ]
    assert await names(client, category="cleaning") == ["Amy"]
    assert await names(client, minRating=4) == ["Amy", "Hal"]
    assert await names(client, minRating=4.5) == ["Amy"]
    assert await names(client, category="gardening", minRating=4.5) == ["Amy"]
    assert await names(client, minPrice=3000, maxPrice=4000, currency="aud") == [
        "Amy",
        *unrated(market, "Ben", "Gus"),
    ]
    assert await names(client, maxPrice=3000, currency="AUD") == ["Ben"]
    assert await names(client, currency="USD") == ["Dan"]
    assert await names(client, availableOn=SATURDAY.isoformat()) == ["Amy", "Cat"]
    assert await names(client, availableOn=MONDAY.isoformat()) == ["Amy", "Gus"]


async def test_near_a_point_within_both_radii(
    client: GraphQLClient, market: dict[str, Tokens]
) -> None:
    city = {"latitude": CITY[0], "longitude": CITY[1]}
    east = {"latitude": EAST[0], "longitude": EAST[1]}
    # Ben is 8.4 km out but comes only 5 km; Dan has no place.
    assert await names(client, near={**city, "radiusKm": 25}) == ["Amy", "Hal", "Cat", "Gus"]
    assert await names(client, near={**city, "radiusKm": 5}) == ["Amy", "Hal", "Gus"]
    # From the east, Amy, Hal and Gus (10 km radius) reach; Ben is right there.
    assert await names(client, near={**east, "radiusKm": 25}) == [
        "Amy",
        "Hal",
        "Cat",
        *unrated(market, "Ben", "Gus"),
    ]
    assert await names(client, near={**east, "radiusKm": 1}) == ["Cat", "Ben"]


async def test_each_order(client: GraphQLClient, market: dict[str, Tokens]) -> None:
    near = {"latitude": CITY[0], "longitude": CITY[1], "radiusKm": 25}
    nearest = await search(client, "DISTANCE", filter={"near": near})
    at_city = sorted(["Amy", "Gus", "Hal"], key=lambda name: object_id(market[name].user_id))
    # Measured from their areas, (-33.87, 151.21) and (-33.87, 151.30), not their homes.
    assert [(e["node"]["user"]["name"], e["node"]["distanceKm"]) for e in nearest["edges"]] == [
        *((name, 0.148) for name in at_city),
        ("Cat", 8.384),
    ]
    cheapest = await names(client, "PRICE", currency="AUD")
    assert cheapest == ["Ben", "Gus", "Amy", "Hal", "Cat"]
    rated = await search(client)
    assert [e["node"]["profile"]["rating"]["average"] for e in rated["edges"]] == [
        4.5,
        4.0,
        3.0,
        None,
        None,
        None,
    ]
    first = rated["edges"][0]["node"]
    assert first["distanceKm"] is None and first["user"]["providerProfile"] == {"bio": "I am Amy."}
    assert first["profile"]["hourlyRate"] == {"amount": 4000, "currency": "AUD"}


@pytest.mark.parametrize(
    ("sort", "filter"),
    [
        ("RATING", {}),
        ("PRICE", {"currency": "AUD"}),
        ("DISTANCE", {"near": {"latitude": EAST[0], "longitude": EAST[1], "radiusKm": 50}}),
    ],
)
async def test_paging_through_every_provider_once(
    client: GraphQLClient, market: dict[str, Tokens], sort: str, filter: dict[str, Any]
) -> None:
    everyone = await names(client, sort, **filter)
    seen: list[str] = []
    after = None
    while True:
        page = await search(client, sort, first=2, after=after, filter=filter)
        assert len(page["edges"]) == 2 or not page["pageInfo"]["hasNextPage"]
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        seen += [edge["node"]["user"]["name"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == everyone and len(set(seen)) == len(seen) >= 5
    assert not {"Eve", "Fay", "Ivy", "Deleted user"} & set(seen)


async def test_bad_searches_are_refused(client: GraphQLClient, market: dict[str, Tokens]) -> None:
    near = {"latitude": CITY[0], "longitude": CITY[1]}
    cases = {
        "negative radius": ("RATING", {"near": {**near, "radiusKm": -1}}, "near"),
        "rating too low": ("RATING", {"minRating": 0.5}, "minRating"),
        "rating too high": ("RATING", {"minRating": 5.5}, "minRating"),
        "min above max": (
            "RATING",
            {"minPrice": 5000, "maxPrice": 4000, "currency": "AUD"},
            "minPrice",
        ),
        "negative price": ("RATING", {"minPrice": -1, "currency": "AUD"}, "minPrice"),
        "unknown currency": ("RATING", {"currency": "XYZ"}, "currency"),
        "price without currency": ("RATING", {"maxPrice": 4000}, "currency"),
        "distance without a point": ("DISTANCE", {}, "sort"),
        "price order without currency": ("PRICE", {}, "sort"),
    }
    for case, (sort, given, field_name) in cases.items():
        result = await client.execute(SEARCH, {"sort": sort, "filter": given})
        assert graphql_error_codes(result) == ["INVALID_INPUT"], case
        assert result["errors"][0]["extensions"]["field"] == field_name, case


async def test_a_page_costs_two_round_trips_whatever_its_size(
    client: GraphQLClient, command_log: CommandLog
) -> None:
    for i in range(12):
        await list_provider(client, f"P{i:02d}", Listing(["gardening"], (3000 + i, "AUD")))
    costs = {}
    for first in (3, 10):
        request_id = f"providers-cost-{first:04d}"
        with command_log.recording(request_id) as commands:
            data = await client.data(
                SEARCH,
                {"sort": "PRICE", "first": first, "filter": {"currency": "AUD"}},
                headers={"X-Request-ID": request_id},
            )
        edges = data["searchProviders"]["edges"]
        assert [e["node"]["user"]["providerProfile"]["bio"] for e in edges] == [
            f"I am P{i:02d}." for i in range(first)
        ]
        costs[first] = list(commands)
    # The profiles, then their accounts; the nested profile is the one already read.
    assert costs[3] == costs[10] == [("find", "provider_profiles"), ("find", "users")], costs


async def test_hidden_providers_cost_a_round_trip_to_top_the_page_up(
    client: GraphQLClient, market: dict[str, Tokens], command_log: CommandLog
) -> None:
    with command_log.recording("providers-top-up") as commands:
        found = await client.data(
            SEARCH, {"first": 2, "sort": "RATING"}, headers={"X-Request-ID": "providers-top-up"}
        )
    # Eve, Ivy and Fay, the best rated, are read and dropped; Amy and Hal fill the page.
    assert [e["node"]["user"]["name"] for e in found["searchProviders"]["edges"]] == ["Amy", "Hal"]
    assert commands == [("find", "provider_profiles"), ("find", "users")] * 2
