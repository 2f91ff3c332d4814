"""Withdrawals: a partner takes money from one of its wallets to its own bank, through
its Stripe connected account.

Never a gateway call inside a transaction:
1. One transaction stores the PENDING withdrawal (with the connected account it goes
   to), holds the wallet and posts PARTNER_WITHDRAWAL (wallet -> the partner's payout
   in flight) and the fee as PARTNER_FEE (wallet -> platform revenue). The ledger's
   guard refuses what the wallet cannot cover, however many requests race
   (INSUFFICIENT_FUNDS, and nothing is stored).
2. A transfer of the amount to the connected account (key `partner_txn:<id>:transfer`),
   recorded.
3. A payout of it from that account to its bank (key `partner_txn:<id>:payout`),
   recorded with the move to PROCESSING.
If the gateway did not answer or the process died between the steps, the retry job
repeats the steps not recorded, with the same keys, which give the same objects (past
the gateway's idempotency window they are first looked for at the gateway). A step the
gateway refuses outright fails the withdrawal and returns the money to the wallet
(resolvers/partners/gateway/payout_events.py `fail_withdrawal`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import TypeVar

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.lifecycles import PARTNER_TRANSACTION, Party
from documents.partners.transactions import (
    PartnerTransaction,
    TransactionKind,
    TransactionStatus,
)
from documents.partners.wallets import PartnerWallet
from documents.payments.ledger import MovementKind, transfer
from documents.payments.ledger_accounts import (
    partner_payout_in_flight,
    partner_wallet,
)
from integrations.payments.errors import GatewayError
from integrations.payments.gateway import Payout, Transfer
from resolvers.common.services import Services
from resolvers.common.transitions import transition
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.partners.fees import fee_of, post_fee
from resolvers.partners.gateway.payout_events import REFUSED, fail_withdrawal
from resolvers.partners.gateway.records import (
    PARTNER_TRANSACTION_ID,
    group,
    keep,
    metadata_for,
    payload_of,
    step_key,
)
from resolvers.partners.gateway.requests import TRANSACTION_SUBJECT, MoveRequest, checked_move
from resolvers.partners.gateway.requests import owned_wallet as _owned_wallet
from resolvers.partners.idempotency import once, replay
from resolvers.partners.keys import PartnerAccess
from resolvers.partners.postings import hold_active, post
from resolvers.payments.late_retries import CLOCK_SKEW, is_late, late_key

log = logging.getLogger(__name__)

T = TypeVar("T", Transfer, Payout)


async def withdraw(
    services: Services, access: PartnerAccess, request: MoveRequest
) -> PartnerTransaction:
    """Withdraw `request.amount` (plus the partner's withdrawal fee) from the wallet to
    the partner's connected account and on to its bank; the same transaction for a
    repeated request."""
    partner = access.partner
    partner_id = access.partner_id
    wallet = await _owned_wallet(partner_id, request.wallet_id)
    move = checked_move(TransactionKind.WITHDRAWAL, request, wallet)
    fee = fee_of(partner, TransactionKind.WITHDRAWAL, move.money)
    account_id = partner.stripe_account_id

    async def work(unit: UnitOfWork) -> PartnerTransaction:
        found = await replay(unit.session, partner_id, request.idempotency_key, move.digest)
        if found is not None:
            return found
        if account_id is None or not partner.payouts_enabled:
            raise DomainError(
                ErrorCode.PAYOUTS_NOT_ENABLED,
                "Finish setting up the partner's payout account before withdrawing.",
            )
        transaction = move.pending(partner_id, fee, wallet, account_id)
        await transaction.insert(session=unit.session)
        assert transaction.id is not None and wallet.id is not None
        await hold_active(unit.session, wallet, "walletId")
        await post(
            unit.session,
            key=step_key(transaction.id, "withdrawal"),
            kind=MovementKind.PARTNER_WITHDRAWAL,
            entries=transfer(
                partner_wallet(wallet.id), partner_payout_in_flight(partner_id), move.money
            ),
            partner_id=partner_id,
            transaction=transaction,
            memo="Withdrawal to the partner's bank",
        )
        await post_fee(
            unit.session,
            partner_id=partner_id,
            transaction=transaction,
            wallet_id=wallet.id,
            fee=fee,
            memo="The partner's fee on a withdrawal",
        )
        return transaction

    transaction = await once(lambda: transact(services, work))
    if transaction.status is TransactionStatus.PENDING:
        transaction = await send_withdrawal(services, transaction)
    return transaction


async def send_withdrawal(
    services: Services, transaction: PartnerTransaction
) -> PartnerTransaction:
    """Make the withdrawal's transfer and payout, each that is not recorded yet (again,
    with the same keys), and record them; the transaction as it is now."""
    try:
        if transaction.transfer_id is None:
            transaction = await _record_transfer(
                transaction, await _transfer(services, transaction)
            )
        if transaction.payout_id is None and transaction.status is TransactionStatus.PENDING:
            payout = await _payout(services, transaction)
            transaction = await record_payout(services, transaction, payout)
    except GatewayError as error:
        if error.retryable:
            log.warning("withdrawal %s not sent yet: %s", transaction.id, error)
            return transaction
        log.warning("withdrawal %s refused by the gateway: %s", transaction.id, error)
        return await fail_withdrawal(
            services, transaction, error.code or REFUSED, str(error), event=None
        )
    return transaction


async def _transfer(services: Services, transaction: PartnerTransaction) -> Transfer:
    """Step 2 at the gateway: the amount to the partner's connected account."""
    assert transaction.id is not None and transaction.destination_account_id is not None
    gateway = services.payments
    key = step_key(transaction.id, "transfer")
    if is_late(services, transaction.created_at):
        listed = gateway.list_transfers(*_since(transaction), transfer_group=group(transaction.id))
        made = await _made(listed, transaction)
        if made is not None:
            return made
        key = late_key(key)
    return await gateway.create_transfer(
        amount=transaction.amount,
        currency=transaction.currency,
        destination_account_id=transaction.destination_account_id,
        transfer_group=group(transaction.id),
        metadata=await _metadata(transaction),
        idempotency_key=key,
    )


async def _payout(services: Services, transaction: PartnerTransaction) -> Payout:
    """Step 3 at the gateway: from the connected account to the partner's bank."""
    assert transaction.id is not None and transaction.destination_account_id is not None
    gateway = services.payments
    account_id = transaction.destination_account_id
    key = step_key(transaction.id, "payout")
    if is_late(services, transaction.created_at):
        made = await _made(gateway.list_payouts(account_id, *_since(transaction)), transaction)
        if made is not None:
            return made
        key = late_key(key)
    return await gateway.create_payout(
        account_id=account_id,
        amount=transaction.amount,
        currency=transaction.currency,
        metadata=await _metadata(transaction),
        idempotency_key=key,
    )


async def _metadata(transaction: PartnerTransaction) -> dict[str, str]:
    assert transaction.from_wallet_id is not None
    wallet = await PartnerWallet.get(transaction.from_wallet_id)
    assert wallet is not None, "wallets are never deleted"
    return metadata_for(transaction, wallet)


def _since(transaction: PartnerTransaction) -> tuple[datetime, datetime]:
    """Where a step's object may be listed at the gateway: from the request on."""
    return transaction.created_at - CLOCK_SKEW, utcnow() + CLOCK_SKEW


async def _made(listed: AsyncIterator[T], transaction: PartnerTransaction) -> T | None:
    """The object made for `transaction` among those listed, if any (a step retried once
    the gateway may have forgotten its key)."""
    async for made in listed:
        if made.metadata.get(PARTNER_TRANSACTION_ID) == str(transaction.id):
            log.warning("withdrawal %s: late retry found %s made", transaction.id, made.id)
            return made
    return None


async def _record_transfer(transaction: PartnerTransaction, sent: Transfer) -> PartnerTransaction:
    """Step 2: the transfer's id, once; the transaction as it is now."""
    await PartnerTransaction.get_pymongo_collection().update_one(
        {"_id": transaction.id, "transfer_id": None},
        {"$set": {"transfer_id": sent.id, "updated_at": utcnow()}},
    )
    await keep(None, payload_of(sent, "transfer"), transaction)
    current = await PartnerTransaction.get(transaction.id)
    assert current is not None
    return current


async def record_payout(
    services: Services, transaction: PartnerTransaction, payout: Payout
) -> PartnerTransaction:
    """Step 3: the payout's id and the move to PROCESSING, once; the transaction as it
    is now (a concurrent retry or the payout's own event may have recorded it first)."""

    async def work(unit: UnitOfWork) -> PartnerTransaction:
        current = await PartnerTransaction.get(transaction.id, session=unit.session)
        assert current is not None
        if current.status is not TransactionStatus.PENDING or current.payout_id is not None:
            return current
        await keep(unit.session, payload_of(payout, "payout"), current)
        return await transition(
            unit,
            services,
            PARTNER_TRANSACTION,
            "pay_out",
            current,
            Party.SYSTEM,
            TRANSACTION_SUBJECT,
            fields={"payout_id": payout.id},
        )

    return await transact(services, work)


async def retry_unsent_withdrawals(
    services: Services, older_than: timedelta | None = None, limit: int = 100
) -> int:
    """Repeat the steps of pending withdrawals left without their transfer or payout;
    how many were tried. Only those at least `older_than` (by default the job's
    interval) old, so that a request still on its way is normally left to finish."""
    cutoff = utcnow() - (
        services.settings.partner_gateway_retry_interval if older_than is None else older_than
    )
    due = (
        await PartnerTransaction.find(
            {
                "status": TransactionStatus.PENDING.value,
                "kind": TransactionKind.WITHDRAWAL.value,
                "created_at": {"$lte": cutoff},
            }
        )
        .sort("created_at")
        .limit(limit)
        .to_list()
    )
    for transaction in due:
        await send_withdrawal(services, transaction)
    return len(due)
