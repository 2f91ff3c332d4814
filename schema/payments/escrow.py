"""Escrows as the graph shows them: to the payer, the payee and admins."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from bson import ObjectId
from strawberry import relay

from documents.payments.escrow import (
    Escrow,
    EscrowChange,
    EscrowRefund,
    EscrowStatus,
    FeeBreakdown,
)
from resolvers.payments.escrow import escrows
from resolvers.payments.escrow.escrows import can_see_escrow
from resolvers.payments.sandbox_card import SandboxOutcome
from schema.accounts.users import UserNode
from schema.common.context import Info
from schema.common.copying import copied
from schema.common.limits import bounded
from schema.common.payloads import Payload, mutation_payload
from schema.common.permissions import IsAuthenticated, allow
from schema.common.relay import decode_id, visible_documents
from schema.common.values import MoneyType

if TYPE_CHECKING:
    from schema.payments.disputes import DisputeNode

EscrowStatusType = strawberry.enum(EscrowStatus, name="EscrowStatus")
SandboxOutcomeType = strawberry.enum(SandboxOutcome, name="SandboxPaymentOutcome")

MAX_LISTED = 50


@strawberry.type(
    name="FeeBreakdown",
    description="How the payment divides; exact: price + customerFee = charged, and "
    "providerShare + commissionOnHold + commissionOnRelease = price.",
)
class FeeBreakdownType:
    price: MoneyType = strawberry.field(description="The agreed amount for the work.")
    customer_fee: MoneyType = strawberry.field(description="The payer's service fee.")
    charged: MoneyType = strawberry.field(description="What the payer pays.")
    commission_on_hold: MoneyType = strawberry.field(description="Kept once the money is held.")
    commission_on_release: MoneyType = strawberry.field(description="Kept on release.")
    provider_share: MoneyType

    @classmethod
    def of(cls, fees: FeeBreakdown) -> FeeBreakdownType:
        return cls(
            price=MoneyType.of(fees.price),
            customer_fee=MoneyType.of(fees.customer_fee),
            charged=MoneyType.of(fees.charged),
            commission_on_hold=MoneyType.of(fees.commission_on_hold),
            commission_on_release=MoneyType.of(fees.commission_on_release),
            provider_share=MoneyType.of(fees.provider_share),
        )


@strawberry.type(name="EscrowRefund")
class EscrowRefundType:
    number: int
    amount: MoneyType
    status: str = strawberry.field(description="pending or succeeded.")
    external: bool = strawberry.field(description="Made at the gateway, outside gigql.")
    reason: str
    at: datetime

    @classmethod
    def of(cls, refund: EscrowRefund) -> EscrowRefundType:
        return copied(cls, refund, amount=MoneyType.of(refund.amount), status=refund.status.value)


@strawberry.type(name="EscrowStatusChange")
class EscrowStatusChangeType:
    status: EscrowStatus
    at: datetime
    note: str

    @classmethod
    def of(cls, change: EscrowChange) -> EscrowStatusChangeType:
        return copied(cls, change)


@strawberry.type(name="Escrow", description="The payer's money for one deal, held until released.")
class EscrowNode(relay.Node):
    id: relay.NodeID[str]
    status: EscrowStatus
    fees: FeeBreakdownType
    refunded: MoneyType = strawberry.field(description="Back to the payer so far.")
    payment_failure_code: str | None = strawberry.field(
        description="Why the last payment attempt failed; another card may be tried."
    )
    requires_action: bool = strawberry.field(description="The payer's bank asks them to confirm.")
    capture_manually: bool = strawberry.field(description="Authorised now, charged on release.")
    auto_release_at: datetime | None = strawberry.field(
        description="When it is released unless disputed."
    )
    held_at: datetime | None
    released_at: datetime | None
    created_at: datetime
    updated_at: datetime
    doc: strawberry.Private[Escrow]

    @classmethod
    def of(cls, escrow: Escrow) -> EscrowNode:
        return copied(
            cls,
            escrow,
            id=str(escrow.id),
            fees=FeeBreakdownType.of(escrow.fees),
            refunded=MoneyType.of(escrow.refunded),
            doc=escrow,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[EscrowNode | None]:
        escrows = await visible_documents(
            info, node_ids, info.context.loaders.escrows.load_many, can_see_escrow
        )
        return [cls.of(e) if e else None for e in escrows]

    @strawberry.field
    async def payer(self, info: Info) -> UserNode | None:
        return await _user(info, self.doc.payer_id)

    @strawberry.field(description="The provider, who is paid on release.")
    async def payee(self, info: Info) -> UserNode | None:
        return await _user(info, self.doc.provider_id)

    @strawberry.field(
        extensions=allow(IsAuthenticated()),
        description="For the payer while payment is due: confirm the payment with it "
        "(Stripe.js). Null for anyone else, or once paid.",
    )
    async def client_secret(self, info: Info) -> str | None:
        viewer = await info.context.require_viewer()
        return await escrows.client_secret(info.context.services, viewer, self.doc)

    @strawberry.field(metadata=bounded(MAX_LISTED))
    def refunds(self) -> list[EscrowRefundType]:
        return [EscrowRefundType.of(refund) for refund in self.doc.refunds[:MAX_LISTED]]

    @strawberry.field(metadata=bounded(MAX_LISTED))
    def history(self) -> list[EscrowStatusChangeType]:
        return [EscrowStatusChangeType.of(change) for change in self.doc.history[-MAX_LISTED:]]

    @strawberry.field(description="Its open dispute, else the last one decided; null if none.")
    async def dispute(
        self, info: Info
    ) -> Annotated[DisputeNode, strawberry.lazy("schema.payments.disputes")] | None:
        from schema.payments.disputes import DisputeNode

        assert self.doc.id is not None
        found = await info.context.loaders.disputes_of_escrows.load(self.doc.id)
        return DisputeNode.of(found) if found else None


async def _user(info: Info, user_id: ObjectId) -> UserNode | None:
    user = await info.context.loaders.users.load(user_id)
    return UserNode.of(user) if user else None


async def escrow_of(info: Info, deal: str) -> EscrowNode | None:
    """The deal's escrow, if the viewer is its payer, payee or an admin."""
    viewer = await info.context.viewer()
    escrow = await info.context.loaders.escrows_by_deal.load(deal)
    if escrow is None or viewer is None or not can_see_escrow(viewer, escrow):
        return None
    return EscrowNode.of(escrow)


@strawberry.input
class SandboxPayInput:
    escrow_id: relay.GlobalID
    outcome: SandboxOutcome = SandboxOutcome.SUCCEEDED


@strawberry.type
class SandboxPayPayload(Payload):
    escrow: EscrowNode | None = None


@strawberry.type
class EscrowMutation:
    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Development only (the sandbox gateway; SANDBOX_ONLY with Stripe): the "
        "payer pays with a test card that succeeds, is declined, or asks for 3-D Secure.",
    )
    @mutation_payload
    async def sandbox_pay(self, info: Info, input: SandboxPayInput) -> SandboxPayPayload:
        viewer = await info.context.require_viewer()
        escrow = await escrows.sandbox_pay(
            info.context.services,
            viewer,
            decode_id(input.escrow_id, EscrowNode, "escrowId"),
            input.outcome,
        )
        return SandboxPayPayload(escrow=EscrowNode.of(escrow))
