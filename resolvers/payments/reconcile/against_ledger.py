"""`gigql reconcile`, part two: each record of the period against its ledger postings.

Postings are found by what they are filed under (the escrow, the withdrawal, the
partner transaction) and their
kind, not by their keys, and the amounts on the payer's, provider's or payout accounts
are summed: a movement recorded but never posted, or posted for another amount, is
reported as `not_posted`.
"""

from __future__ import annotations

from collections import defaultdict

from documents.money import Money
from documents.partners.transactions import (
    PartnerTransaction,
    TransactionKind,
    TransactionStatus,
)
from documents.payments import ledger_accounts
from documents.payments.escrow import PAID_STATUSES, Escrow, EscrowStatus, RefundStatus
from documents.payments.ledger import LedgerTransaction, MovementKind, Ref
from documents.payments.payouts import Withdrawal, WithdrawalStatus
from resolvers.payments.reconcile.report import Kind, Mismatch, Reconciliation

Filed = defaultdict[str, defaultdict[MovementKind, list[LedgerTransaction]]]
"""The postings filed under each escrow or withdrawal, by kind."""


async def _filed(ref: Ref, values: list[str]) -> Filed:
    filed: Filed = defaultdict(lambda: defaultdict(list))
    found = LedgerTransaction.find({f"refs.{ref.value}": {"$in": values}})
    async for transaction in found:
        filed[transaction.refs[ref]][transaction.kind].append(transaction)
    return filed


def _expect(
    result: Reconciliation,
    kind: Kind,
    subject: str,
    postings: defaultdict[MovementKind, list[LedgerTransaction]],
    movement: MovementKind,
    account: str,
    recorded: Money,
) -> None:
    """Postings of `movement` that put `recorded` into `account` (negative: out of it);
    postings of a movement recorded as nothing are reported too."""
    found = postings[movement]
    if not found and recorded.amount:
        detail = f"no {movement.value} posting for {recorded}"
        result.add(Mismatch.NOT_POSTED, subject, detail, kind=kind)
        return
    posted = sum(
        entry.amount
        for transaction in found
        for entry in transaction.entries
        if entry.account == account and entry.currency == recorded.currency
    )
    if posted != recorded.amount:
        detail = (
            f"{movement.value} posted {Money(amount=posted, currency=recorded.currency)} "
            f"on {account}, recorded {recorded}"
        )
        result.add(Mismatch.NOT_POSTED, subject, detail, kind=kind)


async def check_postings(
    result: Reconciliation, escrows: list[Escrow], withdrawals: list[Withdrawal]
) -> None:
    filed = await _filed(Ref.ESCROW, [str(e.id) for e in escrows])
    for escrow in escrows:
        postings = filed[str(escrow.id)]
        subject = f"escrow {escrow.id}"
        payer = ledger_accounts.funding(escrow.payer_id)
        zero = escrow.fees.charged.zero()
        if escrow.status in PAID_STATUSES or postings[MovementKind.PAYMENT_RECEIVED]:
            paid = escrow.fees.charged if escrow.status in PAID_STATUSES else zero
            _expect(
                result,
                Kind.PAYMENT,
                subject,
                postings,
                MovementKind.PAYMENT_RECEIVED,
                payer,
                zero - paid,
            )
        refunded = sum(
            (r.amount for r in escrow.refunds if r.status is RefundStatus.SUCCEEDED), zero
        )
        if refunded.amount or postings[MovementKind.REFUND]:
            _expect(result, Kind.REFUND, subject, postings, MovementKind.REFUND, payer, refunded)
        release = escrow.release
        # After a reversal, later rounds move what the admin decides; the first is exact.
        if escrow.status is EscrowStatus.RELEASED and release is not None and release.round == 1:
            _expect(
                result,
                Kind.TRANSFER,
                subject,
                postings,
                MovementKind.ESCROW_RELEASED,
                ledger_accounts.wallet(escrow.provider_id),
                release.to_provider,
            )
    filed = await _filed(Ref.PAYOUT, [str(w.id) for w in withdrawals])
    for withdrawal in withdrawals:
        postings = filed[str(withdrawal.id)]
        subject = f"withdrawal {withdrawal.id}"
        in_flight = ledger_accounts.payout_in_flight(withdrawal.provider_id)
        wallet = ledger_accounts.wallet(withdrawal.provider_id)
        expected = [(MovementKind.PAYOUT_REQUESTED, in_flight)]
        if withdrawal.status is WithdrawalStatus.PAID:
            expected.append(
                (MovementKind.PAYOUT_PAID, ledger_accounts.paid_out(withdrawal.provider_id))
            )
        elif withdrawal.status is WithdrawalStatus.FAILED:
            expected.append((MovementKind.PAYOUT_FAILED, wallet))
        for movement, account in expected:
            _expect(result, Kind.PAYOUT, subject, postings, movement, account, withdrawal.amount)


async def check_partner_postings(
    result: Reconciliation, transactions: list[PartnerTransaction]
) -> None:
    """Partner credits and withdrawals: filed under the partner transaction."""
    filed = await _filed(Ref.PARTNER_TRANSACTION, [str(t.id) for t in transactions])
    for transaction in transactions:
        postings = filed[str(transaction.id)]
        subject = f"partner transaction {transaction.id}"
        money = Money(amount=transaction.amount, currency=transaction.currency)
        fee = Money(amount=transaction.fee, currency=transaction.currency)
        completed = transaction.status is TransactionStatus.COMPLETED
        partner_id = transaction.partner_id
        expected: list[tuple[MovementKind, str, Money]]
        if transaction.kind is TransactionKind.CREDIT:
            assert transaction.to_wallet_id is not None
            kind = Kind.PAYMENT
            expected = [
                (
                    MovementKind.PARTNER_CREDIT,
                    ledger_accounts.partner_wallet(transaction.to_wallet_id),
                    money if completed else money.zero(),
                ),
                (
                    MovementKind.PARTNER_FEE,
                    ledger_accounts.platform_revenue(),
                    fee if completed else fee.zero(),
                ),
            ]
        else:
            assert transaction.from_wallet_id is not None
            kind = Kind.PAYOUT
            failed = transaction.status is TransactionStatus.FAILED
            expected = [
                (
                    MovementKind.PARTNER_WITHDRAWAL,
                    ledger_accounts.partner_payout_in_flight(partner_id),
                    money,
                ),
                (MovementKind.PARTNER_FEE, ledger_accounts.platform_revenue(), fee),
                (
                    MovementKind.PARTNER_PAYOUT_PAID,
                    ledger_accounts.partner_paid_out(partner_id),
                    money if completed else money.zero(),
                ),
                (
                    MovementKind.PARTNER_PAYOUT_FAILED,
                    ledger_accounts.partner_wallet(transaction.from_wallet_id),
                    money if failed else money.zero(),
                ),
            ]
        for movement, account, recorded in expected:
            _expect(result, kind, subject, postings, movement, account, recorded)
