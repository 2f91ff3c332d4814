"""Dates and times as every input takes them: ISO 8601, within years anyone can mean.

Strawberry's own scalars accept year 1 to 9999, at whose edges arithmetic (a margin
subtracted, an offset applied, a value stored as BSON) overflows into an internal error.
No date in a marketplace lies outside `EARLIEST_YEAR` to `LATEST_YEAR`; anything else is
refused as the value it is, in GraphQL's own error for a bad variable or literal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TypeVar

from dateutil.parser import isoparse
from strawberry.schema.types.base_scalars import (
    DateDefinition,
    DateTimeDefinition,
    wrap_parser,
)
from strawberry.types.scalar import ScalarDefinition

EARLIEST_YEAR = 1900
LATEST_YEAR = 2200

D = TypeVar("D", dt.date, dt.datetime)


def _bounded(parse: Callable[[str], D]) -> Callable[[str], D]:
    def parse_bounded(text: str) -> D:
        value = parse(text)
        if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
            raise ValueError(f"years {EARLIEST_YEAR} to {LATEST_YEAR} only")
        return value

    return parse_bounded


BoundedDate = ScalarDefinition(
    name=DateDefinition.name,
    description=DateDefinition.description,
    specified_by_url=None,
    serialize=DateDefinition.serialize,
    parse_value=wrap_parser(_bounded(dt.date.fromisoformat), "Date"),
    parse_literal=None,
    origin=dt.date,
)
BoundedDateTime = ScalarDefinition(
    name=DateTimeDefinition.name,
    description=DateTimeDefinition.description,
    specified_by_url=None,
    serialize=DateTimeDefinition.serialize,
    parse_value=wrap_parser(_bounded(isoparse), "DateTime"),
    parse_literal=None,
    origin=dt.datetime,
)

SCALAR_OVERRIDES: dict[object, ScalarDefinition] = {
    dt.date: BoundedDate,
    dt.datetime: BoundedDateTime,
}
