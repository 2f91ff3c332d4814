"""What use cases take from every area's inputs: money and places as clients give them,
and `KEEP` for a field an update leaves as it is (`if_given` checks only the fields given,
`given_fields` writes only those)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Literal, TypeVar

from documents.geo import Address

T = TypeVar("T")
R = TypeVar("R")


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


def if_given(value: T | Keep, check: Callable[[T], R]) -> R | Keep:
    """`check(value)` for a field given: its checked value, as stored. A field left as KEEP
    stays KEEP, unchecked."""
    return KEEP if value is KEEP else check(value)


def given_fields(**values: object) -> dict[str, Any]:
    """What an update sets (its `$set`): each field given, by its document name. A field
    left as KEEP is left out, and so keeps its stored value."""
    return {name: value for name, value in values.items() if value is not KEEP}
