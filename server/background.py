"""Jobs every API instance runs periodically while it serves.

There is no leader: every instance (and every worker) runs every job. A job must
therefore be safe to run several times at once, deciding each piece of work with a
conditional update that only one runner wins; a second runner costs a query, never a
double effect. For the same reason stopping is simply cancelling: an interrupted
transaction changes nothing, and the next run picks the work up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from integrations.payments.sandbox import BACKGROUND_INTERVAL as SANDBOX_INTERVAL
from integrations.payments.sandbox import SandboxGateway
from resolvers.common.services import Services
from resolvers.marketplace.lapses import lapse_unpaid_deals
from resolvers.marketplace.request_expiry import expire_unanswered_requests
from resolvers.marketplace.reviews import publish_due_reviews
from resolvers.notifications.scheduled import turn_due as turn_due_scheduled_messages
from resolvers.notifications.sending import send_due as send_due_notifications
from resolvers.partners.gateway.cancellations import expire_pending_credits
from resolvers.partners.gateway.credits import retry_missing_intents
from resolvers.partners.gateway.withdrawals import retry_unsent_withdrawals
from resolvers.partners.webhooks.sender import keep_sending as keep_sending_partner_webhooks
from resolvers.partners.webhooks.sender import webhook_poster
from resolvers.payments.escrow.progress import sweep as sweep_escrows
from resolvers.payments.webhooks.inbox import retry_due
from resolvers.payments.withdrawals import retry_unsent_payouts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    every: timedelta
    run: Callable[[], Awaitable[object]]


def marketplace_jobs(services: Services) -> list[PeriodicJob]:
    return [
        *_sandbox_jobs(services),
        PeriodicJob(
            # Reminders, review requests and chat notices come due: into the outbox.
            "turn-due-scheduled-messages",
            services.settings.notification_send_interval,
            partial(turn_due_scheduled_messages, services),
        ),
        PeriodicJob(
            # The outbox: e-mail, SMS and push messages due.
            "send-notifications",
            services.settings.notification_send_interval,
            partial(send_due_notifications, services),
        ),
        PeriodicJob(
            # Webhooks to partners: deliveries due, in order per wallet.
            "send-partner-webhooks",
            services.settings.partner_webhook_send_interval,
            partial(keep_sending_partner_webhooks, services, webhook_poster(services.settings)),
        ),
        PeriodicJob(
            "publish-due-reviews",
            services.settings.review_publish_interval,
            partial(publish_due_reviews, services),
        ),
        PeriodicJob(
            # Booking requests the provider did not answer in time.
            "expire-booking-requests",
            services.settings.escrow_sweep_interval,
            partial(expire_unanswered_requests, services),
        ),
        PeriodicJob(
            "retry-webhook-events",
            services.settings.webhook_retry_interval,
            partial(retry_due, services),
        ),
        PeriodicJob(
            "retry-unsent-payouts",
            services.settings.payout_retry_interval,
            partial(retry_unsent_payouts, services),
        ),
        PeriodicJob(
            # Partner credits whose payment intent a crash or the gateway left unmade.
            "retry-partner-intents",
            services.settings.partner_gateway_retry_interval,
            partial(retry_missing_intents, services),
        ),
        PeriodicJob(
            # Partner credits unpaid past GIGQL_PARTNER_CREDIT_EXPIRY: cancelled.
            "expire-partner-credits",
            services.settings.partner_gateway_retry_interval,
            partial(expire_pending_credits, services),
        ),
        PeriodicJob(
            # Partner withdrawals whose transfer or payout was left unmade.
            "retry-partner-withdrawals",
            services.settings.partner_gateway_retry_interval,
            partial(retry_unsent_withdrawals, services),
        ),
        PeriodicJob(
            # Accepted offers and confirmed bookings left unpaid past their deadline.
            "lapse-unpaid-deals",
            services.settings.escrow_sweep_interval,
            partial(lapse_unpaid_deals, services),
        ),
        PeriodicJob(
            # Intents, refunds and transfers a crash left unmade; automatic releases.
            "sweep-escrows",
            services.settings.escrow_sweep_interval,
            partial(sweep_escrows, services),
        ),
    ]


def _sandbox_jobs(services: Services) -> list[PeriodicJob]:
    if not isinstance(services.payments, SandboxGateway):
        return []
    # The sandbox's bank paying out, and its events that no process has delivered.
    return [PeriodicJob("sandbox-gateway", SANDBOX_INTERVAL, services.payments.run_due)]


@asynccontextmanager
async def running(jobs: Sequence[PeriodicJob]) -> AsyncIterator[None]:
    """Run each job now and then every `every` until the block exits."""
    tasks = [asyncio.create_task(_repeat(job), name=f"gigql-{job.name}") for job in jobs]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _repeat(job: PeriodicJob) -> None:
    while True:
        try:
            done = await job.run()
            log.debug("background job %s: %s", job.name, done)
        except Exception:
            # A failing run (the database away, say) must not end the schedule.
            log.exception("background job %s failed", job.name)
        await asyncio.sleep(job.every.total_seconds())
