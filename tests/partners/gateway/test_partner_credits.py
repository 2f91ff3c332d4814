"""Card credits into partner wallets: over HTTP with a partner key, paid in the sandbox
gateway, whose events go through the real webhook inbox."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from documents.partners.api_keys import ApiScope
from documents.partners.transactions import (
    PartnerGatewayObject,
    PartnerTransaction,
    TransactionKind,
    TransactionStatus,
)
from documents.partners.wallets import WalletEntry, WalletStatus
from documents.partners.webhooks import PartnerWebhookDelivery
from documents.payments.ledger import LedgerTransaction, MovementKind
from documents.payments.ledger_accounts import platform_revenue
from documents.payments.webhooks import WebhookEvent
from resolvers.partners.gateway.credits import retry_missing_intents
from resolvers.partners.idempotency import request_digest
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient, error_codes
from tests.support.partners.money import (
    balance,
    credit,
    events_of,
    funded,
    move_input,
    pay_credit,
    set_wallet_status,
    stored_transaction,
)
from tests.support.partners.partners import approved_partner, wallet_document
from tests.support.payments.escrow import assert_ledger_clean, sandbox
from tests.support.payments.escrow import balance as account_balance
from tests.support.payments.ledger import ledger_counts
from tests.support.payments.webhooks import (
    delivered,
    post_event,
    rejected_in_turn,
    signature,
    webhook_secret,
)


async def test_a_card_credit_funds_the_wallet_less_the_fee(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner(credit_bp=290, endpoint=True)
    wallet = await wallet_document(partner)

    made = await credit(
        client, partner, wallet, 10_000, description="Week 3", metadata={"ref": "rosca-w3"}
    )

    assert made["errors"] == []
    pending = made["transaction"]
    assert (pending["kind"], pending["status"]) == ("CREDIT", "PENDING")
    assert pending["fee"] == {"amount": 290, "currency": "USD"}
    intent_id = pending["paymentIntentId"]
    assert made["clientSecret"].startswith(f"{intent_id}_secret_")
    intent = await sandbox(runtime).retrieve_payment_intent(intent_id)
    assert (intent.amount, intent.currency, intent.status) == (
        10_000,
        "USD",
        "requires_payment_method",
    )
    assert intent.metadata == {
        "partner_transaction_id": str((await stored_transaction(pending["id"])).id),
        "partner_wallet_id": str(wallet.id),
        "partner_id": str(partner.id),
        "external_user_id": wallet.external_user_id,
        "external_wallet_id": wallet.external_wallet_id,
        "partner_reference": '{"ref":"rosca-w3"}',
    }
    assert intent.transfer_group == f"partner_txn:{intent.metadata['partner_transaction_id']}"

    paid = await pay_credit(client, partner, pending["id"])

    assert paid["errors"] == []
    assert paid["transaction"]["status"] == "COMPLETED"
    assert paid["transaction"]["fee"]["amount"] == 290
    assert await balance(wallet) == 9_710
    assert await account_balance(platform_revenue(), "USD") == 290
    entries = await WalletEntry.find({"wallet_id": wallet.id}).sort("created_at", "_id").to_list()
    assert [(e.kind, e.amount, e.balance_after) for e in entries] == [
        (MovementKind.PARTNER_CREDIT.value, 10_000, 10_000),
        (MovementKind.PARTNER_FEE.value, -290, 9_710),
    ]
    assert await events_of(wallet) == ["wallet.funds_added", "transaction.completed"]
    assert await PartnerWebhookDelivery.find({"wallet_id": wallet.id}).count() == 2
    kept = await PartnerGatewayObject.get(intent_id)
    assert kept is not None and kept.object == "payment_intent"
    assert kept.last_event_type == "payment_intent.succeeded"
    assert kept.payload["status"] == "succeeded" and "client_secret" not in kept.payload
    assert kept.transaction_id == (await stored_transaction(pending["id"])).id
    await assert_ledger_clean()


async def test_a_declined_card_keeps_the_credit_pending_for_another(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner(endpoint=True)
    wallet = await wallet_document(partner)
    made = await credit(client, partner, wallet, 5_000)
    transaction_id = made["transaction"]["id"]

    declined = await pay_credit(client, partner, transaction_id, "DECLINED")

    assert declined["transaction"]["status"] == "PENDING"
    assert declined["transaction"]["failureCode"] == "card_declined"
    assert await balance(wallet) == 0
    paid = await pay_credit(client, partner, transaction_id, "SUCCEEDED")
    assert paid["transaction"]["status"] == "COMPLETED"
    assert paid["transaction"]["failureCode"] is None
    assert paid["transaction"]["paymentIntentId"] == made["transaction"]["paymentIntentId"]
    assert await balance(wallet) == 5_000 - 145
    again = await pay_credit(client, partner, transaction_id)
    assert error_codes(again) == ["INVALID_STATE"]


async def test_a_redelivered_or_repeated_event_changes_nothing(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner(endpoint=True)
    wallet = await wallet_document(partner)
    await funded(client, partner, wallet, 7_000)
    (succeeded,) = await WebhookEvent.find({"type": "payment_intent.succeeded"}).to_list()
    counts = await ledger_counts()
    events = await events_of(wallet)

    # The same event again (Stripe redelivers), then its object under a new event id.
    body = succeeded.payload.encode()
    again = await post_event(client.http, body, signature(body, webhook_secret(runtime.services)))
    assert again.status_code == 200
    await delivered(
        client, runtime.services, "payment_intent.succeeded", json.loads(body)["data"]["object"]
    )

    assert await ledger_counts() == counts
    assert await events_of(wallet) == events
    assert await balance(wallet) == 7_000 - 203
    await assert_ledger_clean()


async def test_an_event_that_contradicts_the_credit_is_rejected(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner(endpoint=True)
    wallet = await wallet_document(partner)
    other_wallet = await wallet_document(partner)
    made = await credit(client, partner, wallet, 4_000)
    await pay_credit(client, partner, made["transaction"]["id"], "DECLINED")
    (failed,) = await WebhookEvent.find({"type": "payment_intent.payment_failed"}).to_list()
    genuine = {
        **json.loads(failed.payload)["data"]["object"],
        "status": "succeeded",
        "amount_received": 4_000,
        "last_payment_error": None,
    }
    metadata = genuine["metadata"]

    await rejected_in_turn(
        client,
        runtime.services,
        "payment_intent.succeeded",
        genuine,
        {
            "amount": ({"amount": 40_000, "amount_received": 4_000}, None, ["amount"]),
            "currency": ({"currency": "eur"}, None, ["currency"]),
            "account": ({}, "acct_elsewhere", ["account"]),
            "received": ({"amount_received": 1}, None, ["amount_received"]),
            "intent": ({"id": "pi_another"}, None, ["payment_intent"]),
            "wallet": (
                {"metadata": {**metadata, "partner_wallet_id": str(other_wallet.id)}},
                None,
                ["metadata.partner_wallet_id"],
            ),
        },
    )

    transaction = await stored_transaction(made["transaction"]["id"])
    assert transaction.status is TransactionStatus.PENDING
    assert await balance(wallet) == 0
    assert await LedgerTransaction.find_all().count() == 0
    assert await events_of(wallet) == []


async def test_a_payment_for_a_wallet_frozen_meanwhile_is_refunded(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner(endpoint=True)
    wallet = await wallet_document(partner)
    made = await credit(client, partner, wallet, 6_000)
    await set_wallet_status(wallet, WalletStatus.FROZEN)

    paid = await pay_credit(client, partner, made["transaction"]["id"])

    assert paid["transaction"]["status"] == "FAILED"
    assert paid["transaction"]["failureCode"] == "WALLET_FROZEN"
    assert await balance(wallet) == 0
    assert await LedgerTransaction.find_all().count() == 0
    intent_id = made["transaction"]["paymentIntentId"]
    now = datetime.now(UTC)
    listed = sandbox(runtime).list_refunds(
        now - timedelta(minutes=5), now + timedelta(minutes=5), payment_intent_id=intent_id
    )
    refunds = [refund async for refund in listed]
    assert [(r.amount, r.currency) for r in refunds] == [(6_000, "USD")]
    kept = await PartnerGatewayObject.find({"object": "refund"}).to_list()
    assert [k.id for k in kept] == [refunds[0].id]
    assert await events_of(wallet) == ["transaction.failed"]
    await assert_ledger_clean()


async def test_a_frozen_wallet_is_refused_at_once(client: GraphQLClient) -> None:
    partner = await approved_partner(endpoint=True)
    wallet = await wallet_document(partner)
    await set_wallet_status(wallet, WalletStatus.FROZEN)

    made = await credit(client, partner, wallet, 1_000)

    assert error_codes(made) == ["WALLET_FROZEN"]
    assert await PartnerTransaction.find_all().count() == 0


async def test_the_same_key_gives_the_same_credit_and_intent(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner(endpoint=True)
    wallet = await wallet_document(partner)

    answers = await asyncio.gather(
        *(credit(client, partner, wallet, 2_500, key="contribution-7") for _ in range(8))
    )

    assert all(a["errors"] == [] for a in answers), answers
    assert len({a["transaction"]["id"] for a in answers}) == 1
    assert len({a["transaction"]["paymentIntentId"] for a in answers}) == 1
    assert len({a["clientSecret"] for a in answers}) == 1
    assert await PartnerTransaction.find_all().count() == 1
    reused = await credit(client, partner, wallet, 2_600, key="contribution-7")
    assert error_codes(reused) == ["IDEMPOTENCY_KEY_REUSED"]
    assert await PartnerTransaction.find_all().count() == 1


async def test_bad_requests_are_refused_and_store_nothing(client: GraphQLClient) -> None:
    partner = await approved_partner(endpoint=True)
    wallet = await wallet_document(partner)
    other = await approved_partner("Other Bank", endpoint=True)
    theirs = await wallet_document(other)

    wrong_currency = {**move_input(wallet, 1_000), "amount": {"amount": 1_000, "currency": "EUR"}}
    cases = {
        "wrong currency": (wrong_currency, [("amount", "INVALID_INPUT")]),
        "nothing": (move_input(wallet, 0), [("amount", "INVALID_INPUT")]),
        "long metadata": (
            # Each value within the rules, but more than Stripe keeps in one value.
            move_input(wallet, 1_000, metadata={"a": "x" * 300, "b": "y" * 300}),
            [("metadata", "INVALID_INPUT")],
        ),
        # The rules debits and transfers follow (resolvers/partners/requests.py).
        "nested metadata": (
            move_input(wallet, 1_000, metadata={"week": {"n": 3}}),
            [("metadata.week", "INVALID_INPUT")],
        ),
        "operator key": (
            move_input(wallet, 1_000, metadata={"$where": "1"}),
            [("metadata", "INVALID_INPUT")],
        ),
        "control characters": (
            move_input(wallet, 1_000, description="Week\u202e 3"),
            [("description", "INVALID_INPUT")],
        ),
        "invisible description": (
            move_input(wallet, 1_000, description="\u200b\u200b"),
            [("description", "INVALID_INPUT")],
        ),
        "empty key": (move_input(wallet, 1_000, key=" "), [("idempotencyKey", "INVALID_INPUT")]),
        "another partner's wallet": (move_input(theirs, 1_000), [("walletId", "NOT_FOUND")]),
    }
    for name, (given, expected) in cases.items():
        payload = await client.mutate("creditWallet", given, "clientSecret", token=partner.key)
        assert [(e["field"], e["code"]) for e in payload["errors"]] == expected, name
    assert await PartnerTransaction.find_all().count() == 0

    reader = await approved_partner("Reader", scopes=(ApiScope.READ_WALLETS,), endpoint=True)
    own = await wallet_document(reader)
    refused = await credit(client, reader, own, 1_000)
    assert error_codes(refused) == ["FORBIDDEN"]


async def test_a_credit_under_the_minimum_charge_is_refused(client: GraphQLClient) -> None:
    """The gateway charges no less than its minimum (USD 0.50, GBP 0.30): a smaller
    credit could never be paid and would stay pending for good."""
    partner = await approved_partner(endpoint=True)
    wallet = await wallet_document(partner)
    pounds = await wallet_document(partner, currency="GBP")

    refused = [
        await credit(client, partner, wallet, 49),
        await credit(client, partner, pounds, 29),
    ]

    for payload in refused:
        assert [(e["field"], e["code"]) for e in payload["errors"]] == [
            ("amount", "INVALID_INPUT")
        ], payload
    assert await PartnerTransaction.find_all().count() == 0
    least = [await credit(client, partner, wallet, 50), await credit(client, partner, pounds, 30)]
    assert [p["transaction"]["status"] for p in least] == ["PENDING", "PENDING"]


async def test_another_partners_credit_cannot_be_paid(client: GraphQLClient) -> None:
    partner = await approved_partner(endpoint=True)
    wallet = await wallet_document(partner)
    made = await credit(client, partner, wallet, 1_000)
    other = await approved_partner("Other Bank", endpoint=True)

    refused = await pay_credit(client, other, made["transaction"]["id"])

    assert [(e["field"], e["code"]) for e in refused["errors"]] == [("transactionId", "NOT_FOUND")]
    assert (await stored_transaction(made["transaction"]["id"])).status is TransactionStatus.PENDING


async def test_a_credit_left_without_its_intent_gets_it_from_the_retry_job(
    client: GraphQLClient, runtime: Runtime
) -> None:
    """The process died between the commit and the gateway: the job makes the intent,
    with the transaction's key, and the credit can then be paid."""
    partner = await approved_partner(endpoint=True)
    wallet = await wallet_document(partner)
    orphan = PartnerTransaction(
        partner_id=partner.id,
        idempotency_key="crashed",
        request_hash=request_digest("credit", crashed=True),
        kind=TransactionKind.CREDIT,
        status=TransactionStatus.PENDING,
        amount=3_000,
        fee=87,
        currency="USD",
        to_wallet_id=wallet.id,
    )
    await orphan.insert()

    tried = await retry_missing_intents(runtime.services, older_than=timedelta(0))

    assert tried == 1
    repaired = await PartnerTransaction.get(orphan.id)
    assert repaired is not None and repaired.payment_intent_id is not None
    intent = await sandbox(runtime).retrieve_payment_intent(repaired.payment_intent_id)
    assert intent.metadata["partner_transaction_id"] == str(orphan.id)
    assert await retry_missing_intents(runtime.services, older_than=timedelta(0)) == 0
    await sandbox(runtime).confirm(intent.id)
    await sandbox(runtime).drain()
    assert await balance(wallet) == 3_000 - 87
