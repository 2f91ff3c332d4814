"""Instant money operations between a partner's wallets: debits and transfers.

    debit:     wallet -> the partner's clearing wallet in its currency
    transfer:  wallet -> another wallet of the partner, in the same currency

Each is one transaction (`transact`) that, in order: finds an earlier request with the
same idempotency key (`idempotency.replay`: the same request returns its transaction, a
different one is IDEMPOTENCY_KEY_REUSED); holds every wallet involved
(`postings.hold_active`: a frozen or closed wallet neither sends nor receives,
WALLET_FROZEN); stores the COMPLETED `PartnerTransaction`; posts the movement and then
the partner's fee on it, each under a key of the transaction (`partner_txn:<id>:debit`,
`...:transfer`, `...:fee`); and records the webhook events each wallet is owed, with its
balance right after. The ledger refuses to overdraw the sending wallet for the amount
plus the fee, whatever races it (INSUFFICIENT_FUNDS). A refused request aborts the whole
transaction and stores nothing, so its key may be used again. Two requests racing with
one key leave one transaction: `idempotency.once` reruns the loser, which then finds it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.money import Money
from documents.partners.transactions import (
    PartnerTransaction,
    TransactionKind,
    TransactionStatus,
)
from documents.partners.wallets import PartnerWallet
from documents.partners.webhooks import PartnerEventType
from documents.payments.ledger import MovementKind, transfer
from documents.payments.ledger_accounts import partner_wallet
from resolvers.common.inputs import MoneyInput
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.common.validation import Checked
from resolvers.partners import idempotency
from resolvers.partners.fees import fee_of, post_fee, posting_key
from resolvers.partners.keys import PartnerAccess
from resolvers.partners.postings import hold_active, post
from resolvers.partners.requests import CheckedRequest, checked_request
from resolvers.partners.wallet_lookup import in_currency_of, wallet_of
from resolvers.partners.wallets import CLEARING_PREFIX
from resolvers.partners.webhooks.outbox import record_event


def _checked_request(
    amount: MoneyInput, description: str, metadata: object, idempotency_key: str
) -> CheckedRequest:
    checked = Checked()
    request = checked_request(checked, amount, description, metadata, idempotency_key)
    checked.raise_if_any()
    return request


def clearing_wallet_id(currency: str) -> str:
    """The external id of the partner's clearing wallet in `currency`: `clearing-usd`."""
    return f"{CLEARING_PREFIX}{currency.lower()}"


async def clearing_wallet(
    session: AsyncClientSession, partner_id: ObjectId, currency: str
) -> PartnerWallet:
    """The partner's clearing wallet in `currency`, made on first use in the caller's
    transaction. An upsert on the unique (partner, external id) pair: of two first
    debits racing, one makes it and the other's transaction conflicts and, retried,
    finds it."""
    template = PartnerWallet(
        partner_id=partner_id,
        external_user_id=str(partner_id),
        external_wallet_id=clearing_wallet_id(currency),
        name=f"Clearing {currency}",
        currency=currency,
        clearing=True,
    )
    fields = template.model_dump(by_alias=True, exclude={"id", "partner_id", "external_wallet_id"})
    raw = await PartnerWallet.get_pymongo_collection().find_one_and_update(
        {"partner_id": partner_id, "external_wallet_id": template.external_wallet_id},
        {"$setOnInsert": fields},
        upsert=True,
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    wallet: PartnerWallet = PartnerWallet.model_validate(raw)
    return wallet


@dataclass(frozen=True, slots=True)
class Moved:
    transaction: PartnerTransaction
    replayed: bool
    """An earlier request with the same key made it; this one changed nothing."""
    source: PartnerWallet
    target: PartnerWallet
    """The two wallets as they are after it."""


async def _moved(partner_id: ObjectId, made: tuple[PartnerTransaction, bool]) -> Moved:
    transaction, replayed = made
    ids = [transaction.from_wallet_id, transaction.to_wallet_id]
    found = {
        w.id: w async for w in PartnerWallet.find({"_id": {"$in": ids}, "partner_id": partner_id})
    }
    source, target = (found[i] for i in ids)
    return Moved(transaction, replayed, source, target)


async def _made_once(
    services: Services,
    access: PartnerAccess,
    request: CheckedRequest,
    digest: str,
    make: Callable[[UnitOfWork], Awaitable[PartnerTransaction]],
) -> Moved:
    """`make` the transaction in one database transaction, unless an earlier request
    with the same key made it (then that one, replayed; IDEMPOTENCY_KEY_REUSED if it
    asked something else)."""

    async def work(unit: UnitOfWork) -> tuple[PartnerTransaction, bool]:
        found = await idempotency.replay(
            unit.session, access.partner_id, request.idempotency_key, digest
        )
        if found is not None:
            return found, True
        return await make(unit), False

    return await _moved(access.partner_id, await idempotency.once(lambda: transact(services, work)))


def _new_transaction(
    access: PartnerAccess,
    kind: TransactionKind,
    request: CheckedRequest,
    digest: str,
    fee: Money,
    source: PartnerWallet,
    target: PartnerWallet,
) -> PartnerTransaction:
    now = utcnow()
    return PartnerTransaction(
        id=PydanticObjectId(),
        partner_id=access.partner_id,
        idempotency_key=request.idempotency_key,
        request_hash=digest,
        kind=kind,
        status=TransactionStatus.COMPLETED,
        amount=request.money.amount,
        fee=fee.amount,
        currency=request.money.currency,
        description=request.description,
        metadata=request.metadata,
        from_wallet_id=source.id,
        to_wallet_id=target.id,
        created_at=now,
        updated_at=now,
        completed_at=now,
    )


async def _move(
    unit: UnitOfWork,
    access: PartnerAccess,
    transaction: PartnerTransaction,
    kind: MovementKind,
    step: str,
    source: PartnerWallet,
    target: PartnerWallet,
) -> None:
    """Store `transaction`, post its movement and fee from `source` to `target`, and
    record `transaction.completed` for each wallet (a transfer's receiving wallet
    `wallet.funds_added` first)."""
    assert transaction.id is not None and source.id is not None and target.id is not None
    session = unit.session
    await hold_active(session, source, "fromWalletId" if step == "transfer" else "walletId")
    await hold_active(session, target, "toWalletId" if step == "transfer" else "walletId")
    # The transaction first: a request racing with the same key conflicts on it.
    await transaction.insert(session=session)
    money = Money(amount=transaction.amount, currency=transaction.currency)
    moved = await post(
        session,
        key=posting_key(transaction.id, step),
        kind=kind,
        entries=transfer(partner_wallet(source.id), partner_wallet(target.id), money),
        partner_id=access.partner_id,
        transaction=transaction,
        memo=f"Partner {step}",
    )
    fee = Money(amount=transaction.fee, currency=transaction.currency)
    charged = await post_fee(
        session,
        partner_id=access.partner_id,
        transaction=transaction,
        wallet_id=source.id,
        fee=fee,
    )
    sent = (charged or moved).balance_after[source.id]
    received = moved.balance_after[target.id]
    completed = PartnerEventType.TRANSACTION_COMPLETED
    await record_event(session, source, completed, transaction=transaction, balance=sent)
    # A transfer's receiving wallet hears as after a card credit: funds added, then completed.
    heard = (PartnerEventType.WALLET_FUNDS_ADDED, completed) if step == "transfer" else (completed,)
    for heard_kind in heard:
        await record_event(session, target, heard_kind, transaction=transaction, balance=received)


async def debit_wallet(
    services: Services,
    access: PartnerAccess,
    wallet_id: ObjectId,
    *,
    amount: MoneyInput,
    description: str,
    metadata: object,
    idempotency_key: str,
) -> Moved:
    """Move `amount` from the wallet to the partner's clearing wallet in its currency,
    plus the partner's debit fee to the platform."""
    request = _checked_request(amount, description, metadata, idempotency_key)
    digest = idempotency.request_digest(
        TransactionKind.DEBIT.value,
        wallet_id=str(wallet_id),
        amount=request.money,
        description=request.description,
        metadata=request.metadata,
    )

    async def make_debit(unit: UnitOfWork) -> PartnerTransaction:
        session = unit.session
        wallet = await wallet_of(access.partner_id, wallet_id, "walletId", session=session)
        money = in_currency_of(wallet, request.money, "amount")
        if wallet.clearing:
            raise DomainError(
                ErrorCode.INVALID_INPUT,
                "A clearing wallet is what debits pay into; it cannot be debited itself.",
                "walletId",
            )
        clearing = await clearing_wallet(session, access.partner_id, money.currency)
        fee = fee_of(access.partner, TransactionKind.DEBIT, money)
        transaction = _new_transaction(
            access, TransactionKind.DEBIT, request, digest, fee, wallet, clearing
        )
        await _move(
            unit, access, transaction, MovementKind.PARTNER_DEBIT, "debit", wallet, clearing
        )
        return transaction

    return await _made_once(services, access, request, digest, make_debit)


async def transfer_between_wallets(
    services: Services,
    access: PartnerAccess,
    from_wallet_id: ObjectId,
    to_wallet_id: ObjectId,
    *,
    amount: MoneyInput,
    description: str,
    metadata: object,
    idempotency_key: str,
) -> Moved:
    """Move `amount` from one of the partner's wallets to another in the same currency,
    at once, plus the partner's transfer fee to the platform."""
    request = _checked_request(amount, description, metadata, idempotency_key)
    if from_wallet_id == to_wallet_id:
        raise DomainError(
            ErrorCode.INVALID_INPUT, "A transfer goes to another wallet.", "toWalletId"
        )
    digest = idempotency.request_digest(
        TransactionKind.TRANSFER.value,
        from_wallet_id=str(from_wallet_id),
        to_wallet_id=str(to_wallet_id),
        amount=request.money,
        description=request.description,
        metadata=request.metadata,
    )

    async def make_transfer(unit: UnitOfWork) -> PartnerTransaction:
        session = unit.session
        source = await wallet_of(access.partner_id, from_wallet_id, "fromWalletId", session=session)
        target = await wallet_of(access.partner_id, to_wallet_id, "toWalletId", session=session)
        money = in_currency_of(source, request.money, "amount")
        if target.currency != source.currency:
            raise DomainError(
                ErrorCode.INVALID_INPUT,
                f"The receiving wallet holds {target.currency}; the sending one "
                f"{source.currency}. Transfers do not convert.",
                "toWalletId",
            )
        fee = fee_of(access.partner, TransactionKind.TRANSFER, money)
        transaction = _new_transaction(
            access, TransactionKind.TRANSFER, request, digest, fee, source, target
        )
        await _move(
            unit, access, transaction, MovementKind.PARTNER_TRANSFER, "transfer", source, target
        )
        return transaction

    return await _made_once(services, access, request, digest, make_transfer)
