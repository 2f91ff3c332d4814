"""What use cases take from every area's inputs: money and places as clients give them,
and `KEEP` for a field an update leaves as it is."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal

from documents.geo import Address


@dataclass(frozen=True)
class PlaceInput:
    latitude: float
    longitude: float
    address: Address


@dataclass(frozen=True)
class MoneyInput:
    amount: int
    currency: str


class _Keep(Enum):
    KEEP = "keep"


KEEP: Final = _Keep.KEEP
"""Leave a field as it is (as opposed to None, which clears it)."""
Keep = Literal[_Keep.KEEP]
