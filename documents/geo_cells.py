"""Searching near a point with an ordinary index: grid cells of areas, the cells a
search circle touches, and the great-circle distance as an aggregation expression.

Every place stores the cells its area falls in, one per cell size (`area_cells`, kept
by `Place`'s validator, in `CELL_FIELDS`). A search within a radius matches the places
whose cell of one size is among the cells that touch the circle (`covering`), then
measures each from its area (`distance_expression`) and keeps those within the radius.

Why not `$geoNear` and a 2dsphere index: the embedded database (SecantusDB 0.7) looks a
2dsphere query up under every coarser S2 cell up to the cube face, so any radius
decodes every place on that face (bench/README.md, "Issue 16: the embedded database at
demo size"). An `$in` over an ascending index is a set of point lookups on every
engine, not a trick of one: on MongoDB it is an index scan with one interval per cell,
much as the plan `$geoNear` makes from its own S2 covering. Nearest first, a search
reads the circle outwards, in parts of growing reach, until the page is full
(resolvers/marketplace/task_search.py `outwards`), as `$geoNear` walks out in annuli.

How it scales: the sizes are 0.02°, 0.1°, 0.5° and 5° of latitude and longitude, and a
circle takes the finest size whose covering has at most `MOST_CELLS` cells. A circle of
radius r touches about π/4 (2r / side + 1)² cells of a side, once the corners it misses
are dropped: at mid latitudes the 0.02° cells (2 km) up to about 15 km, the 0.1° ones
up to about 80 km, the 0.5° ones up to about 400 km, and 5° cells up to the maximum
radius of 500 km; nearer the poles, where meridians converge and a cell is narrower,
each size gives way sooner. The places read are those within the circle and a border
about one cell wide: at most a few times the circle's own, never a whole region.

Privacy: cells are derived from the area alone (never from the exact point) and are
coarser than it, so they tell nothing the area does not; distances are measured from
the area, as `$geoNear` measured them.
"""

from __future__ import annotations

import math
from typing import Any

EARTH_RADIUS_M = 6_378_100.0
"""The sphere MongoDB's spherical `$geoNear` measures on (kRadiusOfEarthInMeters; the
embedded database uses the same), so distances are those `$geoNear` gave."""

PER_DEGREE = 100
"""Areas lie on a grid of hundredths of a degree (documents/geo.py), so cells are
counted in whole hundredths: a cell is a function of integers, with no rounding that
could put an area in one cell when stored and in another when searched."""

SIDES = (2, 10, 50, 500)
"""Cell sides in hundredths of a degree, finest first; each divides 180° and 360°."""

MOST_CELLS = 160
"""The largest covering sent before the next coarser size is tried."""

CELL_NAMES = tuple(f"s{side}" for side in SIDES)
"""A place's cells are a document of one number per size, `s2` to `s500`, each a field of
its own with its own index, rather than one array: SecantusDB re-checks an `$in`
against every element of an array (and the array itself), which made that check cost
five times as much (bench/README.md)."""
CELLS_FIELD = "place.cells"
AREA_FIELD = "place.area"

_LATITUDE_SPAN = 90 * PER_DEGREE
_LONGITUDE_SPAN = 180 * PER_DEGREE
_TURN = 360 * PER_DEGREE
_SIZE_CODE = 100_000_000
_ROW_CODE = 10_000


def cell_field(cell: int) -> str:
    """The field of a place holding cells of `cell`'s size."""
    return f"{CELLS_FIELD}.{CELL_NAMES[cell // _SIZE_CODE - 1]}"


CELL_FIELDS = tuple(f"{CELLS_FIELD}.{name}" for name in CELL_NAMES)


def in_cells(cells: list[int]) -> dict[str, Any]:
    """A filter for the places in `cells`, all of one size."""
    field = cell_field(cells[0]) if cells else CELL_FIELDS[0]
    return {field: {"$in": cells}}


def _cell(size_index: int, row: int, column: int) -> int:
    """One number per cell: size (1 to 4), then row (south to north), then column
    (west to east from the antimeridian), readable in decimal."""
    return (size_index + 1) * _SIZE_CODE + row * _ROW_CODE + column


def _hundredths(degrees: float) -> int:
    return round(degrees * PER_DEGREE)


def area_cells(latitude: float, longitude: float) -> list[int]:
    """The cell of each size holding an area (a point on the hundredths grid), finest
    first."""
    lat, lng = _hundredths(latitude), _hundredths(longitude)
    return [
        _cell(i, (lat + _LATITUDE_SPAN) // side, ((lng + _LONGITUDE_SPAN) % _TURN) // side)
        for i, side in enumerate(SIDES)
    ]


def great_circle_m(lat_a: float, lng_a: float, lat_b: float, lng_b: float) -> float:
    """The haversine distance in metres, operation for operation as
    `distance_expression` computes it, with a at the area and b at the point searched."""
    phi_a = math.radians(lat_a)
    phi_b = math.radians(lat_b)
    half_lat = math.sin((phi_b - phi_a) / 2)
    half_lng = math.sin(math.radians(lng_b - lng_a) / 2)
    h = half_lat * half_lat + math.cos(phi_a) * math.cos(phi_b) * (half_lng * half_lng)
    return 2 * math.asin(math.sqrt(min(h, 1.0))) * EARTH_RADIUS_M


def distance_expression(latitude: float, longitude: float) -> dict[str, Any]:
    """An aggregation expression: the distance in metres from a place's area to the
    point, by the haversine formula on `EARTH_RADIUS_M` (`great_circle_m`).

    The point's own terms are computed here once; each place's are computed by the
    database, in the order `great_circle_m` takes them, so that both give the same bits.
    """
    phi_b = math.radians(latitude)
    coordinates = f"${AREA_FIELD}.coordinates"
    phi_a = {"$degreesToRadians": {"$arrayElemAt": [coordinates, 1]}}
    lng_a = {"$arrayElemAt": [coordinates, 0]}
    h = {
        "$add": [
            {"$multiply": ["$$half_lat", "$$half_lat"]},
            {
                "$multiply": [
                    {"$multiply": [{"$cos": "$$phi_a"}, math.cos(phi_b)]},
                    {"$multiply": ["$$half_lng", "$$half_lng"]},
                ]
            },
        ]
    }
    return {
        "$let": {
            "vars": {"phi_a": phi_a},
            "in": {
                "$let": {
                    "vars": {
                        "half_lat": {"$sin": {"$divide": [{"$subtract": [phi_b, "$$phi_a"]}, 2]}},
                        "half_lng": {
                            "$sin": {
                                "$divide": [
                                    {"$degreesToRadians": {"$subtract": [longitude, lng_a]}},
                                    2,
                                ]
                            }
                        },
                    },
                    "in": {
                        "$multiply": [
                            {"$multiply": [2, {"$asin": {"$sqrt": {"$min": [h, 1.0]}}}]},
                            EARTH_RADIUS_M,
                        ]
                    },
                }
            },
        }
    }


def covering(
    latitude: float, longitude: float, radius_m: float, beyond_m: float = 0.0
) -> list[int]:
    """Cells of one size holding every area within `radius_m` of the point: the finest
    size with at most `MOST_CELLS` of them, or the coarsest. With `beyond_m`, without
    the cells whose every area is nearer than that (they hold none a page after a
    cursor at that distance can show)."""
    for i in range(len(SIDES)):
        last = i == len(SIDES) - 1
        cells = _covering(i, latitude, longitude, radius_m, beyond_m, last=last)
        if cells is not None and len(cells) <= MOST_CELLS:
            return cells
    assert cells is not None
    return cells


def _covering(
    size_index: int,
    latitude: float,
    longitude: float,
    radius_m: float,
    beyond_m: float,
    *,
    last: bool,
) -> list[int] | None:
    """The covering at one size; None, without working it out, if the rectangle
    around the circle holds so many cells that too many would be left (dropping those
    the circle misses keeps at least about π/4 of them)."""
    side = SIDES[size_index]
    # A little more than the radius: rounding must never leave an area out (an extra
    # cell costs a lookup; a missing one, a wrong answer).
    reach = radius_m * (1 + 1e-9) + 1.0
    angle = reach / EARTH_RADIUS_M
    south = _hundredths_floor(latitude - math.degrees(angle))
    north = _hundredths_ceil(latitude + math.degrees(angle))
    columns = _TURN // side
    rows = range(
        (max(south, -_LATITUDE_SPAN) + _LATITUDE_SPAN) // side,
        (min(north, _LATITUDE_SPAN) + _LATITUDE_SPAN) // side + 1,
    )
    if south <= -_LATITUDE_SPAN or north >= _LATITUDE_SPAN:
        spans = range(columns)  # a pole is within reach: every meridian
    else:
        ratio = math.sin(angle) / math.cos(math.radians(latitude))
        if ratio >= 1:
            spans = range(columns)
        else:
            # The circle's widest reach east and west, at a latitude nearer the pole.
            half_width = math.degrees(math.asin(ratio))
            west = _hundredths_floor(longitude - half_width) + _LONGITUDE_SPAN
            east = _hundredths_ceil(longitude + half_width) + _LONGITUDE_SPAN
            first, final = west // side, east // side
            spans = range(first, final + 1) if final - first + 1 < columns else range(columns)
    if not last and len(rows) * len(spans) > 2 * MOST_CELLS:
        return None
    cells = []
    for row in rows:
        for span in spans:
            column = span % columns
            nearest, farthest = _bounds(side, row, column, latitude, longitude)
            if nearest <= reach and farthest >= beyond_m:
                cells.append(_cell(size_index, row, column))
    return sorted(set(cells))


def _bounds(
    side: int, row: int, column: int, latitude: float, longitude: float
) -> tuple[float, float]:
    """Bounds on the distance from the point of any area in the cell: the distance to
    the cell's centre, less and plus the farthest of the cell's areas is from that
    centre (on a cell less than half the globe wide, that is a corner: along a meridian
    or a parallel the distance from a point peaks at an end), and a metre for rounding."""
    south = row * side - _LATITUDE_SPAN
    north = min(south + side - 1, _LATITUDE_SPAN)
    west = column * side - _LONGITUDE_SPAN
    east = west + side - 1
    mid_lat = (south + north) / 2 / PER_DEGREE
    mid_lng = (west + east) / 2 / PER_DEGREE
    corner = max(
        great_circle_m(lat / PER_DEGREE, lng / PER_DEGREE, mid_lat, mid_lng)
        for lat in (south, north)
        for lng in (west, east)
    )
    centre = great_circle_m(mid_lat, mid_lng, latitude, longitude)
    return centre - corner - 1.0, centre + corner + 1.0


def _hundredths_floor(degrees: float) -> int:
    return math.floor(degrees * PER_DEGREE)


def _hundredths_ceil(degrees: float) -> int:
    return math.ceil(degrees * PER_DEGREE)
