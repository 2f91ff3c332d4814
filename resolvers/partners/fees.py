"""The partner's fee on an operation, and its posting.

A fee is the partner's rate for the kind of operation (documents/partners/partners.py
`PartnerFees`, in basis points) of the operation's amount, rounded half up to the minor
unit. It is posted on its own, from the wallet the operation concerns to platform
revenue, under the transaction's `fee` key, so that the statement shows it as its own
line and the transaction's `fee` is exactly what revenue received:

    fee = fee_of(partner, TransactionKind.DEBIT, money)
    await post_fee(unit.session, partner_id=..., transaction=txn, wallet_id=sender.id, fee=fee)

Every posting of a partner transaction is keyed `partner_txn:<transaction id>:<step>`
(`posting_key`), so a retried transaction posts each step once.
"""

from __future__ import annotations

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.money import Money
from documents.partners.partners import Partner
from documents.partners.transactions import PartnerTransaction, TransactionKind
from documents.payments.ledger import MovementKind, transfer
from documents.payments.ledger_accounts import partner_wallet, platform_revenue
from resolvers.partners.postings import Posted, post

FEE_STEP = "fee"


def posting_key(transaction_id: ObjectId, step: str) -> str:
    """The ledger key of one step (`debit`, `transfer`, `fee`...) of a partner transaction."""
    return f"partner_txn:{transaction_id}:{step}"


def rate_of(partner: Partner, kind: TransactionKind) -> int:
    """The partner's rate for `kind`, in basis points."""
    fees = partner.fees
    return {
        TransactionKind.CREDIT: fees.credit_bp,
        TransactionKind.DEBIT: fees.debit_bp,
        TransactionKind.TRANSFER: fees.transfer_bp,
        TransactionKind.WITHDRAWAL: fees.withdrawal_bp,
    }[kind]


def fee_of(partner: Partner, kind: TransactionKind, amount: Money) -> Money:
    """What the platform takes on an operation of `kind` moving `amount`."""
    return amount.basis_points(rate_of(partner, kind))


async def post_fee(
    session: AsyncClientSession,
    *,
    partner_id: ObjectId,
    transaction: PartnerTransaction,
    wallet_id: ObjectId,
    fee: Money,
    memo: str | None = None,
) -> Posted | None:
    """Post `fee` from the wallet to platform revenue (INSUFFICIENT_FUNDS if the wallet
    cannot cover it); None, and nothing posted, for a fee of zero."""
    if fee.amount == 0:
        return None
    assert transaction.id is not None
    return await post(
        session,
        key=posting_key(transaction.id, FEE_STEP),
        kind=MovementKind.PARTNER_FEE,
        entries=transfer(partner_wallet(wallet_id), platform_revenue(), fee),
        partner_id=partner_id,
        transaction=transaction,
        memo=memo or f"Partner fee on {transaction.kind.value}",
    )
