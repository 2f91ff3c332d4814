"""Pages read only to be shown build their documents without validating them again, and
build the very documents validation would; everything else still validates.

The task feed and the provider search show what the database holds, which was validated
when it was written: they build their documents with `documents.shown.shown` instead of
`model_validate`, field by field with `model_construct`. What they show must not change:
`shown` is held equal to `model_validate` (values, types, private state) on the demo
marketplace, and what it cannot plan (a place's area, derived on every read) is still
validated.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from beanie import Document
from pydantic import BaseModel, ValidationError

from documents.accounts.profiles import ProviderProfile
from documents.accounts.users import User
from documents.geo import GeoPoint
from documents.marketplace.tasks import Task
from documents.shown import shown
from resolvers.common.cursors import CursorKey
from resolvers.common.pagination import PageRequest, paginate
from server.demo_data import seed_demo
from server.runtime import Runtime
from tests.conftest import TEST_JWT_SECRET
from tests.support.graphql_client import GraphQLClient

FEED = """query { tasks(first: 20) { edges { node { id title budget { amount currency }
  offerCount poster { id name } area { point { latitude longitude } city } } }
  pageInfo { hasNextPage endCursor } } }"""
NEARBY = """query { searchProviders(first: 20, filter: {near: {latitude: -33.8688,
  longitude: 151.2093, radiusKm: 25.0}}, sort: DISTANCE) { edges { node {
  user { id name } profile { hourlyRate { amount currency } rating { average count } }
  distanceKm } } pageInfo { hasNextPage endCursor } } }"""
SHOWN_MODELS: list[type[Document]] = [Task, User, ProviderProfile]
CURSORS = CursorKey(TEST_JWT_SECRET).of("Query.tasks")


def anatomy(value: Any) -> Any:
    """Every value with its type, through models (with their private state and the fields
    set), lists and dicts: equal anatomies are the same document, down to the types."""
    if isinstance(value, BaseModel):
        fields = {name: anatomy(item) for name, item in value.__dict__.items()}
        return type(value), fields, value.__pydantic_private__, value.model_fields_set
    if isinstance(value, list | tuple):
        return type(value), [anatomy(item) for item in value]
    if isinstance(value, dict):
        return {key: anatomy(item) for key, item in value.items()}
    return type(value), value


@contextmanager
def counting_validations() -> Iterator[dict[str, int]]:
    """How many times each shown model is validated (Beanie validates through
    `model_validate`, as the pages did)."""
    counts = dict.fromkeys([model.__name__ for model in SHOWN_MODELS], 0)
    with pytest.MonkeyPatch.context() as patch:
        for model in SHOWN_MODELS:

            def counted(
                obj: Any,
                *args: Any,
                _name: str = model.__name__,
                _validate: Any = model.model_validate,
                **kw: Any,
            ) -> Any:
                counts[_name] += 1
                return _validate(obj, *args, **kw)

            patch.setattr(model, "model_validate", counted)
        yield counts


async def test_shown_documents_are_the_validated_ones(runtime: Runtime) -> None:
    await seed_demo(runtime.services, tasks=60, providers=30, posters=10, seed=3)
    for model in SHOWN_MODELS:
        raws = await model.get_pymongo_collection().find({}).to_list()
        assert raws
        for raw in raws:
            assert anatomy(shown(model, raw)) == anatomy(model.model_validate(raw))


async def test_the_feed_and_the_provider_search_validate_no_document_they_show(
    runtime: Runtime, client: GraphQLClient
) -> None:
    await seed_demo(runtime.services, tasks=60, providers=30, posters=10, seed=3)
    expected = {}
    for query in (FEED, NEARBY):
        expected[query] = await client.data(query)  # as validated documents show them
    with counting_validations() as counts:
        feed = await client.data(FEED)
        assert counts["Task"] == 0
        nearby = await client.data(NEARBY)
        assert counts == {"Task": 0, "User": counts["User"], "ProviderProfile": 0}
        # The feed's posters come through the users' loader, which writes share.
        assert counts["User"] == len({e["node"]["poster"]["id"] for e in feed["tasks"]["edges"]})
    assert nearby["searchProviders"]["edges"]
    assert (feed, nearby) == (expected[FEED], expected[NEARBY])


async def test_other_pages_still_validate_and_refuse_what_is_not_valid(runtime: Runtime) -> None:
    await seed_demo(runtime.services, tasks=5, providers=10, posters=5, seed=3)
    collection = Task.get_pymongo_collection()
    await collection.update_many({}, {"$set": {"offer_count": "many"}})
    request = PageRequest(first=5, after=None, cursors=CURSORS)
    order = [("created_at", -1), ("_id", -1)]

    with pytest.raises(ValidationError):
        await paginate(Task, {}, order, request)
    with counting_validations() as counts:
        await paginate(Task, {}, order, request, only_shown=True)
    assert counts["Task"] == 0


async def test_a_shown_place_has_its_area_derived_as_a_validated_one(runtime: Runtime) -> None:
    await seed_demo(runtime.services, tasks=5, providers=10, posters=5, seed=3)
    await Task.get_pymongo_collection().update_many({}, {"$unset": {"place.area": ""}})
    request = PageRequest(first=5, after=None, cursors=CURSORS)
    order = [("created_at", -1), ("_id", -1)]

    shown_page = await paginate(Task, {}, order, request, only_shown=True)
    validated = await paginate(Task, {}, order, request)

    assert [t.place for t in shown_page.documents] == [t.place for t in validated.documents]
    assert all(t.place.area != GeoPoint.at(0, 0) for t in shown_page.documents)
