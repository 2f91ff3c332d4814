"""Which code acts on which gateway event type.

A handler must be idempotent and order-tolerant: an event may be processed again after
a failure or a crash, and events arrive in any order (a refund before the payment it
refunds). A handler that cannot act yet (what it follows has not happened) raises
`NotReady`, and the inbox retries it later. Before changing anything, a handler compares
the event's object with what we recorded (resolvers/payments/webhooks/checks.py) and raises
`EventMismatch` if it differs: the event is rejected and never retried. Types missing
here are stored and ignored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from integrations.payments.gateway import GatewayEvent
from resolvers.common.services import Services
from resolvers.partners.gateway.routing import with_partners
from resolvers.payments.connect import account_updated
from resolvers.payments.disputes.chargebacks import chargeback_closed, chargeback_created
from resolvers.payments.escrow import events as escrow_events
from resolvers.payments.identity import verification_session_changed
from resolvers.payments.webhooks.checks import EventMismatch, NotReady
from resolvers.payments.withdrawals import payout_failed, payout_paid

Handler = Callable[[Services, GatewayEvent], Awaitable[None]]

__all__ = ["HANDLERS", "EventMismatch", "Handler", "NotReady"]

# Partner money (resolvers/partners/gateway/routing.py) is recognised first, by its metadata.
HANDLERS: Mapping[str, Handler] = with_partners(
    {
        "payment_intent.succeeded": escrow_events.payment_held,
        "payment_intent.amount_capturable_updated": escrow_events.payment_held,
        "payment_intent.payment_failed": escrow_events.payment_failed,
        "payment_intent.requires_action": escrow_events.payment_requires_action,
        "payment_intent.canceled": escrow_events.payment_canceled,
        "charge.refunded": escrow_events.charge_refunded,
        "refund.created": escrow_events.refund_created,
        "transfer.created": escrow_events.transfer_created,
        "transfer.reversed": escrow_events.transfer_reversed,
        "charge.dispute.created": chargeback_created,
        "charge.dispute.closed": chargeback_closed,
        "account.updated": account_updated,
        "identity.verification_session.processing": verification_session_changed,
        "identity.verification_session.requires_input": verification_session_changed,
        "identity.verification_session.verified": verification_session_changed,
        "identity.verification_session.canceled": verification_session_changed,
        "payout.paid": payout_paid,
        "payout.failed": payout_failed,
    }
)
