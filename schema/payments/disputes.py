"""Disputes as the graph shows them: to the deal's payer and provider, and to admins, who
decide them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import partial

import strawberry
from bson import ObjectId
from strawberry import relay

from documents.errors import DomainError, ErrorCode
from documents.payments.disputes import (
    MAX_EVIDENCE_URLS,
    Dispute,
    DisputeOutcome,
    DisputeStatus,
    Evidence,
    Resolution,
)
from resolvers.common.lookups import by_ids
from resolvers.payments.disputes import disputes
from resolvers.payments.disputes.disputes import Deal, can_see_dispute
from schema.accounts.users import UserNode
from schema.common.context import Info
from schema.common.copying import copied
from schema.common.limits import bounded
from schema.common.payloads import Payload, mutation_payload
from schema.common.permissions import IsAdmin, IsAuthenticated, allow
from schema.common.relay import decode_id, requested_page, to_connection, visible_documents
from schema.common.values import MoneyInputType, MoneyType
from schema.marketplace.bookings import BookingNode
from schema.marketplace.tasks import TaskNode
from schema.payments.escrow import EscrowNode

DisputeStatusType = strawberry.enum(DisputeStatus, name="DisputeStatus")
DisputeOutcomeType = strawberry.enum(
    DisputeOutcome,
    name="DisputeOutcome",
    description="RELEASE pays the provider, REFUND returns everything refundable to the "
    "payer, SPLIT refunds `refundAmount` and pays the provider the rest.",
)


@strawberry.type(name="DisputeEvidence", description="A link to a file stored elsewhere.")
class EvidenceType:
    url: str
    at: datetime
    by_id: strawberry.Private[ObjectId]

    @classmethod
    def of(cls, evidence: Evidence) -> EvidenceType:
        return copied(cls, evidence, by_id=evidence.by)

    @strawberry.field(description="Who added it: the payer or the provider.")
    async def by(self, info: Info) -> UserNode | None:
        user = await info.context.loaders.users.load(self.by_id)
        return UserNode.of(user) if user else None


@strawberry.type(name="DisputeResolution", description="An admin's decision.")
class ResolutionType:
    outcome: DisputeOutcome
    refund: MoneyType = strawberry.field(
        description="Back to the payer by the decision; the provider is paid the rest held."
    )
    note: str
    resolved_at: datetime
    admin_id: strawberry.Private[ObjectId]

    @classmethod
    def of(cls, resolution: Resolution) -> ResolutionType:
        return copied(
            cls,
            resolution,
            refund=MoneyType.of(resolution.refund),
            resolved_at=resolution.at,
            admin_id=resolution.admin_id,
        )

    @strawberry.field
    async def admin(self, info: Info) -> UserNode | None:
        user = await info.context.loaders.users.load(self.admin_id)
        return UserNode.of(user) if user else None


@strawberry.type(
    name="Dispute", description="A contested deal: its payment is frozen until an admin decides."
)
class DisputeNode(relay.Node):
    id: relay.NodeID[str]
    status: DisputeStatus
    milestone: int | None = strawberry.field(
        description="The task's milestone disputed, for a task paid in milestones."
    )
    reason: str
    evidence: list[EvidenceType] = strawberry.field(metadata=bounded(MAX_EVIDENCE_URLS))
    resolution: ResolutionType | None
    created_at: datetime
    updated_at: datetime
    doc: strawberry.Private[Dispute]

    @classmethod
    def of(cls, dispute: Dispute) -> DisputeNode:
        return copied(
            cls,
            dispute,
            id=str(dispute.id),
            evidence=[EvidenceType.of(e) for e in dispute.evidence],
            resolution=ResolutionType.of(dispute.resolution) if dispute.resolution else None,
            doc=dispute,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[DisputeNode | None]:
        found = await visible_documents(info, node_ids, partial(by_ids, Dispute), can_see_dispute)
        return [cls.of(d) if d else None for d in found]

    @strawberry.field(description="Who opened it: the payer or the provider.")
    async def opened_by(self, info: Info) -> UserNode | None:
        user = await info.context.loaders.users.load(self.doc.opened_by)
        return UserNode.of(user) if user else None

    @strawberry.field
    async def escrow(self, info: Info) -> EscrowNode | None:
        escrow = await info.context.loaders.escrows.load(self.doc.escrow_id)
        return EscrowNode.of(escrow) if escrow else None

    @strawberry.field(description="The disputed task; null for a booking.")
    async def task(self, info: Info) -> TaskNode | None:
        if self.doc.task_id is None:
            return None
        task = await info.context.loaders.tasks.load(self.doc.task_id)
        return TaskNode.of(task) if task else None

    @strawberry.field(description="The disputed booking; null for a task.")
    async def booking(self, info: Info) -> BookingNode | None:
        if self.doc.booking_id is None:
            return None
        booking = await info.context.loaders.bookings.load(self.doc.booking_id)
        return BookingNode.of(booking) if booking else None


@strawberry.type
class DisputeConnection(relay.Connection[DisputeNode]):
    pass


@strawberry.type
class DisputeQuery:
    @strawberry.field(
        extensions=allow(IsAdmin()),
        description="Disputes oldest first: with status OPEN, the queue to decide.",
    )
    async def disputes(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        status: DisputeStatus | None = None,
    ) -> DisputeConnection:
        page = await disputes.disputes(status, requested_page(info, first, after))
        return to_connection(DisputeConnection, page, DisputeNode.of)


def decode_deal(deal_id: relay.GlobalID) -> Deal:
    """A task's or a booking's global id."""
    if deal_id.type_name == "Booking":
        return Deal("booking", decode_id(deal_id, BookingNode, "dealId"))
    if deal_id.type_name == "Task":
        return Deal("task", decode_id(deal_id, TaskNode, "dealId"))
    raise DomainError(ErrorCode.INVALID_ID, "Not the id of a Task or Booking.", "dealId")


@strawberry.input
class OpenDisputeInput:
    deal_id: relay.GlobalID = strawberry.field(description="The task's or the booking's id.")
    milestone: int | None = strawberry.field(
        default=None,
        description="For a task paid in milestones (and only then): the milestone in work, "
        "the first not approved, whose payment is disputed.",
    )
    reason: str
    evidence_urls: list[str] = strawberry.field(
        default_factory=list, description="https links to photos or documents stored elsewhere."
    )


@strawberry.input
class AddDisputeEvidenceInput:
    dispute_id: relay.GlobalID
    evidence_urls: list[str]


@strawberry.input
class ResolveDisputeInput:
    dispute_id: relay.GlobalID
    outcome: DisputeOutcome
    refund_amount: MoneyInputType | None = strawberry.field(
        default=None, description="For SPLIT only: what goes back to the payer."
    )
    note: str = strawberry.field(default="", description="Why; kept with the decision.")


@strawberry.type
class DisputePayload(Payload):
    dispute: DisputeNode | None = None


@strawberry.type
class OpenDisputePayload(DisputePayload):
    pass


@strawberry.type
class AddDisputeEvidencePayload(DisputePayload):
    pass


@strawberry.type
class ResolveDisputePayload(DisputePayload):
    pass


@strawberry.type
class DisputeMutation:
    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Payer or provider: contest a deal whose money is held (of a task paid "
        "in milestones, the milestone in work). The task or booking becomes DISPUTED and "
        "nothing is released until an admin decides.",
    )
    @mutation_payload
    async def open_dispute(self, info: Info, input: OpenDisputeInput) -> OpenDisputePayload:
        viewer = await info.context.require_viewer()
        dispute = await disputes.open_dispute(
            info.context.services,
            viewer,
            decode_deal(input.deal_id),
            input.reason,
            input.evidence_urls,
            input.milestone,
        )
        return OpenDisputePayload(dispute=DisputeNode.of(dispute))

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Payer or provider: add evidence links to an open dispute.",
    )
    @mutation_payload
    async def add_dispute_evidence(
        self, info: Info, input: AddDisputeEvidenceInput
    ) -> AddDisputeEvidencePayload:
        viewer = await info.context.require_viewer()
        dispute = await disputes.add_evidence(
            info.context.services,
            viewer,
            decode_id(input.dispute_id, DisputeNode, "disputeId"),
            input.evidence_urls,
        )
        return AddDisputeEvidencePayload(dispute=DisputeNode.of(dispute))

    @strawberry.mutation(
        extensions=allow(IsAdmin()),
        description="Decide an open dispute (audited): the money moves as decided, and the "
        "task or booking is completed (RELEASE, SPLIT) or cancelled (REFUND); a task whose "
        "milestone before the last is released or split returns to IN_PROGRESS.",
    )
    @mutation_payload
    async def resolve_dispute(
        self, info: Info, input: ResolveDisputeInput
    ) -> ResolveDisputePayload:
        admin = await info.context.require_viewer()
        dispute = await disputes.resolve_dispute(
            info.context.services,
            info.context.meta,
            admin,
            decode_id(input.dispute_id, DisputeNode, "disputeId"),
            input.outcome,
            input.refund_amount.value() if input.refund_amount else None,
            input.note,
        )
        return ResolveDisputePayload(dispute=DisputeNode.of(dispute))
