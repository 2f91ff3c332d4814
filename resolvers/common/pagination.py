"""Keyset pagination: pages that stay correct while documents are added or removed.

A cursor holds the sort-key values of the last document of a page; the next page is
whatever sorts after those values. Every order ends with `_id`, so keys are unique and
no document is skipped or repeated between pages. Cursors are signed and bound to their
connection and order (resolvers/common/cursors.py), and a cursor's values are checked to be of
the types of the sort fields before any reaches a query.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from beanie import Document
from bson import ObjectId
from pydantic import BaseModel

from documents.errors import DomainError, ErrorCode
from resolvers.common.cursors import Cursors, SortKeyType

D = TypeVar("D", bound=Document)

Order = Sequence[tuple[str, int]]
"""Sort fields and directions (1 or -1); the last one must be `_id`."""


@dataclass(frozen=True, slots=True)
class PageRequest:
    first: int
    after: str | None
    cursors: Cursors
    """Signs and checks the cursors of the connection asked for."""


class PageCursor:
    """The cursor of one item of a page, signed only when read.

    A front end mostly reads `pageInfo.endCursor` alone, and signing one costs a JSON
    encoding, an HMAC and base64: a page keeps each item's sort-key values (read from
    the document when the page is made) and signs them on demand, once.
    """

    __slots__ = ("_cursors", "_order", "_text", "_values")

    def __init__(self, cursors: Cursors, order: str, values: list[Any]) -> None:
        self._cursors = cursors
        self._order = order
        self._values = values
        self._text: str | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self._cursors.encode(self._order, self._values)
        return self._text


@dataclass(frozen=True, slots=True)
class Page(Generic[D]):
    items: list[tuple[PageCursor, D]]
    """Each document of the page with its cursor, signed only if read."""
    has_next_page: bool
    has_previous_page: bool
    computed: dict[Any, dict[str, Any]] = dataclasses.field(default_factory=dict)
    """Values a pipeline computed per document (such as a distance), by document id."""

    @property
    def edges(self) -> list[tuple[str, D]]:
        """Each document with its cursor signed: for callers that pass cursors on."""
        return [(cursor.text, document) for cursor, document in self.items]

    @property
    def documents(self) -> list[D]:
        return [document for _, document in self.items]


def page_request(
    first: int | None, after: str | None, cursors: Cursors, *, default: int, maximum: int
) -> PageRequest:
    size = default if first is None else first
    if not 0 <= size <= maximum:
        raise DomainError(
            ErrorCode.INVALID_INPUT, f"`first` must be between 0 and {maximum}.", "first"
        )
    return PageRequest(size, after, cursors)


async def paginate(
    model: type[D], filters: Mapping[str, Any], order: Order, request: PageRequest
) -> Page[D]:
    assert order and order[-1][0] == "_id", "an order must end with _id to be total"
    query: dict[str, Any] = dict(filters)
    if request.after is not None:
        query = {"$and": [query, _after(order, _decode(model, order, (), request))]}
    cursor = model.get_pymongo_collection().find(query).sort(list(order)).limit(request.first + 1)
    return _page(model, await cursor.to_list(), order, request, computed=())


async def paginate_pipeline(
    model: type[D],
    stages: list[dict[str, Any]],
    order: Order,
    request: PageRequest,
    computed: Sequence[str] = (),
) -> Page[D]:
    """Like `paginate`, over the output of aggregation `stages` (which may add `computed`
    fields, such as a `$geoNear` distance, to sort and page by; they are numbers)."""
    assert order and order[-1][0] == "_id", "an order must end with _id to be total"
    pipeline = list(stages)
    if request.after is not None:
        after = _decode(model, order, tuple(computed), request)
        pipeline.append({"$match": _after(order, after)})
    pipeline += [{"$sort": dict(order)}, {"$limit": request.first + 1}]
    cursor = await model.get_pymongo_collection().aggregate(pipeline)
    return _page(model, await cursor.to_list(), order, request, computed)


def _page(
    model: type[D],
    raws: list[dict[str, Any]],
    order: Order,
    request: PageRequest,
    computed: Sequence[str],
) -> Page[D]:
    kept = raws[: request.first]
    spelled = _spelled(order)
    return Page(
        items=[
            (PageCursor(request.cursors, spelled, _values(raw, order)), model.model_validate(raw))
            for raw in kept
        ],
        has_next_page=len(raws) > request.first,
        has_previous_page=request.after is not None,
        computed={raw["_id"]: {name: raw.get(name) for name in computed} for raw in kept}
        if computed
        else {},
    )


def _after(order: Order, values: list[Any]) -> dict[str, Any]:
    """Documents that sort strictly after `values`: (a > x) or (a = x and b > y) or ..."""
    branches = []
    for i, (field, direction) in enumerate(order):
        equal = {prior: values[j] for j, (prior, _) in enumerate(order[:i])}
        branches += [{**equal, field: beyond} for beyond in _beyond(values[i], direction)]
    return {"$or": branches}


def _beyond(value: Any, direction: int) -> list[Any]:
    """Conditions on one field that sort strictly after `value`.

    MongoDB sorts null (and missing) before every value, but comparisons never match
    it: after a value in a descending order come the nulls, after null in an ascending
    one every value, and nothing after null in a descending one.
    """
    if value is None:
        return [{"$ne": None}] if direction == 1 else []
    if direction == 1:
        return [{"$gt": value}]
    return [{"$lt": value}, None]


def _value(raw: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, such as "rating.average"."""
    value: Any = raw
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _values(raw: Mapping[str, Any], order: Order) -> list[Any]:
    """The document's sort-key values, which its cursor carries."""
    return [_value(raw, field) for field, _ in order]


def _encode(raw: Mapping[str, Any], order: Order, cursors: Cursors) -> str:
    return cursors.encode(_spelled(order), _values(raw, order))


def _decode(
    model: type[BaseModel], order: Order, computed: tuple[str, ...], request: PageRequest
) -> list[Any]:
    assert request.after is not None
    spelled = _spelled(order)
    return request.cursors.decode(spelled, request.after, _key_types(model, spelled, computed))


def _spelled(order: Order) -> str:
    """The order as text, which a cursor is bound to: "created_at:-1,_id:-1"."""
    return ",".join(f"{field}:{direction}" for field, direction in order)


@functools.cache
def _key_types(
    model: type[BaseModel], spelled: str, computed: tuple[str, ...]
) -> list[SortKeyType]:
    """The type of each field of an order, as the model declares it."""
    fields = [part.rsplit(":", 1)[0] for part in spelled.split(",")]
    return [_field_type(model, field, computed) for field in fields]


def _field_type(model: type[BaseModel], path: str, computed: tuple[str, ...]) -> SortKeyType:
    if path == "_id":
        return ObjectId
    if path in computed:
        return float
    annotation: Any = model
    for part in path.split("."):
        annotation = _without_none(annotation.model_fields[part].annotation)
    for kind in (datetime, ObjectId, str, int, float):
        if isinstance(annotation, type) and issubclass(annotation, kind):
            return kind
    raise TypeError(f"{model.__name__}.{path} is not a field one can sort and page by")


def _without_none(annotation: Any) -> Any:
    """`X` for `X | None`."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        [annotation] = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return annotation
