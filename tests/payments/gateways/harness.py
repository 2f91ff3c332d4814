"""One contract, two gateways: for each, how a test plays the payer on Stripe's payment
page, the provider on Stripe's onboarding and identity pages, and hears the webhooks."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Protocol

import httpx

from integrations.payments.gateway import GatewayEvent, PaymentGateway, PaymentIntent
from integrations.payments.sandbox import Outcome, SandboxGateway
from integrations.payments.stripe_gateway import StripeGateway
from tests.payments.gateways.stripe_stub import StripeStub

SECRET_KEY = "sk_test_gigql"
WEBHOOK_SECRET = "whsec_test_gigql"

# Stripe's (and localstripe's) test payment methods; localstripe has no named 3-D Secure
# one, so that card is made from Stripe's 3-D Secure test number.
PAYMENT_METHODS = {"succeeded": "pm_card_visa", "declined": "pm_card_chargeCustomerFail"}
THREE_D_SECURE_CARD = "4000002500003155"


class Harness(Protocol):
    @property
    def gateway(self) -> PaymentGateway: ...

    async def pay(self, intent: PaymentIntent, outcome: Outcome = "succeeded") -> None: ...

    async def authenticate(self, intent: PaymentIntent, ok: bool) -> None: ...

    async def complete_onboarding(self, account_id: str) -> None: ...

    async def verify_identity(self, session_id: str, ok: bool) -> None: ...

    async def event(self, event_type: str, object_id: str) -> GatewayEvent:
        """The webhook for this change, once it arrives, parsed by the gateway."""
        ...


def _about(event_type: str, object_id: str) -> Callable[[dict[str, object]], bool]:
    def matches(event: dict[str, object]) -> bool:
        data = event["data"]
        assert isinstance(data, dict)
        return event["type"] == event_type and data["object"]["id"] == object_id

    return matches


class StripeHarness:
    def __init__(self, gateway: StripeGateway, stub: StripeStub) -> None:
        self.gateway = gateway
        self._stub = stub

    def _payer(self) -> httpx.AsyncClient:
        # Stripe.js would use the publishable key and the client secret; localstripe
        # takes the secret key for the same calls.
        return httpx.AsyncClient(
            base_url=self._stub.url, headers={"Authorization": f"Bearer {SECRET_KEY}"}
        )

    async def pay(self, intent: PaymentIntent, outcome: Outcome = "succeeded") -> None:
        async with self._payer() as http:
            if outcome == "requires_action":
                card = {"number": THREE_D_SECURE_CARD, "exp_month": "12", "exp_year": "2030"}
                made = await http.post(
                    "/v1/payment_methods",
                    data={"type": "card", "card[cvc]": "123"}
                    | {f"card[{key}]": value for key, value in card.items()},
                )
                method = made.raise_for_status().json()["id"]
            else:
                method = PAYMENT_METHODS[outcome]
            chosen = await http.post(
                f"/v1/payment_intents/{intent.id}", data={"payment_method": method}
            )
            chosen.raise_for_status()
            confirmed = await http.post(f"/v1/payment_intents/{intent.id}/confirm")
            assert confirmed.status_code == (402 if outcome == "declined" else 200), confirmed.text

    async def authenticate(self, intent: PaymentIntent, ok: bool) -> None:
        # localstripe's stand-in for the card issuer's 3-D Secure page.
        async with self._payer() as http:
            answered = await http.post(
                f"/v1/payment_intents/{intent.id}/_authenticate",
                data={"client_secret": intent.client_secret or "", "success": str(ok).lower()},
            )
            answered.raise_for_status()

    async def complete_onboarding(self, account_id: str) -> None:
        self._stub.complete_onboarding(account_id)

    async def verify_identity(self, session_id: str, ok: bool) -> None:
        self._stub.verify_identity(session_id, ok)

    async def event(self, event_type: str, object_id: str) -> GatewayEvent:
        body = await self._stub.webhook(_about(event_type, object_id))
        return self.gateway.parse_event(body, self._stub.signature_of(body))


class SandboxHarness:
    def __init__(self, gateway: SandboxGateway, deliveries: list[tuple[bytes, str]]) -> None:
        self.gateway = gateway
        self._deliveries = deliveries

    async def pay(self, intent: PaymentIntent, outcome: Outcome = "succeeded") -> None:
        await self.gateway.confirm(intent.id, outcome)

    async def authenticate(self, intent: PaymentIntent, ok: bool) -> None:
        await self.gateway.authenticate(intent.id, ok)

    async def complete_onboarding(self, account_id: str) -> None:
        await self.gateway.complete_onboarding(account_id)

    async def verify_identity(self, session_id: str, ok: bool) -> None:
        await self.gateway.verify_identity(session_id, ok)

    async def event(self, event_type: str, object_id: str) -> GatewayEvent:
        await self.gateway.drain()
        matches = _about(event_type, object_id)
        body, signature = next(
            (body, signature) for body, signature in self._deliveries if matches(json.loads(body))
        )
        return self.gateway.parse_event(body, signature)


def new_key(label: str) -> str:
    """An idempotency key no other test uses (the stub and localstripe live all session)."""
    return f"{label}-{secrets.token_hex(8)}"
