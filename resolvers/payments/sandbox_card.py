"""Playing the payer's card in the sandbox gateway (development only), for an escrow's
payment (`sandboxPay`) and a partner's card credit (`sandboxPayCredit`) alike."""

from __future__ import annotations

from enum import Enum

from documents.errors import DomainError, ErrorCode
from integrations.payments.errors import InvalidRequest
from integrations.payments.gateway import PaymentIntent
from integrations.payments.sandbox import SandboxGateway
from resolvers.common.services import Services


class SandboxOutcome(Enum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    REQUIRES_ACTION = "requires_action"


def sandbox_gateway(services: Services) -> SandboxGateway:
    """The sandbox gateway; SANDBOX_ONLY when a real one is configured."""
    gateway = services.payments
    if not isinstance(gateway, SandboxGateway):
        raise DomainError(
            ErrorCode.SANDBOX_ONLY, "Only the sandbox gateway takes payments this way."
        )
    return gateway


async def play_card(
    gateway: SandboxGateway, intent: PaymentIntent, outcome: SandboxOutcome, field: str
) -> None:
    """Pay `intent` with the outcome asked for; on an intent that asks for authentication,
    SUCCEEDED passes it and DECLINED fails it. Returns once the webhooks it caused have
    been handled, so the caller reads the outcome."""
    try:
        if intent.status == "requires_action":
            await gateway.authenticate(intent.id, ok=outcome is SandboxOutcome.SUCCEEDED)
        else:
            await gateway.confirm(intent.id, outcome.value)
    except InvalidRequest as error:
        raise DomainError(ErrorCode.INVALID_STATE, str(error), field) from error
    await gateway.drain()
