"""Card credits that end without a payment: cancelled by the partner, expired, or
refused by the gateway; and the retry job that makes their intents moving on past the
ones the gateway keeps refusing."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from typing import Any

from documents.clock import utcnow
from documents.partners.api_keys import ApiScope
from documents.partners.transactions import (
    PartnerTransaction,
    TransactionKind,
    TransactionStatus,
)
from documents.partners.wallets import PartnerWallet
from resolvers.partners.gateway.cancellations import expire_pending_credits
from resolvers.partners.gateway.credits import retry_missing_intents
from resolvers.partners.idempotency import request_digest
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient, error_codes
from tests.support.partners.money import (
    TRANSACTION,
    balance,
    credit,
    events_of,
    pay_credit,
    stored_transaction,
)
from tests.support.partners.partners import PartnerKey, approved_partner, wallet_document
from tests.support.payments.escrow import assert_ledger_clean, sandbox


async def _cancel(client: GraphQLClient, partner: PartnerKey, transaction_id: str) -> Any:
    return await client.mutate(
        "cancelCredit", {"transactionId": transaction_id}, TRANSACTION, token=partner.key
    )


async def _orphan(partner: PartnerKey, wallet: PartnerWallet, age: timedelta) -> PartnerTransaction:
    """A pending credit stored `age` ago whose intent was never made (a crash)."""
    made = utcnow() - age
    orphan = PartnerTransaction(
        partner_id=partner.id,
        idempotency_key=f"orphan-{secrets.token_hex(4)}",
        request_hash=request_digest("credit", orphan=secrets.token_hex(4)),
        kind=TransactionKind.CREDIT,
        status=TransactionStatus.PENDING,
        amount=3_000,
        fee=87,
        currency="USD",
        to_wallet_id=wallet.id,
        created_at=made,
        updated_at=made,
    )
    await orphan.insert()
    return orphan


async def _refused_by_the_gateway(runtime: Runtime, orphan: PartnerTransaction) -> None:
    """The orphan's intent key used at the gateway for another request: the gateway
    refuses its intent for good (an idempotency conflict is no outage)."""
    await sandbox(runtime).create_payment_intent(
        amount=100,
        currency="usd",
        transfer_group="elsewhere",
        metadata={},
        idempotency_key=f"partner_txn:{orphan.id}:intent",
    )


async def test_a_partner_cancels_a_pending_credit(client: GraphQLClient, runtime: Runtime) -> None:
    partner = await approved_partner(endpoint=True)
    wallet = await wallet_document(partner)
    made = await credit(client, partner, wallet, 5_000)
    transaction_id = made["transaction"]["id"]
    other = await approved_partner("Other Bank", endpoint=True)
    reader = await approved_partner("Reader", scopes=(ApiScope.READ_WALLETS,))

    assert [
        (e["field"], e["code"]) for e in (await _cancel(client, other, transaction_id))["errors"]
    ] == [("transactionId", "NOT_FOUND")]
    assert error_codes(await _cancel(client, reader, transaction_id)) == ["FORBIDDEN"]
    canceled = await _cancel(client, partner, transaction_id)

    assert canceled["errors"] == [], canceled
    assert canceled["transaction"]["status"] == "FAILED"
    assert canceled["transaction"]["failureCode"] == "canceled"
    gateway = sandbox(runtime)
    intent = await gateway.retrieve_payment_intent(made["transaction"]["paymentIntentId"])
    assert intent.status == "canceled"
    await gateway.drain()  # its payment_intent.canceled changes nothing more
    stored = await stored_transaction(transaction_id)
    assert (stored.status, stored.failure_code) == (TransactionStatus.FAILED, "canceled")
    assert await events_of(wallet) == ["transaction.failed"]
    assert error_codes(await _cancel(client, partner, transaction_id)) == ["INVALID_STATE"]
    assert error_codes(await pay_credit(client, partner, transaction_id)) == ["INVALID_STATE"]
    assert await balance(wallet) == 0


async def test_a_credit_paid_before_the_cancel_is_not_cancelled(
    client: GraphQLClient, runtime: Runtime
) -> None:
    """The gateway decides between the two: the payer paid (its event not handled yet),
    so the cancel is refused and the payment credits the wallet."""
    partner = await approved_partner(endpoint=True)
    wallet = await wallet_document(partner)
    made = await credit(client, partner, wallet, 5_000)
    gateway = sandbox(runtime)
    await gateway.confirm(made["transaction"]["paymentIntentId"])

    late = await _cancel(client, partner, made["transaction"]["id"])

    assert error_codes(late) == ["INVALID_STATE"]
    await gateway.drain()
    paid = await stored_transaction(made["transaction"]["id"])
    assert paid.status is TransactionStatus.COMPLETED and paid.failure_code is None
    assert await balance(wallet) == 5_000 - 145
    assert await events_of(wallet) == ["wallet.funds_added", "transaction.completed"]
    await assert_ledger_clean()


async def test_pending_credits_expire_once_however_many_instances_look(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner(endpoint=True)
    wallet = await wallet_document(partner)
    old = await credit(client, partner, wallet, 5_000)
    fresh = await credit(client, partner, wallet, 6_000)
    expiry = runtime.services.settings.partner_credit_expiry
    without_intent = await _orphan(partner, wallet, expiry + timedelta(minutes=1))
    await PartnerTransaction.get_pymongo_collection().update_one(
        {"_id": (await stored_transaction(old["transaction"]["id"])).id},
        {"$set": {"created_at": utcnow() - expiry - timedelta(minutes=1)}},
    )

    runs = await asyncio.gather(*(expire_pending_credits(runtime.services) for _ in range(3)))

    assert sum(runs) == 2
    expired = await stored_transaction(old["transaction"]["id"])
    assert (expired.status, expired.failure_code) == (TransactionStatus.FAILED, "expired")
    gateway = sandbox(runtime)
    assert expired.payment_intent_id is not None
    assert (await gateway.retrieve_payment_intent(expired.payment_intent_id)).status == "canceled"
    # A credit whose intent was never made gets it only to cancel it: none is left payable.
    orphan = await PartnerTransaction.get(without_intent.id)
    assert orphan is not None and orphan.status is TransactionStatus.FAILED
    assert orphan.payment_intent_id is not None
    assert (await gateway.retrieve_payment_intent(orphan.payment_intent_id)).status == "canceled"
    still = await stored_transaction(fresh["transaction"]["id"])
    assert still.status is TransactionStatus.PENDING
    await gateway.drain()
    assert await events_of(wallet) == ["transaction.failed", "transaction.failed"]
    assert await expire_pending_credits(runtime.services) == 0


async def test_a_credit_whose_intent_the_gateway_refuses_fails(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner(endpoint=True)
    wallet = await wallet_document(partner)
    orphan = await _orphan(partner, wallet, timedelta(minutes=5))
    await _refused_by_the_gateway(runtime, orphan)

    assert await retry_missing_intents(runtime.services, older_than=timedelta(0)) == 1

    failed = await PartnerTransaction.get(orphan.id)
    assert failed is not None and failed.status is TransactionStatus.FAILED
    assert failed.failure_code == "intent_refused" and failed.payment_intent_id is None
    assert await events_of(wallet) == ["transaction.failed"]
    assert await retry_missing_intents(runtime.services, older_than=timedelta(0)) == 0


async def test_credits_the_gateway_keeps_refusing_do_not_starve_the_others(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner(endpoint=True)
    wallet = await wallet_document(partner)
    stuck = [await _orphan(partner, wallet, timedelta(hours=3 - i)) for i in range(3)]
    for orphan in stuck:
        await _refused_by_the_gateway(runtime, orphan)
    healthy = await _orphan(partner, wallet, timedelta(hours=1))

    for _ in range(2):
        await retry_missing_intents(runtime.services, older_than=timedelta(0), limit=2)

    repaired = await PartnerTransaction.get(healthy.id)
    assert repaired is not None and repaired.payment_intent_id is not None
    assert repaired.status is TransactionStatus.PENDING


async def test_instances_running_the_retry_job_at_once_each_take_other_credits(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner(endpoint=True)
    wallet = await wallet_document(partner)
    orphans = [await _orphan(partner, wallet, timedelta(minutes=5)) for _ in range(4)]

    runs = await asyncio.gather(
        *(retry_missing_intents(runtime.services, older_than=timedelta(0)) for _ in range(3))
    )

    assert sum(runs) == len(orphans)
    made = await PartnerTransaction.find({"payment_intent_id": {"$ne": None}}).count()
    assert made == len(orphans)
