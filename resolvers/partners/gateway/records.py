"""The gateway objects a partner's money touched, and what links them to ours.

Each payment intent, refund, transfer, transfer reversal and payout made for a partner
transaction is kept as a `PartnerGatewayObject` with the gateway's latest payload: the
answer when it was made, then each event's object about it (records, reconciliation).
A payment intent's client secret is never kept: it is for the payer's app only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId
from pydantic_core import to_jsonable_python
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.clock import utcnow
from documents.partners.transactions import PartnerGatewayObject, PartnerTransaction
from documents.partners.wallets import PartnerWallet
from documents.payments.ledger_accounts import partner_wallet
from integrations.payments.gateway import GatewayEvent
from resolvers.common.unit_of_work import UnitOfWork
from resolvers.partners.gateway.requests import compact
from resolvers.payments import ledger
from resolvers.payments.webhooks.checks import NotReady

PARTNER_TRANSACTION_ID = "partner_transaction_id"
"""The metadata key that marks a gateway object as a partner transaction's."""
_NEVER_KEPT = frozenset({"client_secret"})


def group(transaction_id: ObjectId) -> str:
    """The transaction's transfer group, and the stem of its gateway idempotency keys."""
    return f"partner_txn:{transaction_id}"


def step_key(transaction_id: ObjectId, step: str) -> str:
    """`partner_txn:<id>:<step>`: the key of one gateway step or ledger posting."""
    return f"{group(transaction_id)}:{step}"


def wallet_id_of(transaction: PartnerTransaction) -> ObjectId:
    """The wallet a credit pays into or a withdrawal takes from."""
    wallet_id = transaction.to_wallet_id or transaction.from_wallet_id
    assert wallet_id is not None, "credits and withdrawals name their wallet"
    return wallet_id


def our_ids(transaction: PartnerTransaction) -> dict[str, str]:
    """Our ids in the metadata of every gateway object made for `transaction`: what
    webhooks find it by and must agree with."""
    return {
        PARTNER_TRANSACTION_ID: str(transaction.id),
        "partner_wallet_id": str(wallet_id_of(transaction)),
        "partner_id": str(transaction.partner_id),
    }


def metadata_for(transaction: PartnerTransaction, wallet: PartnerWallet) -> dict[str, str]:
    """What the gateway is told: our ids, the partner's ids of the wallet and its user,
    and the partner's tracking metadata (`partner_reference`). Never balances."""
    links = {
        **our_ids(transaction),
        "external_user_id": wallet.external_user_id,
        "external_wallet_id": wallet.external_wallet_id,
    }
    if transaction.metadata:
        links["partner_reference"] = compact(transaction.metadata)
    return links


def partner_transaction_id(obj: Mapping[str, Any]) -> str | None:
    """The partner transaction a gateway object's metadata names, if any."""
    metadata = obj.get("metadata")
    value = metadata.get(PARTNER_TRANSACTION_ID) if isinstance(metadata, Mapping) else None
    return value if isinstance(value, str) else None


def payload_of(result: object, object_type: str) -> dict[str, Any]:
    """A gateway method's answer as a payload to keep, until an event brings Stripe's."""
    assert dataclasses.is_dataclass(result) and not isinstance(result, type)
    fields: dict[str, Any] = to_jsonable_python(dataclasses.asdict(result))
    return {"object": object_type, **fields}


async def keep(
    session: AsyncClientSession | None,
    payload: Mapping[str, Any],
    transaction: PartnerTransaction,
    event: GatewayEvent | None = None,
) -> None:
    """Store or update the gateway object `payload` (Stripe's JSON shape, with its `id`
    and `object`) as one of `transaction`'s."""
    now = utcnow()
    fields: dict[str, Any] = {
        "payload": {k: v for k, v in payload.items() if k not in _NEVER_KEPT},
        "updated_at": now,
    }
    if event is not None:
        fields.update(last_event_id=event.id, last_event_type=event.type)
    await PartnerGatewayObject.get_pymongo_collection().update_one(
        {"_id": str(payload["id"])},
        {
            "$set": fields,
            "$setOnInsert": {
                "object": str(payload.get("object", "")),
                "partner_id": transaction.partner_id,
                "transaction_id": transaction.id,
                "created_at": now,
            },
        },
        upsert=True,
        session=session,
    )


async def transaction_for(obj: Mapping[str, Any], intent_id: str | None) -> PartnerTransaction:
    """The partner transaction a gateway object is about (by our id in its metadata, else
    by its payment intent's id); NotReady if there is none yet."""
    named = partner_transaction_id(obj)
    found = (
        await PartnerTransaction.get(PydanticObjectId(named))
        if named and ObjectId.is_valid(named)
        else None
    )
    if found is None and intent_id:
        found = await PartnerTransaction.find_one({"payment_intent_id": intent_id})
    if found is None:
        raise NotReady(f"no partner transaction for {obj.get('object')} {obj.get('id')} yet")
    return found


async def reload(unit: UnitOfWork, transaction: PartnerTransaction) -> PartnerTransaction:
    """The transaction as the caller's transaction sees it (they are never deleted)."""
    current = await PartnerTransaction.get(transaction.id, session=unit.session)
    assert current is not None
    return current


async def wallet_of(unit: UnitOfWork, transaction: PartnerTransaction) -> PartnerWallet:
    wallet = await PartnerWallet.get(wallet_id_of(transaction), session=unit.session)
    assert wallet is not None, "wallets are never deleted"
    return wallet


async def balance_of(unit: UnitOfWork, wallet: PartnerWallet) -> int:
    """The wallet's balance as the caller's transaction sees it."""
    assert wallet.id is not None
    return (await ledger.balance(partner_wallet(wallet.id), wallet.currency, unit.session)).amount
