"""A place's area and cells, remembered by its point, are exactly what deriving them
afresh gives: for stored documents and for GeoPoints, near cell edges, across the
antimeridian, near the poles and at awkward values, whatever area or cells were stored."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from pydantic import ValidationError

from documents.geo import Address, GeoPoint, Place, _derived, _derived_at

ADDRESS = {"line1": "1 Test St", "city": "Testville", "country": "AU"}
# Stored areas and cells that are not the point's: the point's must show regardless.
WRONG = {"area": {"type": "Point", "coordinates": [1.0, 1.0]}, "cells": {"s2": 7}}


def _afresh(point: Any) -> dict[str, Any]:
    """What the place's validator gave before derivations were remembered."""
    derived = _derived(GeoPoint.model_validate(point))
    return {"area": derived["area"], "cells": derived["cells"]}


def _shown(place: Place) -> tuple[str, str, dict[str, int]]:
    """Everything of the derivation a reader can see, signs of zeros included."""
    return repr(place.area.coordinates), repr(place.point.coordinates), place.cells


def _points() -> list[Any]:
    rng = random.Random(16)  # noqa: S311 # reproducible test points, not secrets
    points: list[Any] = []
    for latitude, longitude, spread in [
        (-33.87, 151.21, 0.6),
        (-17.5, 179.99, 0.05),
        (89.99, 0.0, 0.02),
        (-89.99, 60.0, 0.02),
        (0.004, -0.004, 0.01),
    ]:
        for _ in range(300):
            lat = max(-90.0, min(90.0, latitude + rng.uniform(-spread, spread)))
            lng = (longitude + rng.uniform(-spread, spread) + 180) % 360 - 180
            points.append({"type": "Point", "coordinates": [lng, lat]})
    # On the grid's half-hundredths, where rounding decides the cell.
    points += [
        {"type": "Point", "coordinates": [i / 200 + 0.000001 * s, -i / 400]}
        for i in range(1, 400)
        for s in (-1, 0, 1)
    ]
    points += [
        {"coordinates": [151.2, -33.8]},  # the type left to its default
        {"type": "Point", "coordinates": (151.2, -33.8), "extra": True},
        {"type": "Point", "coordinates": [0.0, -33.8]},
        {"type": "Point", "coordinates": [-0.0, -33.8]},
        {"type": "Point", "coordinates": [151.2, -0.001]},
        {"type": "Point", "coordinates": [151.2, 0.001]},
        {"type": "Point", "coordinates": [151, -33]},  # integers
        {"type": "Point", "coordinates": ["151.2", "-33.8"]},
        {"type": "Point", "coordinates": [180.0, 90.0]},
        {"type": "Point", "coordinates": [-180.0, -90.0]},
        GeoPoint.at(-33.8688, 151.2093),
        GeoPoint.at(-0.0, 0.0),
    ]
    return points


@pytest.mark.parametrize("stored", [{}, WRONG])
def test_remembered_areas_are_the_derived_ones(stored: dict[str, Any]) -> None:
    _derived_at.cache_clear()
    for point in _points():
        expected = Place.model_validate({"point": point, "address": ADDRESS, **_afresh(point)})
        for _ in range(2):  # derived, then remembered
            place = Place.model_validate({"point": point, "address": ADDRESS, **stored})
            assert _shown(place) == _shown(expected), point
            assert place.model_dump() == expected.model_dump()


def test_a_nan_or_a_wrong_point_is_still_refused() -> None:
    for wrong in (
        {"type": "Point", "coordinates": [math.nan, 1.5]},
        {"type": "Polygon", "coordinates": [151.2, -33.8]},
        {"type": "Point", "coordinates": [151.2]},
        {"type": "Point"},
        "151.2,-33.8",
    ):
        with pytest.raises(ValidationError):
            Place.model_validate({"point": wrong, "address": ADDRESS})


def test_a_place_read_again_is_not_derived_again() -> None:
    _derived_at.cache_clear()
    stored = {
        "point": {"type": "Point", "coordinates": [151.2093, -33.8688]},
        "address": Address(**ADDRESS).model_dump(),
        **WRONG,
    }
    first, second = Place.model_validate(stored), Place.model_validate(stored)
    info = _derived_at.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    assert first == second
    # Each place has cells of its own: one changed in place does not change another's.
    assert first.cells is not second.cells
    first.cells["s2"] = -1
    assert second.cells == Place.model_validate(stored).cells != first.cells
