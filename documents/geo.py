"""Places: GeoJSON points (for the 2dsphere indexes) and postal addresses."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict
from pymongo import GEOSPHERE, IndexModel

# Rounding a coordinate to two decimals moves it by at most ~0.6 km: an area, not a door.
APPROXIMATE_DECIMALS = 2


def geo_index(field: str) -> IndexModel:
    """A 2dsphere index on a GeoPoint field.

    The index version is MongoDB's default, spelled out: SecantusDB records it on the
    index and then refuses the same index without it at the next start-up.
    """
    return IndexModel([(field, GEOSPHERE)], **{"2dsphereIndexVersion": 3})


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
    """Where something happens: a point for searching and the address people go to."""

    model_config = ConfigDict(frozen=True)

    point: GeoPoint
    address: Address
