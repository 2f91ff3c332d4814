"""Chargebacks on partner card credits and refunds made at the gateway: the money goes
back to the card, the wallet gives back what it still holds of it, and the platform
bears the rest (to collect from the partner)."""

from __future__ import annotations

import secrets

from documents.partners.transactions import DisputeStatus
from documents.partners.wallets import PartnerWallet, WalletStatus
from documents.payments.webhooks import WebhookStatus
from resolvers.payments.reconcile.against_gateway import reconcile
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient
from tests.support.partners.money import (
    balance,
    events_of,
    funded,
    stored_transaction,
    wallet_gid,
)
from tests.support.partners.partners import approved_partner, wallet_document
from tests.support.partners.wallets import transfer_money
from tests.support.payments.escrow import assert_ledger_clean, sandbox
from tests.support.payments.escrow import balance as account_balance
from tests.support.payments.reconcile import next_second, until_now
from tests.support.payments.webhooks import (
    chargeback_object,
    received,
    stored,
    stripe_event,
)

DISPUTE = "dispute { id status amount { amount } held { amount } }"


async def _dispute(
    runtime: Runtime,
    event_type: str,
    intent_id: str,
    amount: int,
    dispute_id: str,
    status: str = "needs_response",
    currency: str = "USD",
) -> WebhookStatus:
    dispute = chargeback_object(
        dispute_id,
        charge=f"ch_{secrets.token_hex(6)}",
        payment_intent=intent_id,
        amount=amount,
        currency=currency,
        status=status,
    )
    body = stripe_event(event_type, dispute)
    return (await stored(await received(runtime.services, body))).status


async def test_a_won_chargeback_gives_the_wallet_back_what_it_took(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner(endpoint=True)
    wallet = await wallet_document(partner)
    credit = await funded(client, partner, wallet, 10_000)  # 9,710 after the 2.9 % fee
    intent = (await stored_transaction(credit["id"])).payment_intent_id
    assert intent is not None

    opened = await _dispute(runtime, "charge.dispute.created", intent, 10_000, "dp_won")
    assert opened is WebhookStatus.PROCESSED
    assert await balance(wallet) == 0  # all it held of the payment, taken back
    disputed = await stored_transaction(credit["id"])
    assert disputed.dispute is not None
    assert (disputed.dispute.amount, disputed.dispute.held) == (10_000, 9_710)
    assert disputed.dispute.status is DisputeStatus.OPEN
    assert await account_balance(f"partner_chargeback:{disputed.id}", "USD") == -290
    # Redelivered: nothing moves again.
    await _dispute(runtime, "charge.dispute.created", intent, 10_000, "dp_won")
    assert await balance(wallet) == 0

    closed = await _dispute(runtime, "charge.dispute.closed", intent, 10_000, "dp_won", "won")
    assert closed is WebhookStatus.PROCESSED
    assert await balance(wallet) == 9_710
    assert await account_balance(f"partner_chargeback:{disputed.id}", "USD") == 0
    decided = await stored_transaction(credit["id"])
    assert decided.dispute is not None and decided.dispute.status is DisputeStatus.WON
    assert await events_of(wallet) == [
        "wallet.funds_added",
        "transaction.completed",
        "transaction.disputed",
        "transaction.dispute_closed",
    ]
    shown = await client.data(
        f"query($id: ID!) {{ transaction(id: $id) {{ {DISPUTE} }} }}",
        {"id": credit["id"]},
        token=partner.key,
    )
    assert shown["transaction"]["dispute"] == {
        "id": "dp_won",
        "status": "WON",
        "amount": {"amount": 10_000},
        "held": {"amount": 9_710},
    }
    await assert_ledger_clean()


async def test_a_lost_chargeback_the_wallet_could_not_cover_is_borne_by_the_platform(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner()
    wallet = await wallet_document(partner)
    other = await wallet_document(partner)
    credit = await funded(client, partner, wallet, 10_000)
    # Most of it was spent before the bank took it back.
    moved = await transfer_money(
        client, partner.key, wallet_gid(wallet), wallet_gid(other), 6_000, "spent"
    )
    assert moved["errors"] == [], moved
    intent = (await stored_transaction(credit["id"])).payment_intent_id
    assert intent is not None
    revenue_before = await account_balance("platform_revenue", "USD")

    await _dispute(runtime, "charge.dispute.created", intent, 10_000, "dp_lost")
    assert await balance(wallet) == 0  # the 3,710 it still held
    assert await balance(other) == 6_000  # another user's money is not touched
    closed = await _dispute(runtime, "charge.dispute.closed", intent, 10_000, "dp_lost", "lost")
    assert closed is WebhookStatus.PROCESSED
    transaction = await stored_transaction(credit["id"])
    assert transaction.dispute is not None and transaction.dispute.status is DisputeStatus.LOST
    assert await account_balance(f"partner_chargeback:{transaction.id}", "USD") == 0
    # The 6,290 the wallet could not cover: the platform's loss, to collect from the partner.
    assert await account_balance("platform_revenue", "USD") == revenue_before - 6_290
    await assert_ledger_clean()


async def test_a_chargeback_that_contradicts_the_credit_is_rejected(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner()
    wallet = await wallet_document(partner)
    credit = await funded(client, partner, wallet, 10_000)
    intent = (await stored_transaction(credit["id"])).payment_intent_id
    assert intent is not None

    too_much = await _dispute(runtime, "charge.dispute.created", intent, 10_001, "dp_1")
    other_currency = await _dispute(
        runtime, "charge.dispute.created", intent, 5_000, "dp_2", currency="EUR"
    )
    assert (too_much, other_currency) == (WebhookStatus.REJECTED, WebhookStatus.REJECTED)
    assert await balance(wallet) == 9_710
    assert (await stored_transaction(credit["id"])).dispute is None

    # A closing before its opening waits for it.
    early = await _dispute(runtime, "charge.dispute.closed", intent, 5_000, "dp_3", "won")
    assert early is WebhookStatus.FAILED
    assert await balance(wallet) == 9_710


async def test_a_chargeback_won_after_the_wallet_closed_reopens_it_frozen(
    client: GraphQLClient, runtime: Runtime
) -> None:
    """The chargeback emptied the wallet and the partner closed it; the chargeback is
    won and the money comes back: a closed wallet holds nothing, so it is reopened."""
    partner = await approved_partner(endpoint=True)
    wallet = await wallet_document(partner)
    credit = await funded(client, partner, wallet, 10_000)
    intent = (await stored_transaction(credit["id"])).payment_intent_id
    assert intent is not None
    await _dispute(runtime, "charge.dispute.created", intent, 10_000, "dp_closed")
    closed = await client.mutate(
        "closeWallet", {"walletId": wallet_gid(wallet)}, "wallet { status }", token=partner.key
    )
    assert closed["wallet"] == {"status": "CLOSED"}, closed

    won = await _dispute(runtime, "charge.dispute.closed", intent, 10_000, "dp_closed", "won")

    assert won is WebhookStatus.PROCESSED
    reopened = await PartnerWallet.get(wallet.id)
    assert reopened is not None and reopened.status is WalletStatus.FROZEN
    assert await balance(wallet) == 9_710
    assert (await events_of(wallet))[-1] == "transaction.dispute_closed"
    await assert_ledger_clean()


async def _refunded_at_gateway(
    runtime: Runtime, intent_id: str, amount_refunded: int, currency: str = "usd"
) -> WebhookStatus:
    charge = {
        "id": f"ch_{secrets.token_hex(6)}",
        "object": "charge",
        "payment_intent": intent_id,
        "amount": 10_000,
        "amount_refunded": amount_refunded,
        "currency": currency,
        "refunded": amount_refunded == 10_000,
        "metadata": {},
    }
    return (
        await stored(await received(runtime.services, stripe_event("charge.refunded", charge)))
    ).status


async def test_a_refund_made_at_the_gateway_takes_the_money_back_from_the_wallet(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner()
    wallet = await wallet_document(partner)
    credit = await funded(client, partner, wallet, 10_000)  # 9,710 after the 2.9 % fee
    intent = (await stored_transaction(credit["id"])).payment_intent_id
    assert intent is not None
    revenue_before = await account_balance("platform_revenue", "USD")

    assert await _refunded_at_gateway(runtime, intent, 3_000) is WebhookStatus.PROCESSED
    assert await balance(wallet) == 6_710
    # Redelivered, nothing moves again; a contradicting one is rejected.
    await _refunded_at_gateway(runtime, intent, 3_000)
    assert await _refunded_at_gateway(runtime, intent, 10_001) is WebhookStatus.REJECTED
    assert await balance(wallet) == 6_710

    # Then the rest: the wallet gives what it holds, the platform the 290 it kept as fee.
    assert await _refunded_at_gateway(runtime, intent, 10_000) is WebhookStatus.PROCESSED
    assert await balance(wallet) == 0
    assert await account_balance("platform_revenue", "USD") == revenue_before - 290
    assert (await stored_transaction(credit["id"])).refunded == 10_000
    assert await events_of(wallet) == [
        "wallet.funds_added",
        "transaction.completed",
        "transaction.refunded",
        "transaction.refunded",
    ]
    await assert_ledger_clean()


async def test_a_refund_made_in_the_sandboxs_dashboard_reconciles(
    client: GraphQLClient, runtime: Runtime
) -> None:
    """As an operator refunding in Stripe's dashboard: no metadata of ours, its events
    through the inbox; the wallet gives it back and reconcile matches it."""
    start = await next_second()
    partner = await approved_partner()
    wallet = await wallet_document(partner)
    credit = await funded(client, partner, wallet, 10_000)
    intent = (await stored_transaction(credit["id"])).payment_intent_id
    assert intent is not None
    gateway = sandbox(runtime)
    await gateway.refund(intent, amount=2_000, metadata={}, idempotency_key="dashboard-1")
    await gateway.drain()
    assert await balance(wallet) == 7_710
    assert (await stored_transaction(credit["id"])).refunded == 2_000
    report = await reconcile(gateway, start, until_now())
    assert report.ok, report
    await assert_ledger_clean()
