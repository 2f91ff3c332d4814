"""Operator tools for escrows: list and filter them, and release or refund one by hand.

A manual release or refund is for an escrow that holds money and has no open dispute (a
dispute is decided with `resolveDispute`, which also ends the deal): one frozen by a
chargeback or a reversed transfer, or a deal the parties cannot finish. The task or
booking is left as it is. Each is audited in the transaction that claims it, and moved
on by the same claim, settle and record steps as every other release and refund.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId

from documents.accounts.audit import AuditKind
from documents.errors import DomainError, ErrorCode
from documents.money import Money
from documents.payments.escrow import Escrow, EscrowStatus
from resolvers.accounts import audit
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.inputs import MoneyInput
from resolvers.common.pagination import Page, PageRequest, paginate
from resolvers.common.services import RequestMeta, Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.common.validation import MAX_REASON_LENGTH, Checked
from resolvers.payments.admin import NEWEST_FIRST, check_range, created_range
from resolvers.payments.disputes import money as dispute_money
from resolvers.payments.escrow.escrows import escrow_by_id
from resolvers.payments.escrow.progress import after_commit


@dataclass(frozen=True, slots=True)
class EscrowFilter:
    status: EscrowStatus | None = None
    payer_id: ObjectId | None = None
    provider_id: ObjectId | None = None
    created_from: datetime | None = None
    """Inclusive."""
    created_until: datetime | None = None
    """Exclusive."""


async def list_escrows(filters: EscrowFilter, request: PageRequest) -> Page[Escrow]:
    """The escrows matching every given filter, newest first."""
    checked = Checked()
    check_range(checked, filters.created_from, filters.created_until)
    checked.raise_if_any()
    query: dict[str, Any] = {}
    if filters.status is not None:
        query["status"] = filters.status.value
    if filters.payer_id is not None:
        query["payer_id"] = filters.payer_id
    if filters.provider_id is not None:
        query["provider_id"] = filters.provider_id
    created = created_range(filters.created_from, filters.created_until)
    if created:
        query["created_at"] = created
    return await paginate(Escrow, query, NEWEST_FIRST, request)


Claim = Callable[[UnitOfWork, Escrow, str], Awaitable[Money]]


async def release_escrow(
    services: Services, meta: RequestMeta, admin: Viewer, escrow_id: ObjectId, note: str
) -> Escrow:
    """Release what the escrow holds to the provider (the caller checks the role)."""

    async def claim(unit: UnitOfWork, escrow: Escrow, label: str) -> Money:
        released = await dispute_money.release(unit, escrow, label, "escrowId")
        assert released.release is not None
        return released.release.to_provider

    return await _decide(
        services, meta, admin, escrow_id, note, AuditKind.ESCROW_RELEASED_BY_ADMIN, claim
    )


async def refund_escrow(
    services: Services,
    meta: RequestMeta,
    admin: Viewer,
    escrow_id: ObjectId,
    amount_input: MoneyInput | None,
    note: str,
) -> Escrow:
    """Refund `amount` (None: everything refundable) to the payer."""
    checked = Checked()
    amount = None
    if amount_input is not None:
        amount = checked.money(amount_input.amount, amount_input.currency, "amount")
    checked.raise_if_any()

    async def claim(unit: UnitOfWork, escrow: Escrow, label: str) -> Money:
        return await dispute_money.refund(unit, escrow, amount, label, "amount")

    return await _decide(
        services, meta, admin, escrow_id, note, AuditKind.ESCROW_REFUNDED_BY_ADMIN, claim
    )


async def _decide(
    services: Services,
    meta: RequestMeta,
    admin: Viewer,
    escrow_id: ObjectId,
    note: str,
    kind: AuditKind,
    claim: Claim,
) -> Escrow:
    checked = Checked()
    note = checked.text(note, "note", MAX_REASON_LENGTH, multiline=True)
    checked.raise_if_any()
    label = note or kind.value.replace("_", " ")

    async def work(unit: UnitOfWork) -> Escrow:
        escrow = await escrow_by_id(escrow_id, unit.session)
        if escrow is None:
            raise DomainError(ErrorCode.NOT_FOUND, "No such escrow.", "escrowId")
        dispute_money.check_decidable(escrow, "escrowId")
        if await dispute_money.open_dispute_of(unit, escrow) is not None:
            raise DomainError(
                ErrorCode.INVALID_STATE,
                "The escrow has an open dispute; decide it with resolveDispute.",
                "escrowId",
            )
        thawed = await dispute_money.unfreeze(unit, escrow, label)
        amount = await claim(unit, thawed, label)
        await audit.record(
            kind,
            meta,
            actor_id=admin.user_id,
            session=unit.session,
            escrow_id=str(escrow.id),
            amount=amount.model_dump(),
            status_before=escrow.status.value,
            note=note,
        )
        return thawed

    escrow = await transact(services, work)
    await after_commit(services, escrow.id)
    return await escrow_by_id(escrow_id) or escrow
