"""The gateway the settings ask for: Stripe with a secret key, else the sandbox."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from pymongo.asynchronous.database import AsyncDatabase

from integrations.payments.gateway import PaymentGateway
from integrations.payments.sandbox import Deliver, SandboxGateway
from integrations.payments.stripe_gateway import StripeGateway

if TYPE_CHECKING:
    from documents.settings import Settings


def uses_sandbox(settings: Settings) -> bool:
    """Whether payments run on the sandbox gateway (no Stripe key is configured)."""
    return not settings.stripe_secret_key


def gateway_from_settings(
    settings: Settings, deliver: Deliver, database: AsyncDatabase[dict[str, Any]]
) -> PaymentGateway:
    """`deliver` receives the sandbox's events as webhook bodies and signatures (Stripe
    posts its own to the webhook route); the sandbox keeps its state in `database`. With
    tracing on, each of its calls is a span (integrations/payments/traced.py)."""
    gateway = _gateway(settings, deliver, database)
    if settings.tracing_enabled:
        from integrations.payments.traced import traced

        return traced(gateway)
    return gateway


def _gateway(
    settings: Settings, deliver: Deliver, database: AsyncDatabase[dict[str, Any]]
) -> PaymentGateway:
    webhook_secret = (
        settings.stripe_webhook_secret.get_secret_value()
        if settings.stripe_webhook_secret
        else None
    )
    if settings.stripe_secret_key:
        if webhook_secret is None:  # the settings refuse this; kept for the type checker
            raise ValueError("STRIPE_WEBHOOK_SECRET must be set along with STRIPE_SECRET_KEY")
        return StripeGateway(
            settings.stripe_secret_key.get_secret_value(),
            webhook_secret,
            api_base=settings.stripe_api_base,
        )
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    # The sandbox signs and verifies its own events; any secret will do.
    return SandboxGateway(
        webhook_secret or f"whsec_{secrets.token_hex(24)}",
        deliver,
        database,
        payout_delay=settings.sandbox_payout_delay,
        pages_origin=f"http://{host}:{settings.port}",
    )
