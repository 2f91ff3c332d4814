"""Exact places cannot be worked out from what others may observe.

A task's exact place is for its poster, its tasker and admins; a provider's home for
them and admins. Everyone else sees an area, a point on a fixed grid, and every number
measured for them (distances, the order by distance, the radius searched, a provider's
service radius, the cursors of such a search) is measured from that area. The tests
attack as a stranger would: from four points around the place, they read the distances
shown, the distances inside the cursors, and the edge of the radius filter found by
bisection, solve for the position, and must land on the public area, not the place.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Awaitable, Callable
from typing import Any

from bson import json_util

from documents.geo import fill_in_areas
from documents.marketplace.tasks import Task
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import object_id, place, post_task, poster, tasker

LatLon = tuple[float, float]

HOME = (-33.8655, 151.2045)
"""The exact place: 0.0045° from its grid point in both directions, about 650 m."""
AREA = (-33.87, 151.20)
"""Its area: both coordinates rounded to two decimals."""
AROUND = [(0.027, 0.02), (0.02, -0.03), (-0.03, 0.025), (-0.025, -0.02)]
"""Where the stranger asks from: offsets of 2 to 4 km from the place."""
SEARCH_KM = 20.0
EARTH_KM = 6371.0

TASKS_NEAR = """query($near: NearInput!) {
  tasks(first: 5, filter: {near: $near}, sort: DISTANCE) {
    edges { cursor node { id distanceKm area { point { latitude longitude } } } } } }"""
PROVIDERS_NEAR = """query($near: NearInput!) {
  searchProviders(first: 5, filter: {near: $near}, sort: DISTANCE) {
    edges { cursor node { distanceKm user { id }
      profile { area { point { latitude longitude } } } } } } }"""


def km_between(a: LatLon, b: LatLon) -> float:
    """Great-circle distance (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2
    h += math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_KM * math.asin(math.sqrt(h))


def trilaterate(observations: list[tuple[LatLon, float]]) -> LatLon:
    """The position whose distances (km) to the observation points fit best: the circle
    equations minus the first one are linear in the position, solved by least squares
    on a plane tangent at the first point (good to metres over a few kilometres)."""
    (origin, first_km), rest = observations[0], observations[1:]
    scale = math.radians(EARTH_KM)  # km per degree of latitude

    def plane(at: LatLon) -> tuple[float, float]:
        return (
            (at[1] - origin[1]) * scale * math.cos(math.radians(origin[0])),
            (at[0] - origin[0]) * scale,
        )

    rows, values = [], []
    for at, km in rest:
        x, y = plane(at)
        rows.append((2 * x, 2 * y))
        values.append(x * x + y * y - km * km + first_km * first_km)
    a11 = sum(r[0] * r[0] for r in rows)
    a12 = sum(r[0] * r[1] for r in rows)
    a22 = sum(r[1] * r[1] for r in rows)
    b1 = sum(r[0] * v for r, v in zip(rows, values, strict=True))
    b2 = sum(r[1] * v for r, v in zip(rows, values, strict=True))
    det = a11 * a22 - a12 * a12
    x, y = (b1 * a22 - b2 * a12) / det, (a11 * b2 - a12 * b1) / det
    return (
        origin[0] + y / scale,
        origin[1] + x / (scale * math.cos(math.radians(origin[0]))),
    )


def cursor_metres(cursor: str) -> float:
    """The distance a cursor carries, read as a client would: the first value of the JSON
    list inside it, wherever the list starts."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    for start in (i for i, byte in enumerate(raw) if byte == ord("[")):
        try:
            values = json_util.loads(raw[start:])
        except ValueError:
            continue
        if isinstance(values, list) and isinstance(values[0], int | float):
            return float(values[0])
    raise AssertionError(f"no distance in the cursor {cursor!r}")


def near(at: LatLon, radius_km: float = SEARCH_KM) -> dict[str, Any]:
    return {"latitude": at[0], "longitude": at[1], "radiusKm": radius_km}


def observation_points() -> list[LatLon]:
    return [(HOME[0] + dlat, HOME[1] + dlon) for dlat, dlon in AROUND]


async def radius_edge(
    found_within: Callable[[LatLon, float], Awaitable[bool]], at: LatLon
) -> float:
    """The smallest radius around `at` that finds the place, by bisection (to 1 cm)."""
    low, high = 0.0, SEARCH_KM
    assert await found_within(at, high)
    while high - low > 0.00001:
        middle = (low + high) / 2
        low, high = (low, middle) if await found_within(at, middle) else (middle, high)
    return high


def assert_only_the_area_is_found(solved: LatLon, how: str) -> None:
    off_home, off_area = km_between(solved, HOME), km_between(solved, AREA)
    # The attack works (it finds the area to within metres) and finds nothing better:
    # the exact place stays as far as the area is from it, about 650 m.
    assert off_area < 0.03, f"{how}: solved {solved}, {off_area * 1000:.0f} m from the area"
    assert off_home > km_between(AREA, HOME) - 0.03, (
        f"{how}: solved {solved}, {off_home * 1000:.0f} m from the exact place"
    )


async def test_a_tasks_distances_radius_and_cursors_give_away_its_area_only(
    client: GraphQLClient,
) -> None:
    ann = await poster(client, "ann@example.com")
    task = await post_task(client, ann, location=place(*HOME))
    stranger = await tasker(client, "mallory@example.com")

    async def found_within(at: LatLon, radius_km: float) -> bool:
        data = await client.data(TASKS_NEAR, {"near": near(at, radius_km)}, token=stranger.access)
        return any(edge["node"]["id"] == task["id"] for edge in data["tasks"]["edges"])

    shown, in_cursors, edges = [], [], []
    for at in observation_points():
        data = await client.data(TASKS_NEAR, {"near": near(at)}, token=stranger.access)
        [edge] = data["tasks"]["edges"]
        assert edge["node"]["area"]["point"] == {"latitude": AREA[0], "longitude": AREA[1]}
        shown.append((at, edge["node"]["distanceKm"]))
        in_cursors.append((at, cursor_metres(edge["cursor"]) / 1000))
        edges.append((at, await radius_edge(found_within, at)))

    assert_only_the_area_is_found(trilaterate(shown), "distanceKm")
    assert_only_the_area_is_found(trilaterate(in_cursors), "cursors")
    assert_only_the_area_is_found(trilaterate(edges), "radius bisection")


async def test_even_the_poster_is_measured_from_the_area(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    await post_task(client, ann, location=place(*HOME))
    data = await client.data(TASKS_NEAR, {"near": near(HOME)}, token=ann.access)
    # From the very doorstep: the distance to the area, the same for everyone.
    [edge] = data["tasks"]["edges"]
    assert abs(edge["node"]["distanceKm"] - km_between(HOME, AREA)) < 0.01


async def test_a_providers_distances_radius_and_cursors_give_away_their_area_only(
    client: GraphQLClient,
) -> None:
    tom = await tasker(client, "tom@example.com")
    listed = await client.mutate(
        "updateProviderProfile",
        {"location": place(*HOME), "serviceRadiusKm": 50, "skills": ["gardening"]},
        token=tom.access,
    )
    assert listed["errors"] == []
    stranger = await poster(client, "mallory@example.com")

    async def found_within(at: LatLon, radius_km: float) -> bool:
        data = await client.data(PROVIDERS_NEAR, {"near": near(at, radius_km)})
        return any(e["node"]["user"]["id"] == tom.user_id for e in data["searchProviders"]["edges"])

    shown, in_cursors, edges = [], [], []
    for at in observation_points():
        data = await client.data(PROVIDERS_NEAR, {"near": near(at)}, token=stranger.access)
        [edge] = data["searchProviders"]["edges"]
        assert edge["node"]["profile"]["area"]["point"] == {
            "latitude": AREA[0],
            "longitude": AREA[1],
        }
        shown.append((at, edge["node"]["distanceKm"]))
        in_cursors.append((at, cursor_metres(edge["cursor"]) / 1000))
        edges.append((at, await radius_edge(found_within, at)))

    assert_only_the_area_is_found(trilaterate(shown), "distanceKm")
    assert_only_the_area_is_found(trilaterate(in_cursors), "cursors")
    assert_only_the_area_is_found(trilaterate(edges), "radius bisection")


async def test_a_providers_service_radius_is_drawn_around_their_area(
    client: GraphQLClient,
) -> None:
    tom = await tasker(client, "tom@example.com")
    listed = await client.mutate(
        "updateProviderProfile", {"location": place(*HOME), "serviceRadiusKm": 1}, token=tom.access
    )
    assert listed["errors"] == []
    # 0.67 km north of the home but 1.24 km from the area; and the other way round.
    near_home = (HOME[0] + 0.006, HOME[1])
    near_area = (AREA[0] - 0.006, AREA[1])
    assert km_between(near_home, HOME) < 1 < km_between(near_home, AREA)
    assert km_between(near_area, AREA) < 1 < km_between(near_area, HOME)

    async def names_from(at: LatLon) -> list[str]:
        data = await client.data(PROVIDERS_NEAR, {"near": near(at, 25)})
        return [e["node"]["user"]["id"] for e in data["searchProviders"]["edges"]]

    assert await names_from(near_home) == []
    assert await names_from(near_area) == [tom.user_id]


async def test_the_area_is_the_same_grid_point_on_every_request(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    task = await post_task(client, ann, location=place(*HOME))
    query = "query($id: ID!) { node(id: $id) { ... on Task { area { point { latitude longitude } } } } }"
    seen = {
        tuple((await client.data(query, {"id": task["id"]}))["node"]["area"]["point"].values())
        for _ in range(5)
    }
    # Stable, so that averaging many answers tells nothing more than one.
    assert seen == {AREA}


async def test_places_stored_before_areas_existed_are_found_once_filled_in(
    client: GraphQLClient,
) -> None:
    ann = await poster(client, "ann@example.com")
    task = await post_task(client, ann, location=place(*HOME))
    tasks = Task.get_pymongo_collection()
    await tasks.update_one({"_id": object_id(task["id"])}, {"$unset": {"place.area": ""}})
    assert (await client.data(TASKS_NEAR, {"near": near(HOME)}))["tasks"]["edges"] == []

    assert await fill_in_areas(Task) == 1
    assert await fill_in_areas(Task) == 0
    [edge] = (await client.data(TASKS_NEAR, {"near": near(HOME)}))["tasks"]["edges"]
    assert edge["node"]["id"] == task["id"]
    stored = await tasks.find_one({"_id": object_id(task["id"])})
    assert stored is not None and stored["place"]["area"]["coordinates"] == [AREA[1], AREA[0]]
