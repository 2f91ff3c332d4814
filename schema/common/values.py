"""Value types shared by every area: money, points, addresses, places."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import strawberry

from documents.geo import Address, GeoPoint, Place
from documents.money import Money, minor_unit_exponent
from resolvers.common.inputs import KEEP, Keep, MoneyInput, PlaceInput
from resolvers.marketplace.task_search import Near
from schema.common.copying import copied

T = TypeVar("T")
R = TypeVar("R")


def given(value: T | None) -> T | Keep:
    """An optional input field: absent or null leave the stored value as it is."""
    return KEEP if value is None or value is strawberry.UNSET else value


def given_as(value: T | None, convert: Callable[[T], R]) -> R | Keep:
    """`given`, converting a value that is there."""
    return KEEP if value is None or value is strawberry.UNSET else convert(value)


def nullable_as(value: T | None, convert: Callable[[T], R]) -> R | Keep | None:
    """An optional input field where null clears the stored value and absence keeps it."""
    if value is strawberry.UNSET:
        return KEEP
    return None if value is None else convert(value)


@strawberry.type(name="Money", description="An amount in the currency's minor unit (cents).")
class MoneyType:
    amount: int = strawberry.field(description="Minor units: 1234 is 12.34 USD.")
    currency: str = strawberry.field(description="ISO 4217 code.")

    @strawberry.field(description='Human-readable, like "12.34 USD".')
    def formatted(self) -> str:
        return str(Money(amount=self.amount, currency=self.currency))

    @strawberry.field(description="Digits after the decimal point for this currency.")
    def exponent(self) -> int:
        return minor_unit_exponent(self.currency) or 0

    @classmethod
    def of(cls, money: Money) -> MoneyType:
        return copied(cls, money)

    @classmethod
    def maybe(cls, money: Money | None) -> MoneyType | None:
        return cls.of(money) if money is not None else None


@strawberry.input(name="MoneyInput")
class MoneyInputType:
    amount: int = strawberry.field(description="Minor units of the currency.")
    currency: str = strawberry.field(description="ISO 4217 code, such as USD.")

    def value(self) -> MoneyInput:
        return MoneyInput(amount=self.amount, currency=self.currency)


@strawberry.type(name="GeoPoint")
class GeoPointType:
    latitude: float
    longitude: float

    @classmethod
    def of(cls, point: GeoPoint) -> GeoPointType:
        return copied(cls, point)


@strawberry.type(name="Address")
class AddressType:
    line1: str
    line2: str | None
    city: str
    region: str | None
    postal_code: str | None
    country: str

    @classmethod
    def of(cls, address: Address) -> AddressType:
        return copied(cls, address)


@strawberry.input(name="AddressInput")
class AddressInputType:
    line1: str
    line2: str | None = None
    city: str
    region: str | None = None
    postal_code: str | None = None
    country: str = strawberry.field(description="ISO 3166-1 alpha-2, such as AU.")

    def value(self) -> Address:
        return Address(
            line1=self.line1,
            line2=self.line2,
            city=self.city,
            region=self.region,
            postal_code=self.postal_code,
            country=self.country,
        )


@strawberry.type(name="Place", description="An exact location: only for the people involved.")
class PlaceType:
    point: GeoPointType
    address: AddressType

    @classmethod
    def of(cls, place: Place) -> PlaceType:
        return cls(point=GeoPointType.of(place.point), address=AddressType.of(place.address))


@strawberry.type(description="Roughly where: a point on a kilometre grid, and the town.")
class Area:
    point: GeoPointType
    city: str
    region: str | None
    postal_code: str | None
    country: str

    # Listed by hand, as what it leaves out is the point: the rounded point and the town,
    # never the street.
    @classmethod
    def of(cls, place: Place) -> Area:
        address = place.address
        return cls(
            point=GeoPointType.of(place.area),
            city=address.city,
            region=address.region,
            postal_code=address.postal_code,
            country=address.country,
        )


@strawberry.input(name="PlaceInput")
class PlaceInputType:
    latitude: float
    longitude: float
    address: AddressInputType

    def value(self) -> PlaceInput:
        return PlaceInput(
            latitude=self.latitude, longitude=self.longitude, address=self.address.value()
        )


@strawberry.input(description="Within `radiusKm` of a point.")
class NearInput:
    latitude: float
    longitude: float
    radius_km: float = 25.0

    def value(self) -> Near:
        return Near(self.latitude, self.longitude, self.radius_km)
