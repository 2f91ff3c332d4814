"""A card credit on the Stripe adapter over HTTP (the Stripe stub in front of
localstripe): the app served with the Stripe gateway makes the PaymentIntent at
"Stripe", the payer pays there, and Stripe's signed webhook, posted to the app's
`/webhooks/stripe`, credits the wallet."""

from __future__ import annotations

import dataclasses

import httpx

from documents.partners.transactions import PartnerGatewayObject, TransactionStatus
from integrations.payments.stripe_gateway import StripeGateway
from server.app import create_app
from server.runtime import Runtime
from tests.conftest import serve_asgi
from tests.payments.gateways.conftest import localstripe_url, stripe_gateway, stripe_stub
from tests.payments.gateways.harness import StripeHarness
from tests.payments.gateways.stripe_stub import StripeStub
from tests.support.graphql_client import GraphQLClient, error_codes
from tests.support.partners.money import (
    balance,
    credit,
    events_of,
    pay_credit,
    stored_transaction,
)
from tests.support.partners.partners import approved_partner, wallet_document
from tests.support.payments.escrow import assert_ledger_clean
from tests.support.payments.webhooks import post_event

# The Stripe adapter's fixtures (localstripe, the stub in front of it, the gateway).
__all__ = ["localstripe_url", "stripe_gateway", "stripe_stub"]


async def test_a_card_credit_through_stripe(
    runtime: Runtime, stripe_gateway: StripeGateway, stripe_stub: StripeStub
) -> None:
    on_stripe = dataclasses.replace(
        runtime, services=dataclasses.replace(runtime.services, payments=stripe_gateway)
    )
    app = create_app(on_stripe.services.settings, on_stripe)
    partner = await approved_partner(endpoint=True)
    wallet = await wallet_document(partner)
    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        client = GraphQLClient(http)
        made = await credit(client, partner, wallet, 5_000, metadata={"week": 3})
        assert made["errors"] == [], made
        intent_id = made["transaction"]["paymentIntentId"]
        assert made["clientSecret"] and made["clientSecret"].startswith(intent_id)
        again = await credit(client, partner, wallet, 5_000, key="same", metadata={"week": 3})
        repeat = await credit(client, partner, wallet, 5_000, key="same", metadata={"week": 3})
        assert repeat["transaction"]["paymentIntentId"] == again["transaction"]["paymentIntentId"]
        sandbox_only = await pay_credit(client, partner, made["transaction"]["id"])
        assert error_codes(sandbox_only) == ["SANDBOX_ONLY"]

        intent = await stripe_gateway.retrieve_payment_intent(intent_id)
        assert intent.metadata["partner_wallet_id"] == str(wallet.id)
        assert intent.metadata["partner_reference"] == '{"week":3}'
        await StripeHarness(stripe_gateway, stripe_stub).pay(intent)
        body = await stripe_stub.webhook(
            lambda e: (
                e["type"] == "payment_intent.succeeded" and e["data"]["object"]["id"] == intent_id
            )
        )
        answer = await post_event(http, body, stripe_stub.signature_of(body))
        assert answer.status_code == 200, answer.text

    paid = await stored_transaction(made["transaction"]["id"])
    assert paid.status is TransactionStatus.COMPLETED
    assert await balance(wallet) == 5_000 - 145
    assert await events_of(wallet) == ["wallet.funds_added", "transaction.completed"]
    kept = await PartnerGatewayObject.get(intent_id)
    assert kept is not None and kept.payload["status"] == "succeeded"
    await assert_ledger_clean()
