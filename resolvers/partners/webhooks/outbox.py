"""Recording the webhook events partners are owed, in the transaction of the change.

    await record_event(
        unit.session, wallet, PartnerEventType.TRANSACTION_COMPLETED,
        transaction=transaction, balance=new_balance,
    )

takes the wallet's next event number, stores the event and one delivery for each of the
partner's enabled endpoints, all through the caller's session: the event exists exactly
when the change committed (resolvers/partners/webhooks/sender.py sends them).
"""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.clock import utcnow
from documents.partners.transactions import PartnerTransaction
from documents.partners.wallets import PartnerWallet
from documents.partners.webhooks import (
    PartnerEventType,
    PartnerWebhookDelivery,
    PartnerWebhookEndpoint,
    PartnerWebhookEvent,
)
from resolvers.partners.ids import TRANSACTION_TYPE, WALLET_TYPE, global_id


def wallet_object(wallet: PartnerWallet, balance: int) -> dict[str, Any]:
    assert wallet.id is not None
    return {
        "id": global_id(WALLET_TYPE, wallet.id),
        "externalWalletId": wallet.external_wallet_id,
        "externalUserId": wallet.external_user_id,
        "currency": wallet.currency,
        "balance": balance,
        "status": wallet.status.value,
    }


def transaction_object(transaction: PartnerTransaction) -> dict[str, Any]:
    assert transaction.id is not None
    wallets = {"fromWalletId": transaction.from_wallet_id, "toWalletId": transaction.to_wallet_id}
    return {
        "id": global_id(TRANSACTION_TYPE, transaction.id),
        "idempotencyKey": transaction.idempotency_key,
        "kind": transaction.kind.value,
        "status": transaction.status.value,
        "amount": transaction.amount,
        "fee": transaction.fee,
        "currency": transaction.currency,
        "description": transaction.description,
        "metadata": transaction.metadata,
        **{
            name: global_id(WALLET_TYPE, oid) if oid is not None else None
            for name, oid in wallets.items()
        },
        "paymentIntentId": transaction.payment_intent_id,
        "payoutId": transaction.payout_id,
        "failureCode": transaction.failure_code,
        "refunded": transaction.refunded,
        "dispute": (
            {
                "status": transaction.dispute.status.value,
                "amount": transaction.dispute.amount,
                "held": transaction.dispute.held,
            }
            if transaction.dispute is not None
            else None
        ),
        "createdAt": transaction.created_at.isoformat(),
    }


async def record_event(
    session: AsyncClientSession,
    wallet: PartnerWallet,
    event_type: PartnerEventType,
    *,
    transaction: PartnerTransaction,
    balance: int,
) -> PartnerWebhookEvent:
    """The event `event_type` about `transaction` as `wallet` saw it (its balance after),
    and its deliveries, written through `session`."""
    numbered = await PartnerWallet.get_pymongo_collection().find_one_and_update(
        {"_id": wallet.id},
        {"$inc": {"event_sequence": 1}},
        projection={"event_sequence": 1},
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    assert numbered is not None, "the wallet of an event exists"
    assert wallet.id is not None
    event = PartnerWebhookEvent(
        partner_id=wallet.partner_id,
        type=event_type,
        wallet_id=wallet.id,
        sequence=int(numbered["event_sequence"]),
        data={
            "transaction": transaction_object(transaction),
            "wallet": wallet_object(wallet, balance),
        },
    )
    await event.insert(session=session)
    assert event.id is not None
    endpoints = PartnerWebhookEndpoint.find(
        {"partner_id": wallet.partner_id, "enabled": True}, session=session
    )
    now = utcnow()
    deliveries = [
        PartnerWebhookDelivery(
            partner_id=wallet.partner_id,
            endpoint_id=endpoint.id,
            event_id=event.id,
            event_type=event_type,
            wallet_id=wallet.id,
            sequence=event.sequence,
            next_attempt_at=now,
            created_at=now,
        )
        async for endpoint in endpoints
        if endpoint.id is not None
    ]
    if deliveries:
        await PartnerWebhookDelivery.insert_many(deliveries, session=session)
    return event
