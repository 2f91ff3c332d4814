"""Places: GeoJSON points and postal addresses.

A place has two points: the exact one, for the few people who may see it, and its area,
the exact point snapped to a fixed grid, which anyone may see. Everything measured for
others (distances, distance order, radius and service-radius checks) is measured from
the area, so that no number of questions from different points narrows a place down
further than its grid cell. The cell is a function of the point alone: asking again
gives the same area, so there is no noise to average away. Searches near a point find
places by the coarser cells of their area (documents/geo_cells.py).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Literal

from beanie import Document
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pymongo import UpdateOne

from documents.geo_cells import CELL_NAMES, area_cells

# Rounding a coordinate to two decimals moves it by at most ~0.6 km: an area, not a door.
APPROXIMATE_DECIMALS = 2


class GeoPoint(BaseModel):
    """A GeoJSON Point; coordinates are [longitude, latitude], as MongoDB wants them."""

    model_config = ConfigDict(frozen=True)

    type: Literal["Point"] = "Point"
    coordinates: tuple[float, float]

    @classmethod
    def at(cls, latitude: float, longitude: float) -> GeoPoint:
        return cls(coordinates=(longitude, latitude))

    @property
    def longitude(self) -> float:
        return self.coordinates[0]

    @property
    def latitude(self) -> float:
        return self.coordinates[1]

    def approximate(self) -> GeoPoint:
        return GeoPoint.at(
            round(self.latitude, APPROXIMATE_DECIMALS), round(self.longitude, APPROXIMATE_DECIMALS)
        )


class Address(BaseModel):
    model_config = ConfigDict(frozen=True)

    line1: str
    line2: str | None = None
    city: str
    region: str | None = None
    postal_code: str | None = None
    country: str
    """ISO 3166-1 alpha-2."""


class Place(BaseModel):
    """Where something happens: the exact point and the address people go to, and the
    area anyone may see and search by."""

    model_config = ConfigDict(frozen=True)

    point: GeoPoint
    address: Address
    area: GeoPoint = GeoPoint.at(0, 0)
    """`point` snapped to the grid: always derived from it by the validator below,
    whatever was stored or given (the default only spares callers from passing it)."""
    cells: dict[str, int] = Field(default_factory=dict)
    """The grid cells of `area`, by size (`s2` for 0.02° and so on), that searches near
    a point look places up by (documents/geo_cells.py); derived like `area`, and from it
    alone."""

    @model_validator(mode="before")
    @classmethod
    def _area_of_point(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "point" not in data:
            return data  # field validation reports what is missing
        plain = _plain_coordinates(data["point"])
        if plain is not None:
            area, cells = _derived_at(*plain)
            return {**data, "area": area, "cells": dict(zip(CELL_NAMES, cells, strict=True))}
        try:
            point = GeoPoint.model_validate(data["point"])
        except ValidationError:
            return data
        return {**data, **_derived(point)}


def _derived(point: GeoPoint) -> dict[str, Any]:
    """What a place derives from its exact point: its area, and the area's cells."""
    area = point.approximate()
    cells = area_cells(area.latitude, area.longitude)
    return {"area": area, "cells": dict(zip(CELL_NAMES, cells, strict=True))}


# Every place read derives its area again (that is what keeps a shown area true for any
# stored document), and a page of tasks or providers reads the same places over and over:
# the derivation is a pure function of the point, so it is remembered by the point's two
# coordinates. About half of validating a place went to it (GeoPoint's validation, the
# rounding, the cells). Bounded: a place not seen lately is derived again.
AREAS_REMEMBERED = 16_384


@lru_cache(maxsize=AREAS_REMEMBERED)
def _derived_at(longitude: float, latitude: float) -> tuple[GeoPoint, tuple[int, ...]]:
    """`_derived` of the point at these coordinates, the cells as a tuple: the area is a
    frozen model and may be shared; each place gets a dict of cells of its own."""
    derived = _derived(GeoPoint(coordinates=(longitude, latitude)))
    return derived["area"], tuple(derived["cells"].values())


def _plain_coordinates(point: object) -> tuple[float, float] | None:
    """(longitude, latitude) of a point given as GeoPoint validation would surely take
    it, and that the remembered derivation may answer for: a GeoPoint, or a stored
    `{"type": "Point", "coordinates": [lng, lat]}` of two floats; both finite and
    non-zero, since 0.0 and -0.0 are the same key but not the same area (their sign
    shows) and a NaN is never found again. None for anything else, which takes the
    validating path."""
    if isinstance(point, GeoPoint):
        longitude, latitude = point.coordinates
    elif type(point) is dict:
        kind: object = point.get("type", "Point")
        coordinates: Any = point.get("coordinates")
        if type(kind) is not str or kind != "Point":
            return None
        if type(coordinates) not in (list, tuple) or len(coordinates) != 2:
            return None
        longitude, latitude = coordinates
    else:
        return None
    if type(longitude) is not float or type(latitude) is not float:
        return None
    if not (math.isfinite(longitude) and math.isfinite(latitude) and longitude and latitude):
        return None
    return longitude, latitude


FILL_BATCH = 1000


async def fill_in_areas(model: type[Document]) -> int:
    """Store the area and its cells on every place of `model` saved before places had
    them, so that searches find them; returns how many. Repeating it, or running it on
    several instances at once, is harmless: an update applies only while one of them is
    missing (a place saved since carries its own)."""
    collection = model.get_pymongo_collection()
    missing = {
        "place.point": {"$exists": True},
        "$or": [{"place.area": {"$exists": False}}, {"place.cells": {"$exists": False}}],
    }
    filled = 0
    batch: list[UpdateOne] = []
    async for raw in collection.find(missing, {"place.point": 1}):
        derived = _derived(GeoPoint.model_validate(raw["place"]["point"]))
        update = {
            "$set": {
                "place.area": derived["area"].model_dump(),
                "place.cells": derived["cells"],
            }
        }
        batch.append(UpdateOne({"_id": raw["_id"], **missing}, update))
        if len(batch) == FILL_BATCH:
            filled += (await collection.bulk_write(batch, ordered=False)).modified_count
            batch = []
    if batch:
        filled += (await collection.bulk_write(batch, ordered=False)).modified_count
    return filled
