"""Bookings as the graph shows them (to their two parties and admins), and the queries
for open slots and one's own bookings."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

import strawberry
from bson import ObjectId
from strawberry import relay

from documents.errors import DomainError, ErrorCode
from documents.marketplace.bookings import (
    Booking,
    BookingStatus,
    BookingStatusChange,
    Cancellation,
    CancellationPolicy,
    CancelledBy,
    PackageSnapshot,
    PriceSnapshot,
)
from documents.marketplace.packages import PackageType
from documents.payments.escrow import booking_deal
from resolvers.common.pagination import paginate
from resolvers.marketplace import bookings
from resolvers.marketplace.bookings import can_see_booking
from schema.accounts.users import UserNode, user_node
from schema.common.context import Info
from schema.common.copying import copied
from schema.common.limits import bounded
from schema.common.permissions import IsAuthenticated, IsParticipantOrAdmin, allow
from schema.common.relay import decode_id, requested_page, to_connection, visible_documents
from schema.common.values import MoneyType, PlaceType
from schema.marketplace.packages import ServicePackageNode
from schema.payments.escrow import EscrowNode, escrow_of

BookingStatusType = strawberry.enum(BookingStatus, name="BookingStatus")
# One enum for a side of a booking: who cancelled, and whose bookings to list.
BookingRoleType = strawberry.enum(CancelledBy, name="BookingRole")


@strawberry.type(description="The package as it was when booked.")
class BookedPackage:
    name: str
    type: PackageType
    duration_minutes: int

    @classmethod
    def of(cls, snapshot: PackageSnapshot) -> BookedPackage:
        return copied(cls, snapshot)


@strawberry.type(description="The price agreed when booked.")
class BookingPrice:
    package_price: MoneyType
    platform_fee: MoneyType = strawberry.field(description="The customer's service fee.")
    total: MoneyType = strawberry.field(description="What the customer pays.")
    fee_bp: int = strawberry.field(description="The service fee in basis points of the price.")

    @classmethod
    def of(cls, price: PriceSnapshot) -> BookingPrice:
        return copied(
            cls,
            price,
            package_price=MoneyType.of(price.package_price),
            platform_fee=MoneyType.of(price.platform_fee),
            total=MoneyType.of(price.total),
        )


@strawberry.type(name="RefundTier")
class RefundTierType:
    min_hours_before: int = strawberry.field(
        description="Applies when the customer cancels at least this long before the start."
    )
    refund_bp: int


@strawberry.type(name="CancellationPolicy", description="Agreed when booked.")
class CancellationPolicyType:
    tiers: list[RefundTierType] = strawberry.field(
        description="Most generous first; cancelling later refunds nothing.", metadata=bounded(5)
    )
    provider_cancel_refund_bp: int = strawberry.field(
        description="Refunded when the provider cancels or declines."
    )

    @classmethod
    def of(cls, policy: CancellationPolicy) -> CancellationPolicyType:
        return copied(cls, policy, tiers=[copied(RefundTierType, t) for t in policy.tiers])


@strawberry.type(name="BookingCancellation")
class BookingCancellationType:
    role: CancelledBy = strawberry.field(description="The side that cancelled.")
    at: datetime
    reason: str
    rejected: bool = strawberry.field(description="The provider declined the request.")
    refund_bp: int = strawberry.field(description="The share of the total refunded.")
    refundable: MoneyType
    by_id: strawberry.Private[ObjectId | None]

    @strawberry.field
    async def by(self, info: Info) -> UserNode | None:
        return await user_node(info, self.by_id)

    @classmethod
    def of(cls, cancellation: Cancellation) -> BookingCancellationType:
        return copied(
            cls,
            cancellation,
            refundable=MoneyType.of(cancellation.refundable),
            by_id=cancellation.by,
        )


@strawberry.type(name="BookingStatusChange")
class BookingStatusChangeType:
    status: BookingStatus
    at: datetime
    by_id: strawberry.Private[ObjectId | None]

    @strawberry.field
    async def by(self, info: Info) -> UserNode | None:
        return await user_node(info, self.by_id)

    @classmethod
    def of(cls, change: BookingStatusChange) -> BookingStatusChangeType:
        return copied(cls, change, by_id=change.by)


@strawberry.type(name="Booking", description="A customer's booking of a provider's package.")
class BookingNode(relay.Node):
    id: relay.NodeID[str]
    status: BookingStatus
    start: datetime
    end: datetime = strawberry.field(description="The start plus the package's duration.")
    respond_by: datetime | None = strawberry.field(
        description="While pending: the provider confirms or declines by then, else the "
        "request expires (cancelled, its time free again)."
    )
    buffer_minutes: int = strawberry.field(
        description="The provider's buffer kept free before and after."
    )
    package_snapshot: BookedPackage
    price: BookingPrice
    cancellation_policy: CancellationPolicyType
    cancellation: BookingCancellationType | None
    created_at: datetime
    updated_at: datetime
    doc: strawberry.Private[Booking]

    @classmethod
    def of(cls, booking: Booking) -> BookingNode:
        return copied(
            cls,
            booking,
            id=str(booking.id),
            start=booking.start_at,
            end=booking.end_at,
            package_snapshot=BookedPackage.of(booking.package),
            price=BookingPrice.of(booking.price),
            cancellation_policy=CancellationPolicyType.of(booking.policy),
            cancellation=BookingCancellationType.of(booking.cancellation)
            if booking.cancellation
            else None,
            doc=booking,
        )

    @property
    def participant_ids(self) -> list[ObjectId]:
        return list(self.doc.participants)

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[BookingNode | None]:
        bookings = await visible_documents(
            info, node_ids, info.context.loaders.bookings.load_many, can_see_booking
        )
        return [cls.of(b) if b else None for b in bookings]

    @strawberry.field
    async def customer(self, info: Info) -> UserNode:
        customer = await user_node(info, self.doc.customer_id)
        assert customer is not None
        return customer

    @strawberry.field
    async def provider(self, info: Info) -> UserNode:
        provider = await user_node(info, self.doc.provider_id)
        assert provider is not None
        return provider

    @strawberry.field(
        description="The package as it is now; see packageSnapshot for the booked one."
    )
    async def package(self, info: Info) -> ServicePackageNode:
        package = await info.context.loaders.packages.load(self.doc.package_id)
        assert package is not None
        return ServicePackageNode.of(package)

    @strawberry.field(
        extensions=allow(IsParticipantOrAdmin(), silent=True),
        description="Where the work is done: for the customer, the provider and admins.",
    )
    def service_location(self) -> PlaceType | None:
        return PlaceType.of(self.doc.service_place)

    @strawberry.field(
        extensions=allow(IsParticipantOrAdmin(), silent=True),
        description="The customer's notes for the provider.",
    )
    def instructions(self) -> str | None:
        return self.doc.instructions

    @strawberry.field(
        description="The payment, once confirmed: for the customer, the provider and admins."
    )
    async def escrow(self, info: Info) -> EscrowNode | None:
        return await escrow_of(info, booking_deal(self.id))

    @strawberry.field(metadata=bounded(len(BookingStatus)))
    def history(self) -> list[BookingStatusChangeType]:
        return [BookingStatusChangeType.of(change) for change in self.doc.history]


@strawberry.type
class BookingConnection(relay.Connection[BookingNode]):
    pass


@strawberry.type
class BookingQuery:
    @strawberry.field(
        description="When the package can be booked on a date (the provider's local date), "
        "as UTC instants, earliest first."
    )
    async def available_slots(
        self, info: Info, provider_id: relay.GlobalID, package_id: relay.GlobalID, date: date
    ) -> list[datetime]:
        return await bookings.available_slots(
            info.context.services,
            decode_id(provider_id, UserNode, "providerId"),
            decode_id(package_id, ServicePackageNode, "packageId"),
            date,
        )

    @strawberry.field(
        extensions=allow(IsAuthenticated()),
        description="Bookings I made (CUSTOMER) or take (PROVIDER), latest start first.",
    )
    async def my_bookings(
        self,
        info: Info,
        role: CancelledBy = CancelledBy.CUSTOMER,
        statuses: list[BookingStatus] | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> BookingConnection:
        viewer = await info.context.require_viewer()
        if role is CancelledBy.SYSTEM:  # a side that cancels, but takes part in no booking
            raise DomainError(ErrorCode.INVALID_INPUT, "List as CUSTOMER or PROVIDER.", "role")
        side = "customer_id" if role is CancelledBy.CUSTOMER else "provider_id"
        filters: dict[str, object] = {side: viewer.user_id}
        if statuses:
            filters["status"] = {"$in": [s.value for s in statuses]}
        page = await paginate(
            Booking, filters, [("start_at", -1), ("_id", -1)], requested_page(info, first, after)
        )
        return to_connection(BookingConnection, page, BookingNode.of)
