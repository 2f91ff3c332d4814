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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from beanie import Document
from bson import ObjectId
from pydantic import BaseModel

from documents.clock import utcnow
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
    fields, such as a distance, to sort and page by; they are numbers)."""
    assert order and order[-1][0] == "_id", "an order must end with _id to be total"
    pipeline = list(stages)
    if request.after is not None:
        after = _decode(model, order, tuple(computed), request)
        pipeline.append({"$match": _after(order, after)})
    pipeline += [{"$sort": dict(order)}, {"$limit": request.first + 1}]
    cursor = await model.get_pymongo_collection().aggregate(pipeline)
    return _page(model, await cursor.to_list(), order, request, computed)


Outwards = Callable[[Sequence[float], int, float], tuple[list[dict[str, Any]], float] | None]
"""The next part of a read outwards: given the measures of the documents kept so far (in
order), how many are wanted and the least measure one may have (the cursor's, or 0), the
stages of the next part and a bound such that every document the parts so far have not
read measures at least that; None once every part has been read."""

Measure = Callable[[Mapping[str, Any]], float | None]
"""What a document read by a part measures (such as its distance), None to leave it out."""


async def paginate_outwards(
    model: type[D],
    outwards: Outwards,
    measure: Measure,
    order: Order,
    request: PageRequest,
) -> Page[D]:
    """`paginate_pipeline` for an order by a measure computed here (such as a distance),
    then `_id`, over the union of parts read nearest first (see `read_outwards`)."""
    field = order[0][0]
    after = _decode(model, order, (field,), request) if request.after is not None else None
    collection = model.get_pymongo_collection()
    raws = await read_outwards(collection, outwards, measure, order, request.first + 1, after)
    return _page(model, raws, order, request, computed=[field])


async def read_outwards(
    collection: Any,
    outwards: Outwards,
    measure: Measure,
    order: Order,
    wanted: int,
    after: list[Any] | None,
) -> list[dict[str, Any]]:
    """Up to `wanted` documents in the order `[(measure, 1), ("_id", 1)]` after the cursor
    values `after` (if any), each with its measure in the order's first field.

    The parts are aggregations of the few fields `measure` needs, read one after the
    other until `wanted` documents measure less than the bound of the parts read, which
    no document of a later part can precede; then the documents of the page alone are
    read whole, by id. A document in several parts counts once. Measuring here rather
    than in the database keeps the expression off SecantusDB, where it costs more than
    reading the document (bench/README.md).
    """
    field = order[0][0]
    assert list(order) == [(field, 1), ("_id", 1)], "by a measure, then _id"
    kept: dict[Any, tuple[float, Any]] = {}
    ordered: list[tuple[float, Any]] = []
    floor = after[0] if after is not None and after[0] is not None else 0.0
    while (part := outwards([key[0] for key in ordered], wanted, floor)) is not None:
        stages, bound = part
        for raw in await (await collection.aggregate(stages)).to_list():
            measured = measure(raw)
            if measured is None:
                continue
            if after is None or _sorts_after({**raw, field: measured}, order, after):
                kept[raw["_id"]] = (measured, raw["_id"])
        ordered = sorted(kept.values())
        if len(ordered) >= wanted and ordered[wanted - 1][0] < bound:
            break
    page = ordered[:wanted]
    if not page:
        return []
    found = await collection.find({"_id": {"$in": [_id for _, _id in page]}}).to_list()
    whole = {raw["_id"]: raw for raw in found}
    # One removed since it was measured is left out, as if it had gone a moment sooner.
    return [{**whole[_id], field: measured} for measured, _id in page if _id in whole]


@dataclass(frozen=True, slots=True)
class Windows:
    """How far back from its anchor (the cursor, or now) a windowed read looks each time:
    `first`, then each window `growth` times longer than the one before, and after
    `bounded` windows everything older, with no lower bound."""

    first: timedelta
    growth: int
    bounded: int

    def lower_bounds(self, anchor: datetime) -> Iterator[datetime | None]:
        span, reach = self.first, self.first
        for _ in range(self.bounded):
            yield anchor - reach
            span *= self.growth
            reach += span
        yield None


async def paginate_in_windows(
    model: type[D],
    filters: Mapping[str, Any],
    order: Order,
    request: PageRequest,
    windows: Windows,
) -> Page[D]:
    """`paginate` for an order newest first on a time field, then `_id`: the same page,
    read in windows of that field going back from the cursor (or from now).

    Each read asks for the time field within its window, with the order and the limit
    of the plain query: an index on `filters`' equalities and then the time field bounds
    it on both ends. MongoDB would stop after the limit anyway; SecantusDB gathers,
    decodes and sorts every document matching a `find` before applying the limit, so
    reading the newest matches first spares it the thousands of older ones. Windows grow
    until the page is full or, the last one unbounded, nothing is left: a page costs one
    or two reads when documents are frequent, a few more when they are rare.

    `filters` must not constrain the time field itself.
    """
    field = order[0][0]
    assert list(order) == [(field, -1), ("_id", -1)], "newest first, then _id"
    assert field not in filters
    wanted = request.first + 1
    after = _decode(model, order, (), request) if request.after is not None else None
    if after is not None and after[0] is None:
        return await paginate(model, filters, order, request)
    collection = model.get_pymongo_collection()
    # Inclusive of the cursor's time: documents sharing it may still follow the cursor.
    upper: datetime | None = after[0] if after is not None else None
    found: list[dict[str, Any]] = []
    # Only the first window reaches the cursor's own position; the later ones end
    # before it, where everything sorts after the cursor.
    beyond = after
    for lower in windows.lower_bounds(upper if upper is not None else utcnow()):
        bounds: dict[str, datetime] = {}
        if lower is not None:
            bounds["$gt"] = lower
        if upper is not None:
            bounds["$lte"] = upper
        query = {**filters, field: bounds} if bounds else dict(filters)
        found += await _read_window(collection, query, order, wanted - len(found), beyond)
        if len(found) == wanted or lower is None:
            break
        upper, beyond = lower, None
    return _page(model, found, order, request, computed=())


async def _read_window(
    collection: Any,
    query: dict[str, Any],
    order: Order,
    wanted: int,
    after: list[Any] | None,
) -> list[dict[str, Any]]:
    """Up to `wanted` documents of one window, in order, that sort after the cursor
    values `after` (if any).

    The window that ends at the cursor's time also holds the cursor's own document and
    any others of that time already paged past: they sort first, and are read and
    dropped here. One more than wanted is read for the cursor's own document; should
    more share its time, the read is repeated with room for them.
    """
    limit = wanted + (1 if after is not None else 0)
    while True:
        raws = await collection.find(query).sort(list(order)).limit(limit).to_list()
        fresh = raws if after is None else [raw for raw in raws if _sorts_after(raw, order, after)]
        if len(fresh) >= wanted or len(raws) < limit:
            return list(fresh[:wanted])
        limit += len(raws) - len(fresh)


def _sorts_after(raw: Mapping[str, Any], order: Order, values: list[Any]) -> bool:
    """Whether a document sorts strictly after the cursor `values` (neither null)."""
    for (field, direction), value in zip(order, values, strict=True):
        mine, theirs = _comparable(_value(raw, field)), _comparable(value)
        if mine != theirs:
            return bool(mine < theirs) if direction == -1 else bool(mine > theirs)
    return False


def _comparable(value: Any) -> Any:
    """Datetimes read back from a cursor are naive UTC; those from the database aware."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


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
