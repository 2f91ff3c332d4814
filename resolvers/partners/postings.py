"""Moving partner money: ledger postings that also write each wallet's statement.

    await hold_active(unit.session, wallet)           # frozen or closed: WALLET_FROZEN
    posted = await post(
        unit.session, key=f"partner_txn:{txn.id}:transfer", kind=MovementKind.PARTNER_TRANSFER,
        entries=transfer(partner_wallet(a.id), partner_wallet(b.id), money),
        partner_id=partner.id, transaction=txn,
    )
    posted.balance_after[b.id]

Every money transaction first holds each wallet it touches (`hold_active`): a
conditional write on the wallet, so a freeze or close racing it conflicts and one of the
two wins. `post` then posts through the ledger (idempotent per key; it refuses to
overdraw a wallet, whatever races it) and writes one `WalletEntry` per wallet with the
balance right after the posting, read in the same transaction, numbered by a counter on
the wallet, so the statement lists lines in the order their postings committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.partners.transactions import PartnerTransaction
from documents.partners.wallets import PartnerWallet, WalletEntry, WalletStatus
from documents.payments.ledger import Entry, LedgerTransaction, MovementKind, Ref
from documents.payments.ledger_accounts import AccountKind, parse_account
from resolvers.payments import ledger


async def hold_active(session: AsyncClientSession, wallet: PartnerWallet, field: str) -> None:
    """Claim `wallet` for a movement in this transaction; WALLET_FROZEN (on `field`) if it
    is frozen or closed by now."""
    held = await PartnerWallet.get_pymongo_collection().update_one(
        {"_id": wallet.id, "status": WalletStatus.ACTIVE.value},
        {"$inc": {"version": 1}, "$set": {"updated_at": utcnow()}},
        session=session,
    )
    if held.matched_count == 0:
        raise DomainError(
            ErrorCode.WALLET_FROZEN,
            f"The wallet {wallet.external_wallet_id!r} is frozen or closed: it neither "
            "sends nor receives money.",
            field,
        )


@dataclass(frozen=True, slots=True)
class Posted:
    ledger: LedgerTransaction
    balance_after: dict[ObjectId, int]
    """Each partner wallet the posting touched, and its balance after it."""


async def post(
    session: AsyncClientSession,
    *,
    key: str,
    kind: MovementKind,
    entries: Sequence[Entry],
    partner_id: ObjectId,
    transaction: PartnerTransaction,
    memo: str = "",
) -> Posted:
    """Post `entries` under `key` (filed under the partner and the transaction) and write
    the statement line of each partner wallet in them. A retried posting returns the
    first one and writes nothing new."""
    assert transaction.id is not None
    posted = await ledger.post(
        session,
        key=key,
        kind=kind,
        entries=entries,
        refs={Ref.PARTNER: partner_id, Ref.PARTNER_TRANSACTION: transaction.id},
        memo=memo,
    )
    balances: dict[ObjectId, int] = {}
    for entry in posted.entries:
        account = parse_account(entry.account)
        if account.kind is not AccountKind.PARTNER_WALLET or account.owner is None:
            continue
        wallet_id = account.owner
        after = (await ledger.balance(entry.account, entry.currency, session)).amount
        balances[wallet_id] = after
        if await WalletEntry.get_pymongo_collection().find_one(
            {"ledger_transaction_id": posted.id, "wallet_id": wallet_id},
            {"_id": 1},
            session=session,
        ):
            continue  # a replayed posting: its line is written
        numbered = await PartnerWallet.get_pymongo_collection().find_one_and_update(
            {"_id": wallet_id},
            {"$inc": {"statement_lines": 1}},
            projection={"statement_lines": 1},
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        assert numbered is not None, "a partner wallet account has its wallet"
        line = WalletEntry(
            wallet_id=wallet_id,
            partner_id=partner_id,
            transaction_id=transaction.id,
            ledger_transaction_id=posted.id,
            kind=kind.value,
            amount=entry.amount,
            currency=entry.currency,
            balance_after=after,
            line=int(numbered["statement_lines"]),
            created_at=posted.created_at,
        )
        await line.insert(session=session)
    return Posted(posted, balances)
