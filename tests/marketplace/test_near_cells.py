"""Searching near a point by grid cells gives what `$geoNear` gave: the same places, the
same distances to the bit, the same orders, pages, cursors and `hasNextPage`, over
random places near cell edges, across the antimeridian, near the poles, and exactly on
the radius searched and on a provider's service radius."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from bson import ObjectId
from pymongo import GEOSPHERE, IndexModel

from documents.accounts.profiles import ProviderProfile
from documents.geo import Address, GeoPoint, Place, fill_in_areas
from documents.geo_cells import CELL_NAMES, CELLS_FIELD, SIDES, area_cells, covering, great_circle_m
from documents.marketplace.tasks import Task, TaskStatus
from documents.money import Money
from resolvers.common.cursors import CursorKey, Cursors
from resolvers.common.pagination import Page, PageRequest, paginate_outwards, paginate_pipeline
from resolvers.marketplace.discovery import (
    ORDERS,
    WITHIN_SERVICE_RADIUS,
    ProviderSort,
    within_service_radius,
)
from resolvers.marketplace.task_search import (
    MAX_RADIUS_KM,
    Near,
    TaskQuery,
    TaskSort,
    measure,
    near_stages,
    outwards,
    search_tasks,
)
from resolvers.marketplace.task_search import ORDERS as TASK_ORDERS
from tests.conftest import TEST_JWT_SECRET

ADDRESS = Address(line1="1 Test St", city="Testville", country="AU")
CURSORS = CursorKey(TEST_JWT_SECRET).of("Query.searchProviders")
# Where places gather: a city, both sides of the antimeridian, both poles' surroundings.
CLUSTERS = [(-33.87, 151.21, 0.6), (-17.5, 179.9, 0.6), (87.0, 0.0, 3.0), (-88.5, 60.0, 1.5)]


def _near(rng: random.Random, latitude: float, longitude: float, spread: float) -> GeoPoint:
    lat = max(-90.0, min(90.0, latitude + rng.uniform(-spread, spread)))
    lng = (longitude + rng.uniform(-spread, spread) + 180) % 360 - 180
    return GeoPoint.at(lat, lng)


def _profile(rng: random.Random, point: GeoPoint, radius_km: int) -> dict[str, Any]:
    rated = rng.random() < 0.7
    return {
        "_id": ObjectId(),
        "place": Place(point=point, address=ADDRESS).model_dump(),
        "service_radius_km": radius_km,
        "rating": {
            "sum": 0,
            "count": int(rated),
            "average": rng.choice([3.0, 4.5, 5.0]) if rated else None,
        },
        "hourly_rate": {"amount": rng.choice([3000, 4500, 6000]), "currency": "AUD"},
    }


def _geo_near(near: Near, query: dict[str, Any]) -> dict[str, Any]:
    """The stage searches sent before cells."""
    return {
        "$geoNear": {
            "near": {"type": "Point", "coordinates": [near.longitude, near.latitude]},
            "distanceField": "distance",
            "maxDistance": near.radius_km * 1000,
            "query": query,
            "key": "place.area",
            "spherical": True,
        }
    }


@pytest.fixture
async def geo_index() -> AsyncIterator[None]:
    """The 2dsphere indexes `$geoNear` needs, for the comparison (places no longer have
    them)."""
    index = IndexModel([("place.area", GEOSPHERE)], **{"2dsphereIndexVersion": 3})
    made = []
    for model in (ProviderProfile, Task):
        collection = model.get_pymongo_collection()
        made += [(collection, name) for name in await collection.create_indexes([index])]
    yield
    for collection, name in made:
        await collection.drop_index(name)


def _searches(rng: random.Random, profiles: list[dict[str, Any]]) -> list[Near]:
    searches = []
    for latitude, longitude, spread in CLUSTERS:
        for radius_km in (0.3, 2.0, 9.0, 25.0, 60.0, 180.0, MAX_RADIUS_KM):
            point = _near(rng, latitude, longitude, spread)
            searches.append(Near(point.latitude, point.longitude, radius_km))
    # Exactly on the radius: a place measured from a point, then searched for at that distance.
    for profile in rng.sample(profiles, 12):
        longitude, latitude = profile["place"]["area"]["coordinates"]
        point = _near(rng, latitude, longitude, 0.3)
        metres = great_circle_m(latitude, longitude, point.latitude, point.longitude)
        searches.append(Near(point.latitude, point.longitude, metres / 1000))
    return searches


async def _seed(rng: random.Random) -> list[dict[str, Any]]:
    profiles = [
        _profile(rng, _near(rng, *cluster), rng.choice([1, 5, 10, 30, 100, 500]))
        for cluster in CLUSTERS
        for _ in range(150)
    ]
    # On cell edges: areas on multiples of every cell side, and either side of them.
    for side in SIDES:
        for step in (-1, 0, 1):
            lat, lng = -33.0 + (side * 3 + step) / 100, 151.0 + (side * 2 + step) / 100
            profiles.append(_profile(rng, GeoPoint.at(lat, lng), 500))
    await ProviderProfile.get_pymongo_collection().insert_many(profiles)
    return profiles


async def _aggregate(stages: list[dict[str, Any]]) -> list[tuple[ObjectId, float]]:
    pipeline = [*stages, WITHIN_SERVICE_RADIUS, {"$sort": {"distance": 1, "_id": 1}}]
    cursor = await ProviderProfile.get_pymongo_collection().aggregate(pipeline)
    return [(raw["_id"], raw["distance"]) for raw in await cursor.to_list()]


def test_every_area_within_reach_is_in_the_covering() -> None:
    """And, past a cursor's distance, every area from that distance out."""
    rng = random.Random(16)  # noqa: S311 - test data, not secrets
    checked = 0
    for _ in range(400):
        latitude, longitude, spread = rng.choice(CLUSTERS)
        centre = _near(rng, latitude, longitude, spread * 3)
        radius_m = rng.choice([100.0, 1_000.0, 20_000.0, 120_000.0, MAX_RADIUS_KM * 1000])
        beyond_m = rng.choice([0.0, 0.0, rng.uniform(0, radius_m)])
        cells = set(covering(centre.latitude, centre.longitude, radius_m, beyond_m))
        size = {cell // 100_000_000 for cell in cells}
        # None when no area at all lies within reach (areas are 0.01° apart).
        assert len(size) <= 1, "one cell size per search"
        for _ in range(200):
            spread = rng.choice([6.0, radius_m / 80_000])
            area = _near(rng, centre.latitude, centre.longitude, spread).approximate()
            metres = great_circle_m(
                area.latitude, area.longitude, centre.latitude, centre.longitude
            )
            if beyond_m <= metres <= radius_m:
                [cell] = [
                    c for c in area_cells(area.latitude, area.longitude) if c // 100_000_000 in size
                ]
                assert cell in cells, (centre, radius_m, beyond_m, area)
                checked += 1
    assert checked > 10_000


async def test_the_same_places_and_distances_as_geo_near(geo_index: None) -> None:
    rng = random.Random(6)  # noqa: S311 - test data, not secrets
    profiles = await _seed(rng)
    searches = _searches(rng, profiles)
    found = 0
    for near in searches:
        old = await _aggregate([_geo_near(near, {})])
        new = await _aggregate(near_stages(near, {}))
        assert new == old, near
        found += len(old)
    assert found > 500, "the searches found places"
    filters = {"$and": [{"rating.average": {"$gte": 4.0}}]}
    for near in searches[:10]:
        assert await _aggregate(near_stages(near, filters)) == await _aggregate(
            [_geo_near(near, filters)]
        )


async def test_on_the_service_radius_itself(geo_index: None) -> None:
    """A provider is shown when the point is exactly as far as their service radius, as
    measured, and not when it is the least bit farther: as `$geoNear` showed them."""
    area = GeoPoint.at(-33.87, 151.21)
    rng = random.Random(2)  # noqa: S311 - test data, not secrets
    collection = ProviderProfile.get_pymongo_collection()
    edges = 0
    for step in range(40):
        # Points north-east of the area, about 10 km away.
        lat, lng = area.latitude + 0.06 + step / 997, area.longitude + 0.05
        metres = great_circle_m(area.latitude, area.longitude, lat, lng)
        exact = metres / 1000
        while exact * 1000 < metres:
            exact = math.nextafter(exact, math.inf)
        if exact * 1000 != metres:
            continue  # no number of km is this distance exactly
        edges += 1
        on, short = _profile(rng, area, 10), _profile(rng, area, 10)
        on["service_radius_km"], short["service_radius_km"] = exact, math.nextafter(exact, 0)
        await collection.insert_many([on, short])
        near = Near(lat, lng, 50)
        old = await _aggregate([_geo_near(near, {})])
        assert await _aggregate(near_stages(near, {})) == old
        assert [found for found, _ in old] == [on["_id"]]
        await collection.delete_many({})
    assert edges > 5


Read = Callable[[PageRequest], Awaitable[Page[Any]]]


async def _walk(read: Read, size: int, cursors: Cursors = CURSORS) -> list[Any]:
    """Every page, from the first on by cursor: cursors, ids, distances, `hasNextPage`."""
    walked: list[Any] = []
    after = None
    while True:
        page = await read(PageRequest(size, after, cursors))
        items = [(cursor.text, profile.id) for cursor, profile in page.items]
        walked.append((items, page.computed, page.has_next_page))
        if not page.has_next_page:
            return walked
        after = page.items[-1][0].text


@pytest.mark.parametrize("sort", list(ProviderSort))
async def test_the_same_pages_and_cursors_as_geo_near(geo_index: None, sort: ProviderSort) -> None:
    """As searches page (nearest first: outwards, part by part; otherwise the whole
    circle at once), against `$geoNear` paged the same way."""
    rng = random.Random(7)  # noqa: S311 - test data, not secrets
    await _seed(rng)
    searches = [
        Near(-33.87, 151.21, 40),
        Near(-33.5, 151.5, 60),  # the nearest a long way off: many parts, growing
        Near(-17.5, -179.95, 60),
        Near(88.0, 10.0, 300),
        Near(-89.9, 0.0, MAX_RADIUS_KM),
    ]
    for near, size in itertools.product(searches, (1, 7, 20)):
        old, new = _readers(near, sort)
        expected = await _walk(old, size)
        assert len(expected) > 1 or size == 20, "several pages"
        assert await _walk(new, size) == expected, (near, size)


def _readers(near: Near, sort: ProviderSort) -> tuple[Read, Read]:
    """Pages of a search by `$geoNear`, and as discovery reads them."""
    order, computed = ORDERS[sort], ["distance"]
    old_stages = [_geo_near(near, {}), WITHIN_SERVICE_RADIUS]
    new_stages = [*near_stages(near, {}), WITHIN_SERVICE_RADIUS]

    async def old(request: PageRequest) -> Page[ProviderProfile]:
        return await paginate_pipeline(ProviderProfile, old_stages, order, request, computed)

    async def new(request: PageRequest) -> Page[ProviderProfile]:
        if sort is ProviderSort.DISTANCE:
            parts = outwards(near, {}, fields=["service_radius_km"])
            distance = measure(near, within_service_radius)
            return await paginate_outwards(ProviderProfile, parts, distance, order, request)
        return await paginate_pipeline(ProviderProfile, new_stages, order, request, computed)

    return old, new


async def test_places_stored_before_cells_are_found_once_filled_in() -> None:
    rng = random.Random(3)  # noqa: S311 - test data, not secrets
    profile = _profile(rng, GeoPoint.at(-33.8712, 151.2066), 10)
    collection = ProviderProfile.get_pymongo_collection()
    await collection.insert_one(profile)
    await collection.update_one({"_id": profile["_id"]}, {"$unset": {CELLS_FIELD: ""}})
    near = Near(-33.87, 151.21, 5)
    assert await _aggregate(near_stages(near, {})) == []

    assert await fill_in_areas(ProviderProfile) == 1
    assert await fill_in_areas(ProviderProfile) == 0
    [(found, _)] = await _aggregate(near_stages(near, {}))
    assert found == profile["_id"]
    stored = await collection.find_one({"_id": profile["_id"]})
    assert stored is not None
    assert stored["place"]["cells"] == dict(
        zip(CELL_NAMES, area_cells(-33.87, 151.21), strict=True)
    )


@pytest.mark.parametrize("sort", list(TaskSort))
async def test_the_task_feed_near_a_point_pages_as_with_geo_near(
    geo_index: None, sort: TaskSort
) -> None:
    """The feed near a point reads through the same parts and stages as providers do."""
    rng = random.Random(9)  # noqa: S311 - test data, not secrets
    poster = ObjectId()
    tasks = [
        Task(
            poster_id=poster,
            title="Mow the lawn",
            description="Front and back.",
            category="gardening",
            budget=Money(amount=rng.randrange(3000, 9000, 500), currency="AUD"),
            place=Place(point=_near(rng, *rng.choice(CLUSTERS[:2])), address=ADDRESS),
            status=rng.choice([TaskStatus.OPEN, TaskStatus.OPEN, TaskStatus.COMPLETED]),
        )
        for _ in range(300)
    ]
    await Task.insert_many(tasks)
    cursors = CursorKey(TEST_JWT_SECRET).of("Query.tasks")
    order = TASK_ORDERS[sort]
    for near in [Near(-33.87, 151.21, 30), Near(-17.5, 179.99, 45)]:
        query = TaskQuery(near=near, sort=sort)
        stages = [_geo_near(near, {"status": TaskStatus.OPEN.value})]

        async def old(request: PageRequest, stages: list[dict[str, Any]] = stages) -> Page[Task]:
            return await paginate_pipeline(Task, stages, order, request, ["distance"])

        async def new(request: PageRequest, query: TaskQuery = query) -> Page[Task]:
            return await search_tasks(query, request)

        for size in (1, 8):
            expected = await _walk(old, size, cursors)
            assert len(expected) > 2, "several pages"
            assert await _walk(new, size, cursors) == expected, (near, size)


async def test_a_dense_area_is_read_no_farther_than_its_page_needs() -> None:
    """Nearest first over the widest radius, from the middle of a crowded city: the parts
    read the places near the point, not every place out to a sixteenth of the radius
    (31 km here), which in a city is all of them."""
    rng = random.Random(11)  # noqa: S311 - test data, not secrets
    centre = GeoPoint.at(-33.87, 151.21)
    close = [_profile(rng, _near(rng, -33.87, 151.21, 0.004), 500) for _ in range(200)]
    suburbs: list[dict[str, Any]] = []
    while len(suburbs) < 400:  # 8 to 25 km out: the same city
        point = _near(rng, -33.87, 151.21, 0.25)
        metres = great_circle_m(point.latitude, point.longitude, -33.87, 151.21)
        if 8_000 < metres < 25_000:
            suburbs.append(_profile(rng, point, 500))
    await ProviderProfile.get_pymongo_collection().insert_many(close + suburbs)

    near = Near(centre.latitude, centre.longitude, MAX_RADIUS_KM)
    measured = 0
    distance = measure(near, within_service_radius)

    def counted(raw: Any) -> float | None:
        nonlocal measured
        measured += 1
        return distance(raw)

    order = ORDERS[ProviderSort.DISTANCE]
    parts = outwards(near, {}, fields=["service_radius_km"])
    page = await paginate_outwards(
        ProviderProfile, parts, counted, order, PageRequest(20, None, CURSORS)
    )

    expected = await paginate_pipeline(
        ProviderProfile,
        [*near_stages(near, {}), WITHIN_SERVICE_RADIUS],
        order,
        PageRequest(20, None, CURSORS),
        ["distance"],
    )
    assert [p.id for _, p in page.items] == [p.id for _, p in expected.items]
    assert page.computed == expected.computed
    assert measured <= len(close) + 50, measured
