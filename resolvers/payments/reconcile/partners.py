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

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

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


class Matched(Tagged, Protocol):
    """A gateway object, as far as matching it with a partner transaction goes."""

    @property
    def id(self) -> str: ...
    @property
    def created(self) -> datetime: ...
    @property
    def amount(self) -> int: ...
    @property
    def currency(self) -> str: ...


T = TypeVar("T")
G = TypeVar("G", bound=Matched)


def is_partners(obj: Tagged) -> bool:
    return PARTNER_TRANSACTION_ID in obj.metadata


async def partner_intent_ids(intent_ids: list[str | None]) -> set[str]:
    """Those of `intent_ids` that are partner credits' payment intents."""
    wanted = [i for i in intent_ids if i]
    if not wanted:
        return set()
    found = PartnerTransaction.find({"payment_intent_id": {"$in": wanted}})
    return {t.payment_intent_id async for t in found if t.payment_intent_id}


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
    _match(result, by_id, credits, intents, in_period, _PAYMENTS)
    _refunds(result, by_id, credits, refunds, in_period)
    _match(result, by_id, withdrawals, transfers, in_period, _TRANSFERS)
    _match(result, by_id, withdrawals, payouts, in_period, _PAYOUTS)
    await check_partner_postings(result, [t for t in transactions if in_period(t.created_at)])


def _intent_statuses(credit: PartnerTransaction) -> set[str]:
    if credit.status is TransactionStatus.PENDING:
        return OPEN_INTENT
    if credit.status is TransactionStatus.COMPLETED or credit.failure_code == REFUNDED:
        return {"succeeded"}
    return {"canceled"}


@dataclass(frozen=True, slots=True)
class _Matching(Generic[G]):
    """How gateway objects of one kind are matched with the transactions that record
    them: each object with the transaction its metadata names, which must record its
    id; each recorded id with an object listed at the gateway."""

    kind: Kind
    ours: str
    """What the transactions are called in a detail: "credit", "withdrawal"."""
    noun: str
    """What the objects are called in a detail: "intent", "transfer", "payout"."""
    recorded: Callable[[PartnerTransaction], str | None]
    """The object's id as the transaction records it."""
    at_gateway: Callable[[G], str]
    """How the object stands at the gateway, for an object no transaction records."""
    differs: Callable[[G, PartnerTransaction], tuple[Mismatch, str] | None]
    """What else of a matched pair must agree (besides the money): the mismatch if not."""


def _match(
    result: Reconciliation,
    by_id: dict[str, PartnerTransaction],
    transactions: list[PartnerTransaction],
    objects: list[G],
    in_period: InPeriod,
    matching: _Matching[G],
) -> None:
    kind = matching.kind
    listed = {obj.id for obj in objects}
    for obj in objects:
        named = obj.metadata.get(PARTNER_TRANSACTION_ID)
        ours = by_id.get(named or "")
        subject = _subject(obj.id, ours, named)
        ours_at = ours.created_at if ours else None
        if not to_compare(result, kind, obj.created, ours_at, in_period):
            continue
        recorded = matching.recorded(ours) if ours else None
        if ours is None or recorded != obj.id:
            detail = (
                f"{matching.at_gateway(obj)}; the {matching.ours} records {matching.noun} "
                f"{recorded or 'none'}"
            )
            result.add(Mismatch.MISSING_HERE, subject, detail, kind=kind)
            continue
        gateway_money = Money(amount=obj.amount, currency=obj.currency)
        compare_money(result, kind, subject, gateway_money, _money(ours))
        if differing := matching.differs(obj, ours):
            mismatch, detail = differing
            result.add(mismatch, subject, detail, kind=kind)
    for transaction in transactions:
        recorded = matching.recorded(transaction)
        if recorded and recorded not in listed and in_period(transaction.created_at):
            detail = f"{matching.ours} {transaction.status.value} of {_money(transaction)}"
            subject = _subject(recorded, transaction, None)
            result.add(Mismatch.MISSING_AT_GATEWAY, subject, detail, kind=kind)


def _intent_differs(
    intent: PaymentIntent, credit: PartnerTransaction
) -> tuple[Mismatch, str] | None:
    if intent.status in _intent_statuses(credit):
        return None
    return Mismatch.STATUS, f"gateway {intent.status}, credit {credit.status.value}"


def _transfer_differs(
    transfer: Transfer, withdrawal: PartnerTransaction
) -> tuple[Mismatch, str] | None:
    reversed_ours = withdrawal.amount if withdrawal.status is TransactionStatus.FAILED else 0
    if transfer.amount_reversed == reversed_ours:
        return None
    return Mismatch.AMOUNT, f"gateway reversed {transfer.amount_reversed}, ours {reversed_ours}"


def _payout_differs(payout: Payout, withdrawal: PartnerTransaction) -> tuple[Mismatch, str] | None:
    if payout.status in PAYOUT_STATUSES[withdrawal.status]:
        return None
    return Mismatch.STATUS, f"gateway {payout.status}, withdrawal {withdrawal.status.value}"


_PAYMENTS: _Matching[PaymentIntent] = _Matching(
    Kind.PAYMENT,
    "credit",
    "intent",
    recorded=lambda credit: credit.payment_intent_id,
    at_gateway=lambda intent: f"{intent.status} at the gateway",
    differs=_intent_differs,
)
_TRANSFERS: _Matching[Transfer] = _Matching(
    Kind.TRANSFER,
    "withdrawal",
    "transfer",
    recorded=lambda withdrawal: withdrawal.transfer_id,
    at_gateway=lambda transfer: f"to {transfer.destination_account_id}",
    differs=_transfer_differs,
)
_PAYOUTS: _Matching[Payout] = _Matching(
    Kind.PAYOUT,
    "withdrawal",
    "payout",
    recorded=lambda withdrawal: withdrawal.payout_id,
    at_gateway=lambda payout: f"{payout.status} at the gateway",
    differs=_payout_differs,
)


def _refunds(
    result: Reconciliation,
    by_id: dict[str, PartnerTransaction],
    credits: list[PartnerTransaction],
    refunds: list[Refund],
    in_period: InPeriod,
) -> None:
    refunded: set[str] = set()
    at_gateway: dict[str, int] = {}
    """Per completed credit, what the gateway refunded of it outside gigql."""
    by_intent = {c.payment_intent_id: c for c in credits if c.payment_intent_id}
    for refund in refunds:
        named = refund.metadata.get(PARTNER_TRANSACTION_ID)
        credit = by_id.get(named or "")
        paid = by_intent.get(refund.payment_intent_id or "")
        if named is None and paid is not None:
            # Made in the dashboard (refund_events.py took it back from the wallet).
            if refund.status in ("pending", "succeeded"):
                at_gateway[str(paid.id)] = at_gateway.get(str(paid.id), 0) + refund.amount
            continue
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
        gateway_refunded = at_gateway.get(str(credit.id), 0)
        if gateway_refunded != credit.refunded and in_period(credit.updated_at):
            subject = _subject("refund", credit, None)
            detail = (
                f"the gateway refunded {gateway_refunded} of the credit, "
                f"{credit.refunded} is recorded"
            )
            result.add(Mismatch.AMOUNT, subject, detail, kind=Kind.REFUND)
        unmatched = credit.failure_code == REFUNDED and str(credit.id) not in refunded
        if unmatched and in_period(credit.updated_at):
            detail = f"credit of {_money(credit)} refunded for a frozen wallet"
            subject = _subject("refund", credit, None)
            result.add(Mismatch.MISSING_AT_GATEWAY, subject, detail, kind=Kind.REFUND)
