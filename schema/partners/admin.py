"""Admins' tools for partners: the list, their keys, and every decision on a partner
(each audited). Every field is for admins only."""

from __future__ import annotations

from typing import Protocol, TypeVar

import strawberry
from strawberry import relay

from documents.partners.partners import PartnerStatus
from resolvers.partners import applications, key_management
from schema.common.context import Info
from schema.common.payloads import Payload, input_mutation, mutation_payload
from schema.common.permissions import IsAdmin, allow
from schema.common.relay import decode_id, requested_page, to_connection
from schema.partners.moves import PartnerTransactionFilter, transactions_of
from schema.partners.partner_nodes import (
    PartnerApiKeyConnection,
    PartnerApiKeyNode,
    PartnerConnection,
    PartnerNode,
)
from schema.partners.types import PartnerTransactionConnection, PartnerWalletConnection
from schema.partners.wallets import PartnerWalletFilter, wallets_of
from schema.partners.webhooks import DeliveryFilterInput, WebhookDeliveryConnection, deliveries_of


@strawberry.type
class PartnerAdminQuery:
    @strawberry.field(
        extensions=allow(IsAdmin()), description="Partners (of one status), newest first."
    )
    async def partners(
        self,
        info: Info,
        status: PartnerStatus | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> PartnerConnection:
        page = await applications.list_partners(status, requested_page(info, first, after))
        return to_connection(PartnerConnection, page, PartnerNode.of)

    @strawberry.field(
        extensions=allow(IsAdmin()),
        description="A partner's API keys, revoked ones too, newest first (never a secret).",
    )
    async def partner_api_keys(
        self,
        info: Info,
        partner_id: relay.GlobalID,
        first: int | None = None,
        after: str | None = None,
    ) -> PartnerApiKeyConnection:
        page = await key_management.keys_of(
            decode_id(partner_id, PartnerNode, "partnerId"), requested_page(info, first, after)
        )
        return to_connection(PartnerApiKeyConnection, page, PartnerApiKeyNode.of)

    @strawberry.field(
        extensions=allow(IsAdmin()),
        description="A partner's wallets, newest first, as its own key lists them.",
    )
    async def partner_wallets(
        self,
        info: Info,
        partner_id: relay.GlobalID,
        filter: PartnerWalletFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> PartnerWalletConnection:
        partner = decode_id(partner_id, PartnerNode, "partnerId")
        return await wallets_of(info, partner, filter, first, after)

    @strawberry.field(
        extensions=allow(IsAdmin()),
        description="A partner's transactions, newest first, as its own key lists them.",
    )
    async def partner_transactions(
        self,
        info: Info,
        partner_id: relay.GlobalID,
        filter: PartnerTransactionFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> PartnerTransactionConnection:
        partner = decode_id(partner_id, PartnerNode, "partnerId")
        return await transactions_of(info, partner, filter, first, after)

    @strawberry.field(
        extensions=allow(IsAdmin()),
        description="A partner's webhook deliveries, newest first, with their attempts.",
    )
    async def partner_webhook_deliveries(
        self,
        info: Info,
        partner_id: relay.GlobalID,
        filter: DeliveryFilterInput | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> WebhookDeliveryConnection:
        partner = decode_id(partner_id, PartnerNode, "partnerId")
        return await deliveries_of(info, partner, filter, first, after)


@strawberry.input
class PartnerDecisionInput:
    """What every admin decision on a partner takes; each mutation has its own input type
    (the API's convention), the same fields."""

    partner_id: relay.GlobalID
    note: str = strawberry.field(default="", description="Why; kept in the audit log.")


@strawberry.input
class ApprovePartnerInput(PartnerDecisionInput):
    credit_fee_bp: int | None = strawberry.field(
        default=None,
        description="Its fee on card credits in basis points (0 to 5000); by default "
        "GIGQL_PARTNER_CREDIT_FEE_BP as it was when it applied.",
    )


@strawberry.input
class RejectPartnerInput(PartnerDecisionInput):
    pass


@strawberry.input
class SuspendPartnerInput(PartnerDecisionInput):
    pass


@strawberry.input
class ReinstatePartnerInput(PartnerDecisionInput):
    pass


@strawberry.input
class ClosePartnerInput(PartnerDecisionInput):
    pass


@strawberry.type
class PartnerPayload(Payload):
    partner: PartnerNode | None = None


@strawberry.type
class ApprovePartnerPayload(PartnerPayload):
    pass


@strawberry.type
class RejectPartnerPayload(PartnerPayload):
    pass


@strawberry.type
class SuspendPartnerPayload(PartnerPayload):
    pass


@strawberry.type
class ReinstatePartnerPayload(PartnerPayload):
    pass


@strawberry.type
class ClosePartnerPayload(PartnerPayload):
    pass


class _OnPartner(Protocol):
    @property
    def partner_id(self) -> relay.GlobalID: ...

    @property
    def note(self) -> str: ...


OnPartner = TypeVar("OnPartner", bound=_OnPartner)
Moved = TypeVar("Moved", bound=PartnerPayload)


def _move(
    input_type: type[OnPartner], payload_type: type[Moved], move: str, *, description: str
) -> Moved:
    """An admin's mutation making one move of the partner's lifecycle (documents/
    lifecycles.py `PARTNER`), audited with the input's note."""

    async def run(info: Info, input: OnPartner) -> Moved:
        admin = await info.context.require_viewer()
        partner = await applications.move_partner(
            info.context.services,
            info.context.meta,
            admin,
            decode_id(input.partner_id, PartnerNode, "partnerId"),
            move,
            input.note,
        )
        return payload_type(partner=PartnerNode.of(partner))

    return input_mutation(
        input_type, payload_type, run, extensions=allow(IsAdmin()), description=description
    )


@strawberry.type
class PartnerAdminMutation:
    @strawberry.mutation(
        extensions=allow(IsAdmin()),
        description="Approve an application: its owner can then make API keys, and its "
        "webhook URL becomes its first webhook endpoint.",
    )
    @mutation_payload
    async def approve_partner(
        self, info: Info, input: ApprovePartnerInput
    ) -> ApprovePartnerPayload:
        admin = await info.context.require_viewer()
        partner = await applications.approve(
            info.context.services,
            info.context.meta,
            admin,
            decode_id(input.partner_id, PartnerNode, "partnerId"),
            input.note,
            input.credit_fee_bp,
        )
        return ApprovePartnerPayload(partner=PartnerNode.of(partner))

    reject_partner = _move(
        RejectPartnerInput,
        RejectPartnerPayload,
        "reject",
        description="Reject an application (final).",
    )
    suspend_partner = _move(
        SuspendPartnerInput,
        SuspendPartnerPayload,
        "suspend",
        description="Suspend an approved partner: its keys are refused until it is reinstated.",
    )
    reinstate_partner = _move(
        ReinstatePartnerInput,
        ReinstatePartnerPayload,
        "reinstate",
        description="Reinstate a suspended partner: its keys work again.",
    )
    close_partner = _move(
        ClosePartnerInput,
        ClosePartnerPayload,
        "close",
        description="Close a partner for good: only once every one of its wallets holds "
        "nothing and no card credit or withdrawal is under way (else INVALID_STATE).",
    )
