"""Jobs the API instances run periodically while they serve.

There is no leader. A sweep (escrows, payouts, lapses, retries) is run by whichever
instance holds its lease (documents/leases.py): one instance per job at a time, the
others only trying the lease once a period, at jittered moments so that many instances
do not all wake together. A job whose work is claimed item by item and is worth
spreading (the notification and partner-webhook outboxes, which wait on remote servers)
runs on every instance instead.

Either way a job must be safe to run several times at once, deciding each piece of work
with a conditional update that only one runner wins: a lease can be held twice for a
moment (an instance's clock far off, a run that outlived a lease it could not renew),
and that must cost a query, never a double effect. For the same reason stopping is
simply cancelling: an interrupted transaction changes nothing, and the next run picks
the work up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from documents import leases
from integrations.payments.sandbox import BACKGROUND_INTERVAL as SANDBOX_INTERVAL
from integrations.payments.sandbox import SandboxGateway
from resolvers.common.services import Services
from resolvers.marketplace.lapses import lapse_unpaid_deals
from resolvers.marketplace.request_expiry import expire_unanswered_requests
from resolvers.marketplace.reviews import publish_due_reviews
from resolvers.notifications.outbox import derive_pending as derive_pending_notifications
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


JITTER = 0.1
"""Each wait is the job's period give or take this share, so instances drift apart."""

LEASE_MARGIN = timedelta(seconds=10)
"""A lease lasts two periods and this: a holder that died is replaced within about
that long, and a live one renews it well before (each period, and during long runs)."""


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    every: timedelta
    run: Callable[[], Awaitable[object]]
    every_instance: bool = False
    """Run on every instance rather than by the lease's holder alone."""

    @property
    def lease(self) -> timedelta:
        return self.every * 2 + LEASE_MARGIN


def instance_name() -> str:
    """Who holds a lease: the host, the process, and a part no restart repeats."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


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
            # Notifications of events whose request stopped between their commit and
            # deriving them (it does so itself at once otherwise).
            "derive-pending-notifications",
            services.settings.notification_send_interval,
            derive_pending_notifications,
        ),
        PeriodicJob(
            # The outbox: e-mail, SMS and push messages due.
            "send-notifications",
            services.settings.notification_send_interval,
            partial(send_due_notifications, services),
            # Each delivery is claimed on its own and sending waits on remote servers.
            every_instance=True,
        ),
        PeriodicJob(
            # Webhooks to partners: deliveries due, in order per wallet.
            "send-partner-webhooks",
            services.settings.partner_webhook_send_interval,
            partial(keep_sending_partner_webhooks, services, webhook_poster(services.settings)),
            # Each delivery is claimed on its own and sending waits on partners' servers.
            every_instance=True,
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
async def running(jobs: Sequence[PeriodicJob], holder: str | None = None) -> AsyncIterator[None]:
    """Run each job now and then every `every` until the block exits. With a `holder`
    (this instance's name) jobs not meant for every instance run only under its lease;
    without one, every job runs here (a single process, or a test driving the jobs)."""
    tasks = [
        asyncio.create_task(
            _repeat(job, None if job.every_instance else holder), name=f"gigql-{job.name}"
        )
        for job in jobs
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if holder is not None:
            await _give_up_leases(jobs, holder)


async def _repeat(job: PeriodicJob, holder: str | None) -> None:
    while True:
        try:
            if holder is None or await leases.take(job.name, holder, job.lease):
                async with _renewed(job, holder):
                    done = await job.run()
                log.debug("background job %s: %s", job.name, done)
        except Exception:
            # A failing run (the database away, say) must not end the schedule.
            log.exception("background job %s failed", job.name)
        await asyncio.sleep(job.every.total_seconds() * random.uniform(1 - JITTER, 1 + JITTER))  # noqa: S311 - spreading, not secrecy


@asynccontextmanager
async def _renewed(job: PeriodicJob, holder: str | None) -> AsyncIterator[None]:
    """Keep the lease while a run lasts longer than a period (an outbox sender never
    returns), so that no other instance takes over a job that is still running."""
    if holder is None:
        yield
        return
    renewing = asyncio.create_task(_renew(job, holder), name=f"gigql-lease-{job.name}")
    try:
        yield
    finally:
        renewing.cancel()
        await asyncio.gather(renewing, return_exceptions=True)


async def _renew(job: PeriodicJob, holder: str) -> None:
    while True:
        await asyncio.sleep(job.lease.total_seconds() / 3)
        try:
            if not await leases.take(job.name, holder, job.lease):
                log.warning("background job %s: its lease was taken over while running", job.name)
        except Exception:
            log.warning("background job %s: renewing its lease failed", job.name, exc_info=True)


async def _give_up_leases(jobs: Sequence[PeriodicJob], holder: str) -> None:
    """Stopping politely: another instance takes the jobs over at once."""
    for job in jobs:
        if job.every_instance:
            continue
        try:
            await leases.give_up(job.name, holder)
        except Exception:
            # The database away: the leases run out by themselves.
            log.warning("giving up the lease of %s failed", job.name, exc_info=True)
