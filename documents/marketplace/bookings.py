"""Bookings of a provider's package for a time slot; the moves between their states are
declared in documents/lifecycles.py (`BOOKING`).

A booking holds its time while pending (a request, until it is answered or expires),
confirmed, in progress or disputed, and keeps its buffer free on both sides: two
bookings of a provider are at least the larger of their two buffers apart. The price,
the buffer and the cancellation policy are copied onto the booking when it is made, so
later changes to any do not rewrite what was agreed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from beanie import Document, PydanticObjectId
from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow
from documents.geo import Place
from documents.marketplace.packages import PackageType
from documents.money import Money


class BookingStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    DISPUTED = "disputed"
    """Its payment is frozen until an admin decides (resolvers/payments/disputes/disputes.py)."""


HOLDING_STATUSES = frozenset(
    {
        BookingStatus.PENDING,
        BookingStatus.CONFIRMED,
        BookingStatus.IN_PROGRESS,
        BookingStatus.DISPUTED,
    }
)
"""A booking in these states keeps its time from being booked again."""


class PackageSnapshot(BaseModel):
    name: str
    type: PackageType
    duration_minutes: int


class PriceSnapshot(BaseModel):
    package_price: Money
    platform_fee: Money
    """The customer-side service fee, `fee_bp` basis points of the package price."""
    total: Money
    fee_bp: int

    @classmethod
    def with_fee(cls, package_price: Money, fee_bp: int) -> PriceSnapshot:
        fee = package_price.basis_points(fee_bp)
        return cls(
            package_price=package_price, platform_fee=fee, total=package_price + fee, fee_bp=fee_bp
        )


class RefundTier(BaseModel):
    min_hours_before: int
    """Applies when the customer cancels at least this many hours before the start."""
    refund_bp: int


class CancellationPolicy(BaseModel):
    tiers: list[RefundTier]
    """Most generous first; cancelling later than the last tier refunds nothing."""
    provider_cancel_refund_bp: int = 10_000

    def refund_bp(self, by: CancelledBy, notice: timedelta) -> int:
        """The share refunded when `by` cancels `notice` before the start (negative once
        the start has passed)."""
        if by is CancelledBy.PROVIDER:
            return self.provider_cancel_refund_bp
        for tier in self.tiers:
            if notice >= timedelta(hours=tier.min_hours_before):
                return tier.refund_bp
        return 0


class CancelledBy(StrEnum):
    CUSTOMER = "customer"
    PROVIDER = "provider"
    SYSTEM = "system"
    """Nobody: a deadline passed (the payment did not come, the request was not answered)."""


class Cancellation(BaseModel):
    by: PydanticObjectId | None
    """None when a deadline ended it."""
    role: CancelledBy
    at: datetime = Field(default_factory=utcnow)
    reason: str
    rejected: bool = False
    """The provider declined a pending request rather than cancelling a confirmed one."""
    refund_bp: int
    refundable: Money


class BookingStatusChange(BaseModel):
    status: BookingStatus
    at: datetime = Field(default_factory=utcnow)
    by: PydanticObjectId | None = None
    note: str | None = None
    move: str | None = None
    """The lifecycle's move that made it (documents/lifecycles.py)."""


class Booking(Document):
    customer_id: PydanticObjectId
    provider_id: PydanticObjectId
    package_id: PydanticObjectId
    package: PackageSnapshot
    start_at: datetime
    end_at: datetime
    buffer_minutes: int = 0
    service_place: Place
    instructions: str = ""
    price: PriceSnapshot
    policy: CancellationPolicy
    status: BookingStatus = BookingStatus.PENDING
    respond_by: datetime | None = None
    """When the request expires if the provider has not answered it
    (resolvers/marketplace/booking_requests.py); None on bookings requested before requests
    expired."""
    cancellation: Cancellation | None = None
    history: list[BookingStatusChange] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "bookings"
        use_revision = False
        indexes = [
            IndexModel(
                [("provider_id", ASCENDING), ("status", ASCENDING), ("start_at", ASCENDING)]
            ),
            IndexModel([("provider_id", ASCENDING), ("start_at", DESCENDING), ("_id", DESCENDING)]),
            IndexModel([("customer_id", ASCENDING), ("start_at", DESCENDING), ("_id", DESCENDING)]),
            # A customer's requests waiting for an answer, and the requests due to expire.
            IndexModel([("customer_id", ASCENDING), ("status", ASCENDING)]),
            IndexModel([("status", ASCENDING), ("respond_by", ASCENDING)]),
        ]

    @property
    def participants(self) -> list[PydanticObjectId]:
        return [self.customer_id, self.provider_id]
