"""Admin tools for escrows: the filtered list, and releasing or refunding one by hand
(audited). Every field is for admins only."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import relay

from documents.payments.escrow import EscrowStatus
from resolvers.payments.disputes import chargeback_settlement
from resolvers.payments.escrow import admin as admin_escrows
from resolvers.payments.escrow.admin import EscrowFilter
from schema.accounts.users import UserNode
from schema.common.context import Info
from schema.common.payloads import Payload, mutation_payload
from schema.common.permissions import IsAdmin, allow
from schema.common.relay import decode_id, requested_page, to_connection
from schema.common.values import MoneyInputType
from schema.payments.escrow import EscrowNode


@strawberry.type
class EscrowConnection(relay.Connection[EscrowNode]):
    pass


@strawberry.input(name="EscrowFilter", description="Every given field must match.")
class EscrowFilterInput:
    status: EscrowStatus | None = None
    payer_id: relay.GlobalID | None = None
    provider_id: relay.GlobalID | None = None
    created_from: datetime | None = strawberry.field(default=None, description="Inclusive.")
    created_to: datetime | None = strawberry.field(default=None, description="Exclusive.")

    def to_filter(self) -> EscrowFilter:
        return EscrowFilter(
            status=self.status,
            payer_id=decode_id(self.payer_id, UserNode, "payerId") if self.payer_id else None,
            provider_id=(
                decode_id(self.provider_id, UserNode, "providerId") if self.provider_id else None
            ),
            created_from=self.created_from,
            created_until=self.created_to,
        )


@strawberry.type
class AdminEscrowsQuery:
    @strawberry.field(extensions=allow(IsAdmin()), description="Escrows, newest first.")
    async def escrows(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: EscrowFilterInput | None = None,
    ) -> EscrowConnection:
        page = await admin_escrows.list_escrows(
            filter.to_filter() if filter else EscrowFilter(), requested_page(info, first, after)
        )
        return to_connection(EscrowConnection, page, EscrowNode.of)


@strawberry.input
class AdminReleaseEscrowInput:
    escrow_id: relay.GlobalID
    note: str = strawberry.field(default="", description="Why; kept in the audit log.")


@strawberry.input
class AdminRefundEscrowInput:
    escrow_id: relay.GlobalID
    amount: MoneyInputType | None = strawberry.field(
        default=None, description="Omit to refund everything refundable."
    )
    note: str = strawberry.field(default="", description="Why; kept in the audit log.")


@strawberry.type
class AdminEscrowPayload(Payload):
    escrow: EscrowNode | None = None


@strawberry.type
class AdminReleaseEscrowPayload(AdminEscrowPayload):
    pass


@strawberry.type
class AdminRefundEscrowPayload(AdminEscrowPayload):
    pass


@strawberry.input
class AdminSettleChargebackInput:
    escrow_id: relay.GlobalID
    note: str = strawberry.field(default="", description="Why; kept in the audit log.")


@strawberry.type
class AdminSettleChargebackPayload(AdminEscrowPayload):
    pass


@strawberry.type
class AdminEscrowsMutation:
    @strawberry.mutation(
        extensions=allow(IsAdmin()),
        description="Release what an escrow holds to the provider (audited); not while it "
        "has an open dispute (resolveDispute). The task or booking is left as it is.",
    )
    @mutation_payload
    async def admin_release_escrow(
        self, info: Info, input: AdminReleaseEscrowInput
    ) -> AdminReleaseEscrowPayload:
        admin = await info.context.require_viewer()
        escrow = await admin_escrows.release_escrow(
            info.context.services,
            info.context.meta,
            admin,
            decode_id(input.escrow_id, EscrowNode, "escrowId"),
            input.note,
        )
        return AdminReleaseEscrowPayload(escrow=EscrowNode.of(escrow))

    @strawberry.mutation(
        extensions=allow(IsAdmin()),
        description="Refund an escrow's payer, in part or in full (audited); not while it "
        "has an open dispute (resolveDispute). The task or booking is left as it is.",
    )
    @mutation_payload
    async def admin_refund_escrow(
        self, info: Info, input: AdminRefundEscrowInput
    ) -> AdminRefundEscrowPayload:
        admin = await info.context.require_viewer()
        escrow = await admin_escrows.refund_escrow(
            info.context.services,
            info.context.meta,
            admin,
            decode_id(input.escrow_id, EscrowNode, "escrowId"),
            input.amount.value() if input.amount else None,
            input.note,
        )
        return AdminRefundEscrowPayload(escrow=EscrowNode.of(escrow))

    @strawberry.mutation(
        extensions=allow(IsAdmin()),
        description="After a lost chargeback, keep what the escrow holds, up to the loss, "
        "to cover it (audited, once per escrow): all of it kept, the escrow is CHARGED_BACK; "
        "anything more stays for an ordinary release. The task or booking is left as it is.",
    )
    @mutation_payload
    async def admin_settle_chargeback(
        self, info: Info, input: AdminSettleChargebackInput
    ) -> AdminSettleChargebackPayload:
        admin = await info.context.require_viewer()
        escrow = await chargeback_settlement.settle_lost_chargeback(
            info.context.services,
            info.context.meta,
            admin,
            decode_id(input.escrow_id, EscrowNode, "escrowId"),
            input.note,
        )
        return AdminSettleChargebackPayload(escrow=EscrowNode.of(escrow))
