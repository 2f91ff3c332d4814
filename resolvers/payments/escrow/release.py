"""Releasing an escrow: the provider's share to their connected account, in three steps.

1. `claim_release` (inside the caller's transaction, e.g. completing the task): the
   escrow moves held -> releasing with the amounts fixed in its `release` plan. The
   move is conditional on the status, so of any number of concurrent releases exactly
   one claims it; the others find it releasing and do nothing.
2. `settle_release`: the transfer, with the key `escrow:<id>:transfer`, sourced from
   the payer's charge. A provider without a payouts-enabled connected account leaves
   the escrow releasing; `release_waiting_for` settles it once the account is ready.
3. `record_release`: released, and the ledger's ESCROW_RELEASED posting. The
   `transfer.created` webhook records it the same way, so a crash between 2 and 3 is
   recovered by either, and repeating 2 returns the same transfer (after the gateway's
   idempotency window, resolvers/payments/late_retries.py first looks for it there).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime
from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId

from documents.accounts.profiles import ProviderProfile
from documents.clock import utcnow
from documents.events import EventKind
from documents.money import Money
from documents.payments import ledger_accounts
from documents.payments.escrow import (
    FROZEN_BY_DEAL,
    HOLDING_STATUSES,
    Escrow,
    EscrowStatus,
    RefundStatus,
    ReleasePlan,
)
from integrations.payments.errors import GatewayError
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.payments import ledger
from resolvers.payments.escrow.escrows import change_escrow, notify, payment_metadata, reload
from resolvers.payments.escrow.postings import post_release
from resolvers.payments.fees import escrow_balance, release_split
from resolvers.payments.late_retries import is_late, late_key, made_transfer

log = logging.getLogger(__name__)

NOT_REFUNDING = {"refunds.status": {"$ne": RefundStatus.PENDING.value}}
"""A release and a refund never run at once: each is claimed only without the other."""


async def claim_release(unit: UnitOfWork, query: dict[str, Any], note: str) -> Escrow | None:
    """Within the caller's transaction: the matching escrow, if it holds money, moves to
    releasing. One not paid yet is marked to be released when its payment arrives."""
    escrow = await Escrow.find_one(query, session=unit.session)
    if escrow is None:
        return None
    if escrow.status is EscrowStatus.AWAITING_PAYMENT:
        await request_release(unit, escrow)
        return None
    if escrow.status not in HOLDING_STATUSES or escrow.pending_refund is not None:
        return None
    assert escrow.id is not None
    currency = escrow.fees.price.currency
    in_escrow = await ledger.balance(ledger_accounts.escrow(escrow.id), currency, unit.session)
    earlier = escrow.release.commission_so_far if escrow.release else None
    split = release_split(escrow.fees, escrow.refunded, in_escrow, earlier)
    plan = ReleasePlan(
        round=escrow.release.round + 1 if escrow.release else 1,
        to_provider=split.to_provider,
        commission=split.commission,
        commission_before=earlier,
    )
    return await change_escrow(
        unit.session,
        {"_id": escrow.id, "status": escrow.status.value, **NOT_REFUNDING},
        EscrowStatus.RELEASING,
        note=note,
        fields={"release": plan.model_dump(), "auto_release_at": None},
    )


async def request_release(unit: UnitOfWork, escrow: Escrow) -> None:
    """Mark the escrow to be released once it can be (`escrow_progress.advance` claims it)."""
    await Escrow.get_pymongo_collection().update_one(
        {"_id": escrow.id}, {"$set": {"release_requested": True}}, session=unit.session
    )


def transfer_key(escrow: Escrow, plan: ReleasePlan) -> str:
    suffix = "" if plan.round == 1 else f":{plan.round}"
    return f"{escrow.gateway_group}:transfer{suffix}"


async def payout_account(provider_id: ObjectId) -> str | None:
    """The provider's connected account, if the gateway lets it receive money."""
    profile = await ProviderProfile.get(PydanticObjectId(provider_id))
    if profile is None or not profile.payouts_enabled:
        return None
    return profile.stripe_account_id


async def settle_release(services: Services, escrow: Escrow) -> Escrow:
    """Make the claimed release's transfer and record it; an escrow not releasing, or a
    provider without a payout account yet, is left as it is."""
    plan = escrow.release
    if escrow.status is not EscrowStatus.RELEASING or plan is None:
        return escrow
    transfer_id = None
    if plan.to_provider.amount:
        destination = await payout_account(escrow.provider_id)
        if destination is None:
            return escrow
        gateway = services.payments
        key = transfer_key(escrow, plan)
        if is_late(services, plan.claimed_at):
            made = await made_transfer(gateway, escrow, plan)
            if made is not None:
                return await record_release(services, escrow, plan.round, made.id)
            key = late_key(key)
        if escrow.capture_manually and not escrow.captured:
            assert escrow.payment_intent_id is not None
            await gateway.capture_payment_intent(
                escrow.payment_intent_id, idempotency_key=f"{escrow.gateway_group}:capture"
            )
        transfer = await gateway.create_transfer(
            amount=plan.to_provider.amount,
            currency=plan.to_provider.currency,
            destination_account_id=destination,
            transfer_group=escrow.gateway_group,
            metadata={**payment_metadata(escrow), "release_round": str(plan.round)},
            idempotency_key=key,
            source_charge_id=escrow.charge_id,
        )
        transfer_id = transfer.id
    return await record_release(services, escrow, plan.round, transfer_id)


async def record_release(
    services: Services,
    escrow: Escrow,
    round: int,
    transfer_id: str | None,
    event_id: str | None = None,
) -> Escrow:
    """Mark the release of `round` made (once, whoever comes first) and post it."""

    async def work(unit: UnitOfWork) -> Escrow:
        released = await change_escrow(
            unit.session,
            {"_id": escrow.id, "status": EscrowStatus.RELEASING.value, "release.round": round},
            EscrowStatus.RELEASED,
            note="transferred to the provider" if transfer_id else "nothing to transfer",
            event_id=event_id,
            # A new transfer, of which nothing is reversed (an earlier release's reversals
            # are in the escrow's balance and the ledger).
            fields={
                "transfer_id": transfer_id,
                "transfer_reversed": escrow.fees.price.zero().model_dump(),
                "released_at": utcnow(),
            },
        )
        if released is None:
            return await reload(unit, escrow)
        assert released.release is not None
        await post_release(unit.session, released, released.release, transfer_id)
        notify(
            unit,
            released,
            EventKind.ESCROW_RELEASED,
            f"{released.release.to_provider} released to the provider",
            amount=released.release.to_provider.model_dump(),
        )
        return released

    return await transact(services, work)


async def release_waiting_for(services: Services, provider_id: ObjectId) -> int:
    """Settle the provider's releases that waited for their payout account (call when
    the gateway reports payouts enabled); returns how many were released."""
    waiting = await Escrow.find(
        {"provider_id": provider_id, "status": EscrowStatus.RELEASING.value}
    ).to_list()
    released = 0
    for escrow in waiting:
        try:
            settled = await settle_release(services, escrow)
        except GatewayError:
            log.warning("release of escrow %s failed; retried later", escrow.id, exc_info=True)
            continue
        released += settled.status is EscrowStatus.RELEASED
    return released


async def held_for_provider(provider_id: ObjectId) -> list[Money]:
    """What the provider is due from escrows paid and not yet released (not counting
    disputed ones), summed per currency: the wallet's "pending" figure."""
    escrows = await Escrow.find(
        {
            "provider_id": provider_id,
            "status": {"$in": [*HOLDING_STATUSES, EscrowStatus.RELEASING]},
        }
    ).to_list()
    totals: dict[str, int] = defaultdict(int)
    for escrow in escrows:
        totals[escrow.fees.price.currency] += _provider_due(escrow).amount
    return [Money(amount=amount, currency=currency) for currency, amount in sorted(totals.items())]


def _provider_due(escrow: Escrow) -> Money:
    if escrow.release is not None and escrow.status is EscrowStatus.RELEASING:
        return escrow.release.to_provider
    from_escrow = sum(
        (r.from_escrow for r in escrow.refunds if r.status is RefundStatus.SUCCEEDED),
        escrow.fees.price.zero(),
    )
    in_escrow = escrow_balance(escrow.fees, from_escrow)
    return release_split(escrow.fees, escrow.refunded, in_escrow).to_provider


async def schedule_release(unit: UnitOfWork, deal: str, at: datetime | None) -> None:
    """Release the deal's escrow automatically at `at` (None: not automatically)."""
    await Escrow.get_pymongo_collection().update_one(
        {"deal": deal, "status": {"$nin": [EscrowStatus.DISPUTED.value]}},
        {"$set": {"auto_release_at": at, "updated_at": utcnow()}},
        session=unit.session,
    )


async def freeze(unit: UnitOfWork, deal: str, note: str) -> None:
    """A dispute: the escrow holds its money until an admin decides."""
    await change_escrow(
        unit.session,
        {"deal": deal, "status": {"$in": [s.value for s in HOLDING_STATUSES]}},
        EscrowStatus.DISPUTED,
        note=note,
        fields={"auto_release_at": None, "frozen_by": FROZEN_BY_DEAL},
    )


async def mark_unpaid(unit: UnitOfWork, deals: list[str]) -> None:
    """Within the transaction that opens or decides a task's dispute: each of `deals`'
    escrows still awaiting payment is written, though its status stays.

    Why: a payment's transaction reads the task's status (is it disputed?) and writes
    only its escrow, while the dispute's move writes the task and only the escrows that
    hold money. Under snapshot isolation the two would touch disjoint documents and both
    commit, the payment acting on the status from before the move: an escrow held
    (releasable) on a disputed task, or frozen on a task no longer disputed, with
    nothing to thaw it. Writing the escrow too makes them conflict, so one is retried
    and sees the other's result. The count changes the document whatever it held, so
    the write is never a no-op (which would not conflict)."""
    await Escrow.get_pymongo_collection().update_many(
        {"deal": {"$in": deals}, "status": EscrowStatus.AWAITING_PAYMENT.value},
        {"$inc": {"disputes_while_unpaid": 1}, "$set": {"updated_at": utcnow()}},
        session=unit.session,
    )
