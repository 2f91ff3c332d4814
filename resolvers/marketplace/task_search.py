"""Browsing and searching tasks: words, category, budget, status, distance; sorted and paged."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from bson import ObjectId
from pymongo import IndexModel

from documents.errors import DomainError, ErrorCode
from documents.geo_cells import (
    AREA_FIELD,
    covering,
    distance_expression,
    great_circle_m,
    in_cells,
)
from documents.marketplace.tasks import Task, TaskStatus
from documents.money import minor_unit_exponent
from resolvers.common import search
from resolvers.common.pagination import (
    Measure,
    Order,
    Outwards,
    Page,
    PageRequest,
    Windows,
    paginate,
    paginate_in_windows,
    paginate_outwards,
    paginate_pipeline,
)

MAX_RADIUS_KM = 500.0


class TaskSort(StrEnum):
    NEWEST = "newest"
    BUDGET_HIGH = "budget_high"
    BUDGET_LOW = "budget_low"
    DISTANCE = "distance"


ORDERS: dict[TaskSort, Order] = {
    TaskSort.NEWEST: [("created_at", -1), ("_id", -1)],
    TaskSort.BUDGET_HIGH: [("budget.amount", -1), ("_id", -1)],
    TaskSort.BUDGET_LOW: [("budget.amount", 1), ("_id", 1)],
    TaskSort.DISTANCE: [("distance", 1), ("_id", 1)],
}

FEED_WINDOWS = Windows(first=timedelta(hours=1), growth=4, bounded=6)
"""The newest tasks are read an hour at a time, then 4, 16, 64 hours... further back, and
after about 57 days all the older ones: on the demo marketplace (about 5 open tasks an
hour) a page of 20 takes two reads of about 27 tasks instead of one of 8,000."""


@dataclass(frozen=True)
class Near:
    latitude: float
    longitude: float
    radius_km: float


@dataclass(frozen=True)
class TaskQuery:
    text: str | None = None
    category: str | None = None
    statuses: list[TaskStatus] = field(default_factory=lambda: [TaskStatus.OPEN])
    min_budget: int | None = None
    max_budget: int | None = None
    currency: str | None = None
    near: Near | None = None
    poster_id: ObjectId | None = None
    tasker_id: ObjectId | None = None
    sort: TaskSort = TaskSort.NEWEST


def check_near(near: Near, field_name: str = "near") -> None:
    if not (-90 <= near.latitude <= 90 and -180 <= near.longitude <= 180):
        raise DomainError(
            ErrorCode.INVALID_INPUT, "Latitude must be within ±90 and longitude ±180.", field_name
        )
    if not 0 < near.radius_km <= MAX_RADIUS_KM:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"The radius must be above 0 and at most {MAX_RADIUS_KM:g} km.",
            field_name,
        )


def near_stages(
    near: Near, query: dict[str, Any], cells: list[int] | None = None
) -> list[dict[str, Any]]:
    """Aggregation stages for the documents matching `query` within the radius of
    `near`, each with its distance in metres from the point as `distance`; only those
    in `cells` if given (part of the circle's covering, read outwards).

    Measured from each place's public area, never its exact point (documents/geo.py):
    the distance, the radius and the order are seen by people who may not see the place.
    Places are looked up by the cells of their areas that the circle touches, and
    measured as `$geoNear` measured them (documents/geo_cells.py tells why it is not
    used). The cells come first, alone: SecantusDB plans only a pipeline's first
    `$match`, and only a filter without top-level operators; MongoDB merges the two.
    """
    radius_m = near.radius_km * 1000
    if cells is None:
        cells = covering(near.latitude, near.longitude, radius_m)
    return [
        {"$match": in_cells(cells)},
        *([{"$match": query}] if query else []),
        {"$addFields": {"distance": distance_expression(near.latitude, near.longitude)}},
        {"$match": {"distance": {"$lte": radius_m}}},
    ]


FIRST_REACH = 1 / 16
"""Nearest first, the first part read reaches this share of the radius,"""
FIRST_REACH_M = 2_000.0
"""but no farther than this: a wide radius searched from inside a city would otherwise
read the whole city (a sixteenth of the widest radius is 31 km) before knowing how
crowded it is. Later parts are sized by the places per area the earlier ones found."""

Keep = Callable[[Mapping[str, Any], float], bool]
"""Whether a document at a distance is kept, beyond being within the radius."""


def outwards(near: Near, query: dict[str, Any], fields: Sequence[str] = ()) -> Outwards:
    """The parts of a search nearest first (`paginate_outwards`): circles of growing
    reach, each read as the cells it touches that no smaller one did, and the fields
    `measure` needs (the area, and `fields`).

    A page of the nearest needs only the places out to its last one, not the whole
    radius: both MongoDB's `$geoNear` and SecantusDB read a document per place in the
    cells looked up, so reading the circle outwards saves most of them when places
    are dense. The next reach is guessed from how many the reach so far holds (places
    per area), at least half as far again, and four times as far while it holds fewer
    than four: from a sixteenth of the radius or 2 km, whichever is nearer, at most
    eight parts, and two or three where places are dense. A part reads only cells no
    earlier one did, unless the cells grow a size (`covering`), when the disk read so
    far is read again in larger cells; a document read twice counts once.
    """
    radius_m = near.radius_km * 1000
    read: set[int] = set()
    reach = 0.0
    projection = {name: 1 for name in (AREA_FIELD, *fields)}

    def next_part(
        measures: Sequence[float], wanted: int, floor: float
    ) -> tuple[list[dict[str, Any]], float] | None:
        nonlocal reach
        while reach < radius_m:
            # After a cursor, out from the cursor's distance: the ring between it and
            # the reach holds what the page may show.
            if reach == 0:
                reach = min(floor + min(radius_m * FIRST_REACH, FIRST_REACH_M), radius_m)
            else:
                inside = sum(1 for measured in measures if measured < reach)
                ring = reach * reach - floor * floor
                guess = (
                    math.sqrt(floor * floor + ring * 1.44 * wanted / inside) if inside >= 4 else 0.0
                )
                farther = floor + (reach - floor) * (1.5 if inside >= 4 else 4.0)
                reach = min(max(guess, farther), radius_m)
            cells = [
                cell
                for cell in covering(near.latitude, near.longitude, reach, floor)
                if cell not in read
            ]
            read.update(cells)
            if cells:
                stages = [
                    {"$match": in_cells(cells)},
                    *([{"$match": query}] if query else []),
                    {"$project": projection},
                ]
                return stages, reach if reach < radius_m else math.inf
        return None

    return next_part


def measure(near: Near, keep: Keep | None = None) -> Measure:
    """A document's distance from the point, measured from its area exactly as
    `near_stages` measures it in the database (documents/geo_cells.py); None beyond the
    radius or if `keep` says no."""
    radius_m = near.radius_km * 1000

    def distance(raw: Mapping[str, Any]) -> float | None:
        area = (raw.get("place") or {}).get("area")
        if area is None:
            return None
        longitude, latitude = area["coordinates"]
        metres = great_circle_m(latitude, longitude, near.latitude, near.longitude)
        if metres > radius_m or (keep is not None and not keep(raw, metres)):
            return None
        return metres

    return distance


def money_range(
    path: str, minimum: int | None, maximum: int | None, currency: str | None, *, bound: str
) -> dict[str, Any] | None:
    """A filter on the money at `path`: in `currency`, within the bounds given in its
    minor units; `bound` names the input field of the minimum, for errors."""
    code = currency.strip().upper() if currency else None
    if code is not None and minor_unit_exponent(code) is None:
        raise DomainError(ErrorCode.INVALID_INPUT, f"Unknown currency {currency!r}.", "currency")
    amount: dict[str, int] = {}
    if minimum is not None:
        amount["$gte"] = minimum
    if maximum is not None:
        amount["$lte"] = maximum
    if amount and code is None:
        raise DomainError(ErrorCode.INVALID_INPUT, "A range needs a currency.", "currency")
    if any(value < 0 for value in amount.values()):
        raise DomainError(ErrorCode.INVALID_INPUT, "Amounts cannot be negative.", bound)
    if minimum is not None and maximum is not None and minimum > maximum:
        raise DomainError(ErrorCode.INVALID_INPUT, "The minimum exceeds the maximum.", bound)
    if code is None:
        return None
    return {f"{path}.currency": code, **({f"{path}.amount": amount} if amount else {})}


def _filters(query: TaskQuery) -> dict[str, Any]:
    statuses = [s.value for s in query.statuses]
    # One status as an equality: the same to MongoDB, a far better plan on SecantusDB.
    clauses: list[dict[str, Any]] = [
        {"status": statuses[0] if len(statuses) == 1 else {"$in": statuses}}
    ]
    if query.category:
        clauses.append({"category": query.category.strip().lower()})
    if query.poster_id is not None:
        clauses.append({"poster_id": query.poster_id})
    if query.tasker_id is not None:
        clauses.append({"assigned_tasker_id": query.tasker_id})
    budget = money_range(
        "budget", query.min_budget, query.max_budget, query.currency, bound="minBudget"
    )
    if budget:
        clauses.append(budget)
    if query.text:
        words = search.matching("keywords", query.text)
        if words:
            clauses.append(words)
    return _conjunction(clauses)


def _conjunction(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    """All of `clauses`: as one document when they are equalities on distinct fields
    (the same query to MongoDB, but the only form SecantusDB answers from a compound
    index), otherwise as `$and`.

    Ranges stay apart: SecantusDB's compound-index range scan drops values equal to an
    inclusive bound on a field that is not the index's last (a budget of exactly the
    minimum asked for, on `(status, budget.currency, budget.amount, _id)`).
    """
    fields = [name for clause in clauses for name in clause]
    if len(fields) == len(set(fields)) and all(
        not name.startswith("$") and not isinstance(value, dict | list)
        for clause in clauses
        for name, value in clause.items()
    ):
        return {name: value for clause in clauses for name, value in clause.items()}
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _newest_from_an_index(filters: dict[str, Any]) -> bool:
    """Whether an index of tasks holds `filters`' fields, each an equality, and then
    `created_at`: the index then bounds a window of `created_at` and gives its order
    (MongoDB's planner and SecantusDB's alike), so the newest tasks can be read a
    window at a time."""
    if any(
        name.startswith("$") or isinstance(value, dict | list) for name, value in filters.items()
    ):
        return False
    equalities = len(filters)
    return any(
        fields[equalities:][:1] == ["created_at"] and set(fields[:equalities]) == set(filters)
        for fields in _INDEXED_FIELDS
    )


_INDEXED_FIELDS = [
    list(index.document["key"]) for index in Task.Settings.indexes if isinstance(index, IndexModel)
]


async def search_tasks(query: TaskQuery, request: PageRequest) -> Page[Task]:
    order = ORDERS[query.sort]
    filters = _filters(query)
    if query.near is None:
        if query.sort is TaskSort.DISTANCE:
            raise DomainError(
                ErrorCode.INVALID_INPUT,
                "Sorting by distance needs a point to measure from.",
                "sort",
            )
        if query.sort is TaskSort.NEWEST and _newest_from_an_index(filters):
            return await paginate_in_windows(Task, filters, order, request, FEED_WINDOWS)
        return await paginate(Task, filters, order, request)
    check_near(query.near)
    if query.sort is TaskSort.DISTANCE:
        parts = outwards(query.near, filters)
        return await paginate_outwards(Task, parts, measure(query.near), order, request)
    return await paginate_pipeline(
        Task, near_stages(query.near, filters), order, request, computed=["distance"]
    )


def kilometres(metres: float | None) -> float | None:
    return None if metres is None else round(metres / 1000, 3)
