"""Retrying a gateway step after its idempotency key may have been forgotten.

A step claimed but not recorded (the process died, or the gateway was down) is retried
with its first idempotency key, which returns what the first attempt made. Stripe keeps
a key for 24 hours only, though: a retry after that would make a second transfer, refund
or payout. So a step claimed longer ago than the `idempotency_window` setting is first
looked for at the gateway, by the metadata we gave it, and recorded if it was made; only
if it was not is it made again, under `late_key`, itself repeatable while it is kept.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from documents.clock import utcnow
from documents.payments.escrow import Escrow, EscrowRefund, ReleasePlan
from documents.payments.payouts import Withdrawal
from integrations.payments.gateway import PaymentGateway, Payout, Refund, Transfer
from resolvers.common.services import Services

log = logging.getLogger(__name__)

CLOCK_SKEW = timedelta(minutes=5)
"""Margin around the period searched, for the gateway's clock and ours."""


class _Tagged(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def metadata(self) -> Mapping[str, str]: ...


T = TypeVar("T", bound=_Tagged)


def is_late(services: Services, claimed_at: datetime) -> bool:
    """Whether the gateway may have forgotten the key of a step claimed at `claimed_at`."""
    return utcnow() - claimed_at > services.settings.idempotency_window


def late_key(key: str) -> str:
    """The key of a step made again once its first key may be forgotten."""
    return f"{key}:late"


async def made_transfer(
    gateway: PaymentGateway, escrow: Escrow, plan: ReleasePlan
) -> Transfer | None:
    """The transfer already made for the release `plan`, if any."""
    start, end = _since(plan.claimed_at)
    return await _first_tagged(
        gateway.list_transfers(start, end, transfer_group=escrow.gateway_group),
        {"escrow_id": str(escrow.id), "release_round": str(plan.round)},
        f"release {plan.round} of escrow {escrow.id}",
    )


async def made_refund(
    gateway: PaymentGateway, escrow: Escrow, refund: EscrowRefund
) -> Refund | None:
    """The gateway refund already made for the escrow's `refund`, if any."""
    assert escrow.payment_intent_id is not None
    start, end = _since(refund.at)
    return await _first_tagged(
        gateway.list_refunds(start, end, payment_intent_id=escrow.payment_intent_id),
        {"escrow_id": str(escrow.id), "refund_number": str(refund.number)},
        f"refund {refund.number} of escrow {escrow.id}",
    )


async def made_payout(gateway: PaymentGateway, withdrawal: Withdrawal) -> Payout | None:
    """The payout already made for the withdrawal, if any."""
    start, end = _since(withdrawal.requested_at)
    return await _first_tagged(
        gateway.list_payouts(withdrawal.account_id, start, end),
        {"withdrawal_id": str(withdrawal.id)},
        f"payout of withdrawal {withdrawal.id}",
    )


def _since(claimed_at: datetime) -> tuple[datetime, datetime]:
    return claimed_at - CLOCK_SKEW, utcnow() + CLOCK_SKEW


async def _first_tagged(listed: AsyncIterator[T], wanted: dict[str, str], step: str) -> T | None:
    """The first listed object whose metadata has `wanted`; the outcome is logged, as
    either way a step was left unrecorded for longer than it should ever be."""
    async for made in listed:
        if all(made.metadata.get(name) == value for name, value in wanted.items()):
            log.warning("%s: late retry found %s made and records it", step, made.id)
            return made
    log.warning("%s: late retry found nothing made; makes it under a new key", step)
    return None
