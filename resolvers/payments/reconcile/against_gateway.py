"""`gigql reconcile`: our records of a period against the gateway's.

    payment   a payment intent <-> the escrow it pays (amount charged, status)
    refund    a refund         <-> the escrow's refund it made (`refund_number` in its
                                   metadata), or one recorded from `charge.refunded`
                                   when it was made at the gateway directly
    transfer  a transfer       <-> the escrow's release (provider's share, reversals)
    payout    a payout         <-> the withdrawal it pays out

Gateway objects created in the period are looked up among our records wherever those
are. Our records of the period (escrows opened, refunds claimed, releases recorded,
withdrawals requested in it) are looked up among the gateway objects listed a `MARGIN`
either side of it, since a gateway object is made after the record that asks for it,
sometimes by a later retry. Each record found is then checked against its ledger
postings (resolvers/payments/reconcile/against_ledger.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TypeVar

from beanie import PydanticObjectId
from bson import ObjectId

from documents.money import Money
from documents.payments.escrow import Escrow, EscrowRefund, EscrowStatus, RefundStatus
from documents.payments.payouts import Withdrawal, WithdrawalStatus
from integrations.payments.gateway import PaymentGateway, PaymentIntent, Payout, Refund, Transfer
from resolvers.payments.reconcile.against_ledger import check_postings
from resolvers.payments.reconcile.partners import (
    Tagged,
    is_partners,
    partner_intent_ids,
    reconcile_partners,
)
from resolvers.payments.reconcile.report import (
    InPeriod,
    Kind,
    Mismatch,
    Reconciliation,
    compare_money,
    to_compare,
)

MARGIN = timedelta(days=1)

OPEN_INTENT = {"requires_payment_method", "requires_confirmation", "requires_action", "processing"}
PAYOUT_STATUSES = {
    WithdrawalStatus.IN_TRANSIT: {"pending", "in_transit"},
    WithdrawalStatus.PAID: {"paid"},
    WithdrawalStatus.FAILED: {"failed", "canceled"},
}
"""The statuses a recorded payout may have at the gateway, by the withdrawal's."""

T = TypeVar("T")
G = TypeVar("G", bound=Tagged)


async def _all(items: AsyncIterator[T]) -> list[T]:
    return [item async for item in items]


def _money(amount: int, currency: str) -> Money:
    return Money(amount=amount, currency=currency)


async def reconcile(
    gateway: PaymentGateway, created_from: datetime, created_until: datetime
) -> Reconciliation:
    result = Reconciliation(created_from, created_until)
    low, high = created_from - MARGIN, created_until + MARGIN
    # Partner money is matched with partner transactions (reconcile/partners.py).
    intents, partner_intents = _split(await _all(gateway.list_payment_intents(low, high)))
    refunds, partner_refunds = _split(await _all(gateway.list_refunds(low, high)))
    # A refund made in the gateway's dashboard carries none of our metadata: it is a
    # partner's when it refunds a partner credit's payment.
    credited = await partner_intent_ids([r.payment_intent_id for r in refunds])
    partner_refunds += [r for r in refunds if r.payment_intent_id in credited]
    refunds = [r for r in refunds if r.payment_intent_id not in credited]
    transfers, partner_transfers = _split(await _all(gateway.list_transfers(low, high)))
    withdrawals = await Withdrawal.find({"requested_at": {"$gte": low, "$lt": high}}).to_list()
    payouts: list[Payout] = []
    for account_id in sorted({w.account_id for w in withdrawals}):
        payouts += await _all(gateway.list_payouts(account_id, low, high))

    def in_period(moment: datetime) -> bool:
        return created_from <= moment < created_until

    escrows = await _escrows_concerned(
        created_from, created_until, [*intents, *refunds, *transfers], in_period
    )
    recorded = _Escrows(escrows)
    _payments(result, recorded, intents, in_period)
    _refunds(result, recorded, refunds, in_period)
    _transfers(result, recorded, transfers, in_period)
    _payouts(result, withdrawals, payouts, in_period)
    await check_postings(
        result,
        [e for e in escrows if _escrow_in_period(e, in_period)],
        [w for w in withdrawals if in_period(w.requested_at)],
    )
    await reconcile_partners(
        result, gateway, (low, high), in_period, partner_intents, partner_refunds, partner_transfers
    )
    return result


def _split(objects: list[G]) -> tuple[list[G], list[G]]:
    """The marketplace's objects, and partner transactions'."""
    partners = [obj for obj in objects if is_partners(obj)]
    return [obj for obj in objects if not is_partners(obj)], partners


def _escrow_in_period(escrow: Escrow, in_period: InPeriod) -> bool:
    moments = [escrow.created_at, escrow.released_at, *(r.at for r in escrow.refunds)]
    return any(moment is not None and in_period(moment) for moment in moments)


async def _escrows_concerned(
    created_from: datetime,
    created_until: datetime,
    objects: Iterable[PaymentIntent | Refund | Transfer],
    in_period: InPeriod,
) -> list[Escrow]:
    """Escrows with something in the period, and those the period's gateway objects name."""
    period = {"$gte": created_from, "$lt": created_until}
    named = [obj for obj in objects if in_period(obj.created)]
    ids = [
        PydanticObjectId(value)
        for obj in named
        if ObjectId.is_valid(value := obj.metadata.get("escrow_id", ""))
    ]
    intent_ids = [obj.id for obj in named if isinstance(obj, PaymentIntent)]
    intent_ids += [
        obj.payment_intent_id for obj in named if isinstance(obj, Refund) and obj.payment_intent_id
    ]
    transfer_ids = [obj.id for obj in named if isinstance(obj, Transfer)]
    return await Escrow.find(
        {
            "$or": [
                {"created_at": period},
                {"released_at": period},
                {"refunds.at": period},
                {"_id": {"$in": ids}},
                {"payment_intent_id": {"$in": intent_ids}},
                {"transfer_id": {"$in": transfer_ids}},
            ]
        }
    ).to_list()


class _Escrows:
    """The escrows concerned, by the ids a gateway object may name them with."""

    def __init__(self, escrows: list[Escrow]) -> None:
        self.all = escrows
        self._by_id = {str(e.id): e for e in escrows}
        self._by_intent = {e.payment_intent_id: e for e in escrows if e.payment_intent_id}

    def of(self, metadata: Mapping[str, str], intent_id: str | None) -> Escrow | None:
        found = self._by_intent.get(intent_id) if intent_id else None
        return found or self._by_id.get(metadata.get("escrow_id", ""))


# -- payments ------------------------------------------------------------------------


def _intent_statuses(escrow: Escrow) -> set[str]:
    """The statuses the escrow's payment intent may have at the gateway."""
    if escrow.status is EscrowStatus.AWAITING_PAYMENT:
        return OPEN_INTENT
    if escrow.status is EscrowStatus.FAILED:
        return {"canceled"}
    if escrow.capture_manually and not escrow.captured:
        # A refund in full of an authorisation cancels it.
        return (
            {"requires_capture", "canceled"}
            if escrow.status is EscrowStatus.REFUNDED
            else {"requires_capture"}
        )
    return {"succeeded"}


def _payments(
    result: Reconciliation, recorded: _Escrows, intents: list[PaymentIntent], in_period: InPeriod
) -> None:
    listed = {intent.id for intent in intents}
    for intent in intents:
        escrow = recorded.of(intent.metadata, intent.id)
        subject = f"{intent.id} (escrow {escrow.id})" if escrow else intent.id
        ours_at = escrow.created_at if escrow else None
        if not to_compare(result, Kind.PAYMENT, intent.created, ours_at, in_period):
            continue
        if escrow is None:
            result.add(
                Mismatch.MISSING_HERE,
                subject,
                f"{_money(intent.amount, intent.currency)} {intent.status}, no escrow of ours",
                kind=Kind.PAYMENT,
            )
            continue
        if escrow.payment_intent_id != intent.id:
            recorded_as = escrow.payment_intent_id or "none"
            detail = f"{intent.status} at the gateway; the escrow records intent {recorded_as}"
            result.add(Mismatch.MISSING_HERE, subject, detail, kind=Kind.PAYMENT)
            continue
        compare_money(
            result,
            Kind.PAYMENT,
            subject,
            _money(intent.amount, intent.currency),
            escrow.fees.charged,
        )
        if intent.status not in _intent_statuses(escrow):
            detail = f"gateway {intent.status}, escrow {escrow.status.value}"
            result.add(Mismatch.STATUS, subject, detail, kind=Kind.PAYMENT)
    for escrow in recorded.all:
        intent_id = escrow.payment_intent_id
        if intent_id and intent_id not in listed and in_period(escrow.created_at):
            detail = f"escrow {escrow.status.value} for {escrow.fees.charged}"
            result.add(
                Mismatch.MISSING_AT_GATEWAY,
                f"{intent_id} (escrow {escrow.id})",
                detail,
                kind=Kind.PAYMENT,
            )


# -- refunds -------------------------------------------------------------------------


def _made_at_gateway(escrow: Escrow, refund: EscrowRefund) -> bool:
    """Whether a refund of ours has a gateway refund (an authorisation never captured is
    cancelled instead)."""
    return refund.status is RefundStatus.SUCCEEDED and not (
        escrow.capture_manually and not escrow.captured
    )


def _refunds(
    result: Reconciliation, recorded: _Escrows, refunds: list[Refund], in_period: InPeriod
) -> None:
    matched: set[tuple[str, int]] = set()
    # Oldest first, so that refunds made at the gateway directly pair up in order.
    for refund in sorted(refunds, key=lambda r: r.created):
        escrow = recorded.of(refund.metadata, refund.payment_intent_id)
        ours = _our_refund(escrow, refund, matched) if escrow else None
        if escrow is not None and ours is not None:
            matched.add((str(escrow.id), ours.number))
        ours_at = ours.at if ours else None
        if not to_compare(result, Kind.REFUND, refund.created, ours_at, in_period):
            continue
        gateway_money = _money(refund.amount, refund.currency)
        subject = f"{refund.id} (escrow {escrow.id})" if escrow else refund.id
        if escrow is None or ours is None:
            detail = f"{gateway_money} {refund.status} for intent {refund.payment_intent_id}"
            result.add(Mismatch.MISSING_HERE, subject, f"{detail}, not recorded", kind=Kind.REFUND)
            continue
        subject = f"{refund.id} (escrow {escrow.id} refund {ours.number})"
        compare_money(result, Kind.REFUND, subject, gateway_money, ours.amount)
        if refund.status not in ("pending", "succeeded") or ours.status is RefundStatus.PENDING:
            detail = f"gateway {refund.status}, ours {ours.status.value}"
            result.add(Mismatch.STATUS, subject, detail, kind=Kind.REFUND)
    for escrow in recorded.all:
        for ours in escrow.refunds:
            key = (str(escrow.id), ours.number)
            if key in matched or not in_period(ours.at) or not _made_at_gateway(escrow, ours):
                continue
            subject = f"{ours.refund_id or 'refund'} (escrow {escrow.id} refund {ours.number})"
            how = "recorded from charge.refunded" if ours.external else "recorded"
            result.add(
                Mismatch.MISSING_AT_GATEWAY, subject, f"{ours.amount} {how}", kind=Kind.REFUND
            )


def _our_refund(
    escrow: Escrow, refund: Refund, matched: set[tuple[str, int]]
) -> EscrowRefund | None:
    """Ours by the number in the refund's metadata; one made at the gateway directly is
    the first external refund of its amount not paired yet."""
    number = refund.metadata.get("refund_number")
    if number is not None:
        return next((r for r in escrow.refunds if str(r.number) == number), None)
    return next(
        (
            r
            for r in escrow.refunds
            if r.external
            and r.amount.amount == refund.amount
            and (str(escrow.id), r.number) not in matched
        ),
        None,
    )


# -- transfers -----------------------------------------------------------------------


def _transfers(
    result: Reconciliation, recorded: _Escrows, transfers: list[Transfer], in_period: InPeriod
) -> None:
    listed = {transfer.id for transfer in transfers}
    for transfer in transfers:
        escrow = recorded.of(transfer.metadata, None)
        mine = escrow is not None and escrow.transfer_id == transfer.id
        ours_at = escrow.released_at if mine and escrow is not None else None
        if not to_compare(result, Kind.TRANSFER, transfer.created, ours_at, in_period):
            continue
        money = _money(transfer.amount, transfer.currency)
        subject = f"{transfer.id} (escrow {escrow.id})" if escrow else transfer.id
        if escrow is None:
            detail = f"{money} to {transfer.destination_account_id}, no escrow of ours"
            result.add(Mismatch.MISSING_HERE, subject, detail, kind=Kind.TRANSFER)
        elif not mine:
            _unrecorded_transfer(result, escrow, transfer, subject)
        else:
            assert escrow.release is not None
            compare_money(result, Kind.TRANSFER, subject, money, escrow.release.to_provider)
            if transfer.amount_reversed != escrow.transfer_reversed.amount:
                detail = (
                    f"gateway reversed {_money(transfer.amount_reversed, transfer.currency)}, "
                    f"ours {escrow.transfer_reversed}"
                )
                result.add(Mismatch.AMOUNT, subject, detail, kind=Kind.TRANSFER)
    for escrow in recorded.all:
        released_at = escrow.released_at
        if escrow.status is not EscrowStatus.RELEASED or escrow.release is None:
            continue
        if released_at is None or not in_period(released_at):
            continue
        if escrow.release.to_provider.amount and escrow.transfer_id not in listed:
            subject = f"{escrow.transfer_id or 'transfer'} (escrow {escrow.id})"
            detail = f"{escrow.release.to_provider} released to the provider"
            result.add(Mismatch.MISSING_AT_GATEWAY, subject, detail, kind=Kind.TRANSFER)


def _unrecorded_transfer(
    result: Reconciliation, escrow: Escrow, transfer: Transfer, subject: str
) -> None:
    round = int(transfer.metadata.get("release_round", "1"))
    current = escrow.release.round if escrow.release else 0
    if round < current and transfer.amount_reversed == transfer.amount:
        return  # an earlier release, reversed in full and released again since
    if escrow.status is EscrowStatus.RELEASING and round == current:
        detail = "made at the gateway; the release is not recorded yet"
        result.add(Mismatch.STATUS, subject, detail, kind=Kind.TRANSFER)
        return
    detail = f"the escrow ({escrow.status.value}) records transfer {escrow.transfer_id or 'none'}"
    result.add(Mismatch.MISSING_HERE, subject, detail, kind=Kind.TRANSFER)


# -- payouts -------------------------------------------------------------------------


def _payouts(
    result: Reconciliation,
    withdrawals: list[Withdrawal],
    payouts: list[Payout],
    in_period: InPeriod,
) -> None:
    by_id = {str(w.id): w for w in withdrawals}
    listed = {payout.id for payout in payouts}
    for payout in payouts:
        withdrawal_id = payout.metadata.get("withdrawal_id")
        if withdrawal_id is None:
            continue  # made by the account's own payout schedule, not by gigql
        withdrawal = by_id.get(withdrawal_id)
        ours_at = withdrawal.requested_at if withdrawal else None
        if not to_compare(result, Kind.PAYOUT, payout.created, ours_at, in_period):
            continue
        money = _money(payout.amount, payout.currency)
        subject = f"{payout.id} (withdrawal {withdrawal_id})"
        if withdrawal is None:
            detail = f"{money} {payout.status} from {payout.account_id}, no such withdrawal"
            result.add(Mismatch.MISSING_HERE, subject, detail, kind=Kind.PAYOUT)
        elif withdrawal.payout_id != payout.id:
            detail = (
                f"{payout.status} at the gateway; the withdrawal ({withdrawal.status.value}) "
                f"records payout {withdrawal.payout_id or 'none'}"
            )
            result.add(Mismatch.MISSING_HERE, subject, detail, kind=Kind.PAYOUT)
        else:
            compare_money(result, Kind.PAYOUT, subject, money, withdrawal.amount)
            if payout.status not in PAYOUT_STATUSES.get(withdrawal.status, set()):
                detail = f"gateway {payout.status}, withdrawal {withdrawal.status.value}"
                result.add(Mismatch.STATUS, subject, detail, kind=Kind.PAYOUT)
    for withdrawal in withdrawals:
        if (
            withdrawal.payout_id
            and withdrawal.payout_id not in listed
            and in_period(withdrawal.requested_at)
        ):
            subject = f"{withdrawal.payout_id} (withdrawal {withdrawal.id})"
            detail = f"withdrawal {withdrawal.status.value} of {withdrawal.amount}"
            result.add(Mismatch.MISSING_AT_GATEWAY, subject, detail, kind=Kind.PAYOUT)
