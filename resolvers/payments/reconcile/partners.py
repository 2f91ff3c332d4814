"""`gigql reconcile` for partner money: the gateway objects of partner transactions
against those transactions, reported as the marketplace's are.

    payment   a payment intent <-> the card credit it pays (amount, status)
    refund    a refund         <-> the credit refunded because its wallet was frozen
    transfer  a transfer       <-> the withdrawal it sends to the partner's connected
                                   account (amount, reversed in full if it failed)
    payout    a payout         <-> the withdrawal it pays out (amount, status)

Objects are recognised as a partner's by the `partner_transaction_id` in their metadata
(every one we make for a partner transaction has it) and never reach the escrow and
withdrawal matching. Payouts are listed for the connected accounts of the period's
withdrawals. Each transaction of the period is then checked against its postings
(resolvers/payments/reconcile/against_ledger.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Protocol, TypeVar

from beanie import PydanticObjectId
from bson import ObjectId

from documents.errors import ErrorCode
from documents.money import Money
from documents.partners.transactions import (
    PartnerTransaction,
    TransactionKind,
    TransactionStatus,
)
from integrations.payments.gateway import PaymentGateway, PaymentIntent, Payout, Refund, Transfer
from resolvers.payments.reconcile.against_ledger import check_partner_postings
from resolvers.payments.reconcile.report import (
    InPeriod,
    Kind,
    Mismatch,
    Reconciliation,
    compare_money,
    to_compare,
)

PARTNER_TRANSACTION_ID = "partner_transaction_id"
OPEN_INTENT = {"requires_payment_method", "requires_confirmation", "requires_action", "processing"}
PAYOUT_STATUSES = {
    TransactionStatus.PENDING: {"pending", "in_transit"},
    TransactionStatus.PROCESSING: {"pending", "in_transit"},
    TransactionStatus.COMPLETED: {"paid"},
    TransactionStatus.FAILED: {"failed", "canceled"},
}
"""The statuses a withdrawal's recorded payout may have at the gateway."""
REFUNDED = ErrorCode.WALLET_FROZEN.value
"""The failure code of a credit whose payment was refunded (its wallet was frozen)."""


class Tagged(Protocol):
    """A gateway object, as far as telling whose it is goes."""

    @property
    def metadata(self) -> Mapping[str, str]: ...


T = TypeVar("T")


def is_partners(obj: Tagged) -> bool:
    return PARTNER_TRANSACTION_ID in obj.metadata


async def _all(items: AsyncIterator[T]) -> list[T]:
    return [item async for item in items]


def _money(transaction: PartnerTransaction) -> Money:
    return Money(amount=transaction.amount, currency=transaction.currency)


def _subject(object_id: str, transaction: PartnerTransaction | None, named: str | None) -> str:
    return f"{object_id} (partner transaction {transaction.id if transaction else named})"


async def reconcile_partners(
    result: Reconciliation,
    gateway: PaymentGateway,
    listed_within: tuple[datetime, datetime],
    in_period: InPeriod,
    intents: list[PaymentIntent],
    refunds: list[Refund],
    transfers: list[Transfer],
) -> None:
    low, high = listed_within
    tagged: list[Tagged] = [*intents, *refunds, *transfers]
    named = [
        PydanticObjectId(value)
        for obj in tagged
        if ObjectId.is_valid(value := obj.metadata.get(PARTNER_TRANSACTION_ID, ""))
    ]
    transactions = await PartnerTransaction.find(
        {
            "kind": {"$in": [TransactionKind.CREDIT.value, TransactionKind.WITHDRAWAL.value]},
            "$or": [{"created_at": {"$gte": low, "$lt": high}}, {"_id": {"$in": named}}],
        }
    ).to_list()
    by_id = {str(t.id): t for t in transactions}
    payouts: list[Payout] = []
    accounts = {t.destination_account_id for t in transactions if t.destination_account_id}
    for account_id in sorted(accounts):
        listed = await _all(gateway.list_payouts(account_id, low, high))
        payouts += [payout for payout in listed if is_partners(payout)]
    credits = [t for t in transactions if t.kind is TransactionKind.CREDIT]
    withdrawals = [t for t in transactions if t.kind is TransactionKind.WITHDRAWAL]
    _payments(result, by_id, credits, intents, in_period)
    _refunds(result, by_id, credits, refunds, in_period)
    _transfers(result, by_id, withdrawals, transfers, in_period)
    _payouts(result, by_id, withdrawals, payouts, in_period)
    await check_partner_postings(result, [t for t in transactions if in_period(t.created_at)])


def _intent_statuses(credit: PartnerTransaction) -> set[str]:
    if credit.status is TransactionStatus.PENDING:
        return OPEN_INTENT
    if credit.status is TransactionStatus.COMPLETED or credit.failure_code == REFUNDED:
        return {"succeeded"}
    return {"canceled"}


def _payments(
    result: Reconciliation,
    by_id: dict[str, PartnerTransaction],
    credits: list[PartnerTransaction],
    intents: list[PaymentIntent],
    in_period: InPeriod,
) -> None:
    listed = {intent.id for intent in intents}
    for intent in intents:
        named = intent.metadata.get(PARTNER_TRANSACTION_ID)
        credit = by_id.get(named or "")
        subject = _subject(intent.id, credit, named)
        ours_at = credit.created_at if credit else None
        if not to_compare(result, Kind.PAYMENT, intent.created, ours_at, in_period):
            continue
        if credit is None or credit.payment_intent_id != intent.id:
            recorded = credit.payment_intent_id if credit else None
            detail = (
                f"{intent.status} at the gateway; the credit records intent {recorded or 'none'}"
            )
            result.add(Mismatch.MISSING_HERE, subject, detail, kind=Kind.PAYMENT)
            continue
        gateway_money = Money(amount=intent.amount, currency=intent.currency)
        compare_money(result, Kind.PAYMENT, subject, gateway_money, _money(credit))
        if intent.status not in _intent_statuses(credit):
            detail = f"gateway {intent.status}, credit {credit.status.value}"
            result.add(Mismatch.STATUS, subject, detail, kind=Kind.PAYMENT)
    for credit in credits:
        intent_id = credit.payment_intent_id
        if intent_id and intent_id not in listed and in_period(credit.created_at):
            detail = f"credit {credit.status.value} of {_money(credit)}"
            result.add(
                Mismatch.MISSING_AT_GATEWAY,
                _subject(intent_id, credit, None),
                detail,
                kind=Kind.PAYMENT,
            )


def _refunds(
    result: Reconciliation,
    by_id: dict[str, PartnerTransaction],
    credits: list[PartnerTransaction],
    refunds: list[Refund],
    in_period: InPeriod,
) -> None:
    refunded: set[str] = set()
    for refund in refunds:
        named = refund.metadata.get(PARTNER_TRANSACTION_ID)
        credit = by_id.get(named or "")
        subject = _subject(refund.id, credit, named)
        ours_at = credit.updated_at if credit else None
        if not to_compare(result, Kind.REFUND, refund.created, ours_at, in_period):
            continue
        if credit is None or credit.failure_code != REFUNDED:
            state = f"credit {credit.status.value}" if credit else "no credit of ours"
            detail = f"{refund.amount} {refund.currency} {refund.status}; {state}, not refunded"
            result.add(Mismatch.MISSING_HERE, subject, detail, kind=Kind.REFUND)
            continue
        refunded.add(str(credit.id))
        gateway_money = Money(amount=refund.amount, currency=refund.currency)
        compare_money(result, Kind.REFUND, subject, gateway_money, _money(credit))
        if refund.status not in ("pending", "succeeded"):
            detail = f"gateway {refund.status}, the credit was refunded"
            result.add(Mismatch.STATUS, subject, detail, kind=Kind.REFUND)
    for credit in credits:
        unmatched = credit.failure_code == REFUNDED and str(credit.id) not in refunded
        if unmatched and in_period(credit.updated_at):
            detail = f"credit of {_money(credit)} refunded for a frozen wallet"
            subject = _subject("refund", credit, None)
            result.add(Mismatch.MISSING_AT_GATEWAY, subject, detail, kind=Kind.REFUND)


def _transfers(
    result: Reconciliation,
    by_id: dict[str, PartnerTransaction],
    withdrawals: list[PartnerTransaction],
    transfers: list[Transfer],
    in_period: InPeriod,
) -> None:
    listed = {transfer.id for transfer in transfers}
    for transfer in transfers:
        named = transfer.metadata.get(PARTNER_TRANSACTION_ID)
        withdrawal = by_id.get(named or "")
        subject = _subject(transfer.id, withdrawal, named)
        ours_at = withdrawal.created_at if withdrawal else None
        if not to_compare(result, Kind.TRANSFER, transfer.created, ours_at, in_period):
            continue
        if withdrawal is None or withdrawal.transfer_id != transfer.id:
            recorded = withdrawal.transfer_id if withdrawal else None
            detail = (
                f"to {transfer.destination_account_id}; the withdrawal records transfer "
                f"{recorded or 'none'}"
            )
            result.add(Mismatch.MISSING_HERE, subject, detail, kind=Kind.TRANSFER)
            continue
        money = Money(amount=transfer.amount, currency=transfer.currency)
        compare_money(result, Kind.TRANSFER, subject, money, _money(withdrawal))
        reversed_ours = withdrawal.amount if withdrawal.status is TransactionStatus.FAILED else 0
        if transfer.amount_reversed != reversed_ours:
            detail = f"gateway reversed {transfer.amount_reversed}, ours {reversed_ours}"
            result.add(Mismatch.AMOUNT, subject, detail, kind=Kind.TRANSFER)
    for withdrawal in withdrawals:
        transfer_id = withdrawal.transfer_id
        if transfer_id and transfer_id not in listed and in_period(withdrawal.created_at):
            detail = f"withdrawal {withdrawal.status.value} of {_money(withdrawal)}"
            subject = _subject(transfer_id, withdrawal, None)
            result.add(Mismatch.MISSING_AT_GATEWAY, subject, detail, kind=Kind.TRANSFER)


def _payouts(
    result: Reconciliation,
    by_id: dict[str, PartnerTransaction],
    withdrawals: list[PartnerTransaction],
    payouts: list[Payout],
    in_period: InPeriod,
) -> None:
    listed = {payout.id for payout in payouts}
    for payout in payouts:
        named = payout.metadata.get(PARTNER_TRANSACTION_ID)
        withdrawal = by_id.get(named or "")
        subject = _subject(payout.id, withdrawal, named)
        ours_at = withdrawal.created_at if withdrawal else None
        if not to_compare(result, Kind.PAYOUT, payout.created, ours_at, in_period):
            continue
        if withdrawal is None or withdrawal.payout_id != payout.id:
            recorded = withdrawal.payout_id if withdrawal else None
            detail = (
                f"{payout.status} at the gateway; the withdrawal records payout "
                f"{recorded or 'none'}"
            )
            result.add(Mismatch.MISSING_HERE, subject, detail, kind=Kind.PAYOUT)
            continue
        money = Money(amount=payout.amount, currency=payout.currency)
        compare_money(result, Kind.PAYOUT, subject, money, _money(withdrawal))
        if payout.status not in PAYOUT_STATUSES[withdrawal.status]:
            detail = f"gateway {payout.status}, withdrawal {withdrawal.status.value}"
            result.add(Mismatch.STATUS, subject, detail, kind=Kind.PAYOUT)
    for withdrawal in withdrawals:
        payout_id = withdrawal.payout_id
        if payout_id and payout_id not in listed and in_period(withdrawal.created_at):
            detail = f"withdrawal {withdrawal.status.value} of {_money(withdrawal)}"
            subject = _subject(payout_id, withdrawal, None)
            result.add(Mismatch.MISSING_AT_GATEWAY, subject, detail, kind=Kind.PAYOUT)
