"""What a credit or withdrawal request names, checked before anything is stored.

A request names one of the partner's wallets (another partner's is NOT_FOUND, as if it
did not exist) and what every money request names, under the rules debits and transfers
follow (resolvers/partners/requests.py): an amount, now in the wallet's currency and, for
a card credit, at least the gateway's minimum charge in it (it refuses less, and the
credit could never be paid); the partner's description and tracking metadata; the
partner's idempotency key. The metadata travels to the gateway as one value
(`partner_reference`), so it is also held to Stripe's limit on one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.errors import DomainError, ErrorCode
from documents.money import Money
from documents.partners.transactions import (
    PartnerTransaction,
    TransactionKind,
    TransactionStatus,
)
from documents.partners.wallets import PartnerWallet
from documents.payments.currencies import chargeable_currency
from resolvers.common.inputs import MoneyInput
from resolvers.common.transitions import Subject
from resolvers.common.validation import Checked
from resolvers.partners.idempotency import request_digest
from resolvers.partners.requests import checked_request

MAX_METADATA_LENGTH = 500
"""Characters of the metadata as compact JSON: Stripe's limit on one metadata value."""

TRANSACTION_SUBJECT = Subject("transaction", "transactionId")


@dataclass(frozen=True, slots=True)
class MoveRequest:
    """A credit by card or a withdrawal, as the partner asked for it."""

    wallet_id: ObjectId
    amount: MoneyInput
    description: str
    metadata: object
    """As given: a JSON object is expected."""
    idempotency_key: str


async def owned_wallet(
    partner_id: ObjectId,
    wallet_id: ObjectId,
    field: str = "walletId",
    session: AsyncClientSession | None = None,
) -> PartnerWallet:
    """The partner's wallet; NOT_FOUND for any other, another partner's included."""
    wallet = await PartnerWallet.find_one(
        {"_id": wallet_id, "partner_id": partner_id}, session=session
    )
    if wallet is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such wallet.", field)
    return wallet


async def owned_transaction(
    partner_id: ObjectId, transaction_id: ObjectId, field: str = "transactionId"
) -> PartnerTransaction:
    """The partner's transaction; NOT_FOUND for any other."""
    found = await PartnerTransaction.find_one({"_id": transaction_id, "partner_id": partner_id})
    if found is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such transaction.", field)
    return found


@dataclass(frozen=True, slots=True)
class CheckedMove:
    """A valid credit or withdrawal request: its amount, description and metadata as
    stored, and the
    digest of what it asks (`idempotency.request_digest`) its key is kept with."""

    kind: TransactionKind
    request: MoveRequest
    money: Money
    description: str
    metadata: dict[str, Any]
    digest: str

    def pending(
        self,
        partner_id: ObjectId,
        fee: Money,
        wallet: PartnerWallet,
        destination_account_id: str | None = None,
    ) -> PartnerTransaction:
        """The PENDING transaction it asks for: a credit into the wallet, or a
        withdrawal from it to the connected account."""
        credit = self.kind is TransactionKind.CREDIT
        return PartnerTransaction(
            partner_id=partner_id,
            idempotency_key=self.request.idempotency_key,
            request_hash=self.digest,
            kind=self.kind,
            status=TransactionStatus.PENDING,
            amount=self.money.amount,
            fee=fee.amount,
            currency=self.money.currency,
            description=self.description,
            metadata=self.metadata,
            to_wallet_id=wallet.id if credit else None,
            from_wallet_id=None if credit else wallet.id,
            destination_account_id=destination_account_id,
        )


def checked_move(kind: TransactionKind, request: MoveRequest, wallet: PartnerWallet) -> CheckedMove:
    """The request, once everything it names is valid (else INVALID_INPUT on each field
    at fault)."""
    checked = Checked()
    common = checked_request(
        checked, request.amount, request.description, request.metadata, request.idempotency_key
    )
    money = common.money
    at_fault = {(p.field or "").split(".")[0] for p in checked.problems}
    if "amount" in at_fault:
        pass  # no amount to compare
    elif money.currency != wallet.currency:
        message = f"The wallet holds {wallet.currency}; the amount must be in it."
        checked.fail(ErrorCode.INVALID_INPUT, message, "amount")
    elif kind is TransactionKind.CREDIT and money.amount < minimum_charge(money.currency):
        least = Money(amount=minimum_charge(money.currency), currency=money.currency)
        message = f"A card credit is at least {least}: the card network charges no less."
        checked.fail(ErrorCode.INVALID_INPUT, message, "amount")
    if "metadata" not in at_fault and len(compact(common.metadata)) > MAX_METADATA_LENGTH:
        message = f"Metadata has at most {MAX_METADATA_LENGTH} characters as compact JSON."
        checked.fail(ErrorCode.INVALID_INPUT, message, "metadata")
    checked.raise_if_any()
    digest = request_digest(
        kind.value,
        wallet_id=request.wallet_id,
        amount=money,
        description=common.description,
        metadata=common.metadata,
    )
    return CheckedMove(kind, request, money, common.description, common.metadata, digest)


def minimum_charge(currency: str) -> int:
    """The least the gateway charges in `currency` (one the gateway handles)."""
    terms = chargeable_currency(currency)
    assert terms is not None, "Checked.money accepts only the gateway's currencies"
    return terms.minimum_charge


def compact(metadata: dict[str, Any]) -> str:
    return json.dumps(metadata, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
