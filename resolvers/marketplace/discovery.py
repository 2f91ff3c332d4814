"""Finding providers: by skill, place, rating, hourly rate and working day; sorted and paged.

Near a point, a provider shows only if the point is within both the radius searched
and the provider's own service radius: customers do not find people who would not
come to them. Both are measured from the provider's area, as the distance shown is: a
provider's home is for them and admins alone (documents/geo.py).

Profiles do not know whether their account may be shown, so each page of profiles
costs one more query, for their users (which the page shows anyway): providers whose
account is suspended, deleted or no longer a tasker's are dropped, and the page is
topped up from after the last profile read. Nothing has to be kept in sync with the
account's state, and a suspension hides a provider from the next search on; the price
is an extra round trip per page in the rare case that hidden providers fill part of it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Any

from bson import ObjectId

from documents.accounts.profiles import ExceptionKind, ProviderProfile, profile_owner
from documents.accounts.users import Role, User, UserStatus
from documents.errors import DomainError, ErrorCode
from resolvers.common.pagination import (
    Order,
    Page,
    PageCursor,
    PageRequest,
    paginate,
    paginate_outwards,
    paginate_pipeline,
)
from resolvers.marketplace.task_search import (
    Near,
    check_near,
    measure,
    money_range,
    near_stages,
    outwards,
)

MIN_RATING = 1.0
MAX_RATING = 5.0


class ProviderSort(StrEnum):
    RATING = "rating"
    """Best rated first; unrated providers last."""
    DISTANCE = "distance"
    """Nearest first; needs a point."""
    PRICE = "price"
    """Lowest hourly rate first; needs a currency."""


ORDERS: dict[ProviderSort, Order] = {
    ProviderSort.RATING: [("rating.average", -1), ("_id", -1)],
    ProviderSort.DISTANCE: [("distance", 1), ("_id", 1)],
    ProviderSort.PRICE: [("hourly_rate.amount", 1), ("_id", 1)],
}

# After `near_stages`: only providers whose own service radius, drawn around their area,
# reaches the point searched (around their exact home, it would tell where that is).
WITHIN_SERVICE_RADIUS = {
    "$match": {"$expr": {"$lte": ["$distance", {"$multiply": ["$service_radius_km", 1000]}]}}
}


def within_service_radius(raw: Mapping[str, Any], distance: float) -> bool:
    """`WITHIN_SERVICE_RADIUS`, for a distance measured by gigql (nearest first)."""
    radius_km = raw.get("service_radius_km")
    return isinstance(radius_km, int | float) and distance <= radius_km * 1000


@dataclass(frozen=True)
class ProviderQuery:
    category: str | None = None
    near: Near | None = None
    min_rating: float | None = None
    min_price: int | None = None
    max_price: int | None = None
    currency: str | None = None
    available_on: date | None = None
    sort: ProviderSort = ProviderSort.RATING


@dataclass(frozen=True)
class ProviderPage:
    profiles: Page[ProviderProfile]
    users: dict[ObjectId, User]
    """The account of every profile on the page."""


def working_on(day: date) -> dict[str, Any]:
    """A filter for providers taking work who have working hours on `day`: weekly hours
    that weekday and not the whole day off, or extra hours that day.

    A calendar date falls on the same weekday in every time zone, so the provider's own
    zone does not matter. Whether any of those hours is still free is for booking.
    """
    # Beanie stores a `date` as the datetime of its midnight in UTC.
    on_day = {"day": datetime.combine(day, time.min, tzinfo=UTC)}
    day_off = {**on_day, "kind": ExceptionKind.UNAVAILABLE.value, "ranges": {"$size": 0}}
    return {
        "available": True,
        "$or": [
            {
                f"weekly_hours.{day.weekday()}.0": {"$exists": True},
                "exceptions": {"$not": {"$elemMatch": day_off}},
            },
            {"exceptions": {"$elemMatch": {**on_day, "kind": ExceptionKind.EXTRA_HOURS.value}}},
        ],
    }


def _filters(query: ProviderQuery) -> dict[str, Any]:
    clauses: list[dict[str, Any]] = []
    if query.category:
        clauses.append({"skills": query.category.strip().lower()})
    if query.min_rating is not None:
        if not MIN_RATING <= query.min_rating <= MAX_RATING:
            raise DomainError(
                ErrorCode.INVALID_INPUT,
                f"The minimum rating must be {MIN_RATING:g} to {MAX_RATING:g}.",
                "minRating",
            )
        clauses.append({"rating.average": {"$gte": query.min_rating}})
    price = money_range(
        "hourly_rate", query.min_price, query.max_price, query.currency, bound="minPrice"
    )
    if price:
        clauses.append(price)
    if query.available_on is not None:
        clauses.append(working_on(query.available_on))
    # Inside `$and` even when they could merge into one document: SecantusDB 0.7 then
    # filters without an index, while with its compound index (currency, amount, _id) it
    # drops values equal to an inclusive bound (amount <= 4000 misses 4000). MongoDB
    # plans both forms alike.
    return {"$and": clauses} if clauses else {}


def _check_sort(query: ProviderQuery) -> None:
    if query.sort is ProviderSort.DISTANCE and query.near is None:
        raise DomainError(
            ErrorCode.INVALID_INPUT, "Sorting by distance needs a point to measure from.", "sort"
        )
    if query.sort is ProviderSort.PRICE and not query.currency:
        raise DomainError(
            ErrorCode.INVALID_INPUT, "Sorting by price needs the currency to compare in.", "sort"
        )


async def search_providers(query: ProviderQuery, request: PageRequest) -> ProviderPage:
    _check_sort(query)
    order = ORDERS[query.sort]
    filters = _filters(query)
    near = query.near
    if near is None:

        async def read(part: PageRequest) -> Page[ProviderProfile]:
            return await paginate(ProviderProfile, filters, order, part)

    else:
        check_near(near)
        if query.sort is ProviderSort.DISTANCE:

            async def read(part: PageRequest) -> Page[ProviderProfile]:
                parts = outwards(near, filters, fields=["service_radius_km"])
                distance = measure(near, within_service_radius)
                return await paginate_outwards(ProviderProfile, parts, distance, order, part)

        else:
            stages = [*near_stages(near, filters), WITHIN_SERVICE_RADIUS]

            async def read(part: PageRequest) -> Page[ProviderProfile]:
                return await paginate_pipeline(
                    ProviderProfile, stages, order, part, computed=["distance"]
                )

    return await _shown(read, request)


async def _shown(
    read: Callable[[PageRequest], Awaitable[Page[ProviderProfile]]], request: PageRequest
) -> ProviderPage:
    """A page of the profiles `read` finds whose accounts may be shown, topped up until
    it is full or nothing is left (one more than asked for tells of a next page)."""
    items: list[tuple[PageCursor, ProviderProfile]] = []
    computed: dict[Any, dict[str, Any]] = {}
    users: dict[ObjectId | None, User] = {}
    after = request.after
    while True:
        part = await read(replace(request, first=request.first + 1 - len(items), after=after))
        shown = await User.find(
            {
                "_id": {"$in": [profile_owner(profile) for profile in part.documents]},
                "status": UserStatus.ACTIVE.value,
                "roles": Role.TASKER.value,
            }
        ).to_list()
        users.update({user.id: user for user in shown})
        items += [
            (cursor, profile) for cursor, profile in part.items if profile_owner(profile) in users
        ]
        computed.update(part.computed)
        if len(items) > request.first or not part.has_next_page:
            break
        after = part.items[-1][0].text
    kept = items[: request.first]
    return ProviderPage(
        profiles=Page(
            items=kept,
            has_next_page=len(items) > request.first,
            has_previous_page=request.after is not None,
            computed={p.id: computed[p.id] for _, p in kept if p.id in computed},
        ),
        users={profile_owner(profile): users[profile_owner(profile)] for _, profile in kept},
    )
