"""What providers and customers tell the marketplace about themselves.

A profile's id is its user's id: one per user, found without another index.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from beanie import Document, PydanticObjectId
from pydantic import BaseModel, Field, model_validator
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow
from documents.geo import Place
from documents.geo_cells import CELL_FIELDS
from documents.money import Money

MINUTES_PER_DAY = 24 * 60
DAYS_PER_WEEK = 7


class IdentityVerification(StrEnum):
    UNVERIFIED = "unverified"
    PENDING = "pending"
    VERIFIED = "verified"


class TimeRange(BaseModel):
    """Wall-clock minutes since local midnight, [start, end)."""

    start_minute: int = Field(ge=0, lt=MINUTES_PER_DAY)
    end_minute: int = Field(gt=0, le=MINUTES_PER_DAY)

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.end_minute <= self.start_minute:
            raise ValueError("a time range must end after it starts")
        return self


class ExceptionKind(StrEnum):
    UNAVAILABLE = "unavailable"
    """Not working: the whole day, or only the ranges given."""
    EXTRA_HOURS = "extra_hours"
    """Working these ranges on top of the weekly hours."""


class ScheduleException(BaseModel):
    day: date
    kind: ExceptionKind
    ranges: list[TimeRange] = Field(default_factory=list)


def no_hours() -> list[list[TimeRange]]:
    return [[] for _ in range(DAYS_PER_WEEK)]


class Rating(BaseModel):
    """Kept as a sum and a count, updated together; the average is derived from them."""

    sum: int = 0
    count: int = 0
    average: float | None = None


class ProviderProfile(Document):
    bio: str = ""
    skills: list[str] = Field(default_factory=list)
    years_experience: int = 0
    hourly_rate: Money | None = None
    available: bool = True
    place: Place | None = None
    service_radius_km: int = 10
    time_zone: str = "UTC"
    identity_verification: IdentityVerification = IdentityVerification.UNVERIFIED
    rating: Rating = Field(default_factory=Rating)
    completed_jobs: int = 0
    cancellations: int = 0
    """Deals the provider stepped back from after accepting them (shown to customers)."""
    weekly_hours: list[list[TimeRange]] = Field(default_factory=no_hours)
    """Monday first, in `time_zone`."""
    exceptions: list[ScheduleException] = Field(default_factory=list)
    buffer_minutes: int = 0
    """Kept free before and after every booking."""
    schedule_version: int = 0
    """Bumped by every booking that takes time: concurrent bookings of one provider
    collide on it, so their transactions are serialised and cannot double-book."""
    # Payouts: the provider's Stripe Connect (Express) account. Only its id and the flags
    # the gateway reports are kept; bank details stay with Stripe.
    stripe_account_id: str | None = None
    payouts_enabled: bool = False
    charges_enabled: bool = False
    details_submitted: bool = False
    account_synced_at: datetime | None = None
    """When the gateway reported the flags above: an older event changes nothing."""
    # Identity: the latest verification session (its id and Stripe's status only).
    identity_session_id: str | None = None
    identity_session_status: str | None = None
    """requires_input, processing, verified or canceled."""
    identity_attempts: int = 0
    """Sessions started so far; the next one's idempotency key counts on from it."""
    identity_synced_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "provider_profiles"
        use_revision = False
        indexes = [
            # Provider search (resolvers/marketplace/discovery.py): near a point; best rated, in a
            # skill or not; cheapest in a currency. Near a point, by the cells of their
            # areas (documents/geo_cells.py).
            *[IndexModel([(field, ASCENDING)]) for field in CELL_FIELDS],
            IndexModel(
                [("skills", ASCENDING), ("rating.average", DESCENDING), ("_id", DESCENDING)]
            ),
            IndexModel([("rating.average", DESCENDING), ("_id", DESCENDING)]),
            # `account.updated` finds the provider by connected account.
            IndexModel([("stripe_account_id", ASCENDING)], sparse=True),
            IndexModel(
                [
                    ("hourly_rate.currency", ASCENDING),
                    ("hourly_rate.amount", ASCENDING),
                    ("_id", ASCENDING),
                ]
            ),
        ]


class SavedAddress(BaseModel):
    id: str
    label: str
    place: Place


class CustomerProfile(Document):
    addresses: list[SavedAddress] = Field(default_factory=list)
    rating: Rating = Field(default_factory=Rating)
    """How providers rated this customer."""
    request_version: int = 0
    """Bumped by each booking request, so that of two concurrent requests of the customer
    one conflicts and, retried, counts the other against GIGQL_MAX_PENDING_BOOKINGS."""
    updated_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "customer_profiles"
        use_revision = False


def profile_owner(profile: ProviderProfile | CustomerProfile) -> PydanticObjectId:
    assert profile.id is not None
    return profile.id
