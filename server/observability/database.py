"""What `/metrics` reads from the database at scrape time: backlogs and how late they are.

The webhook inbox (by status: received, failed, dead), the escrows due for automatic
release that the sweep has not released yet (how many, and how overdue the oldest is),
and the notification and partner-webhook outboxes (pending and dead deliveries). Each
scrape reuses what was read in the last `FRESH_SECONDS`, and concurrent scrapes share
one read, so scraping often costs the database little; every query is a count or a
one-document read on an index. The families are made at scrape time, in whichever
process answers: they describe the shared database, not one worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from pymongo.errors import PyMongoError

from documents.clock import utcnow
from documents.notifications.deliveries import Delivery
from documents.notifications.deliveries import DeliveryStatus as NotificationStatus
from documents.partners.webhooks import DeliveryStatus as PartnerDeliveryStatus
from documents.partners.webhooks import PartnerWebhookDelivery
from documents.payments.escrow import HOLDING_STATUSES, Escrow
from documents.payments.webhooks import WebhookEvent, WebhookStatus

log = logging.getLogger(__name__)

FRESH_SECONDS = 10.0
"""How long one read of the database answers scrapes."""
INBOX_STATUSES = (WebhookStatus.RECEIVED, WebhookStatus.FAILED, WebhookStatus.DEAD)
"""The inbox's unfinished statuses: the others only grow, and say nothing about health."""


class DatabaseGauges:
    """A prometheus-client collector of the families read by `refresh`."""

    def __init__(self) -> None:
        self._families: list[Metric] = []
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Read the database again unless the last read is fresh; on a failure the last
        read stays (and the log says why)."""
        if time.monotonic() - self._read_at < FRESH_SECONDS:
            return
        async with self._lock:
            if time.monotonic() - self._read_at < FRESH_SECONDS:
                return  # another scrape read it meanwhile
            try:
                self._families = await _read()
            except PyMongoError:
                log.warning("metrics: could not read the backlogs", exc_info=True)
            self._read_at = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        yield from self._families


async def _read() -> list[Metric]:
    now = utcnow()
    inbox = GaugeMetricFamily(
        "gigql_webhook_inbox_events",
        "Gateway webhook events stored and not finished, by status.",
        labels=["status"],
    )
    inbox_age = GaugeMetricFamily(
        "gigql_webhook_inbox_oldest_age_seconds",
        "Age of the oldest unfinished gateway webhook event, by status (0 when none).",
        labels=["status"],
    )
    for status in INBOX_STATUSES:
        events = WebhookEvent.find({"status": status.value})
        inbox.add_metric([status.value], await events.count())
        oldest = await events.sort("+received_at").first_or_none()
        age = (now - oldest.received_at).total_seconds() if oldest else 0.0
        inbox_age.add_metric([status.value], max(age, 0.0))

    due = {
        "status": {"$in": [s.value for s in HOLDING_STATUSES]},
        "auto_release_at": {"$lte": now},
    }
    escrows_due = GaugeMetricFamily(
        "gigql_escrows_due_for_release",
        "Escrows past their automatic release time and not released yet.",
        value=await Escrow.find(due).count(),
    )
    most_overdue = await Escrow.find(due).sort("+auto_release_at").first_or_none()
    lag = (
        (now - most_overdue.auto_release_at).total_seconds()
        if most_overdue is not None and most_overdue.auto_release_at is not None
        else 0.0
    )
    sweep_lag = GaugeMetricFamily(
        "gigql_escrow_release_lag_seconds",
        "How long past its automatic release time the most overdue escrow is (0 when none).",
        value=max(lag, 0.0),
    )

    notifications = GaugeMetricFamily(
        "gigql_notification_outbox_deliveries",
        "Notification deliveries (e-mail, SMS, push) waiting to be sent, or dead.",
        labels=["status"],
    )
    for notification_status in (NotificationStatus.PENDING, NotificationStatus.DEAD):
        count = await Delivery.find({"status": notification_status.value}).count()
        notifications.add_metric([notification_status.value], count)

    partner_webhooks = GaugeMetricFamily(
        "gigql_partner_webhook_outbox_deliveries",
        "Webhook deliveries to partners waiting to be delivered, or dead.",
        labels=["status"],
    )
    for partner_status in (PartnerDeliveryStatus.PENDING, PartnerDeliveryStatus.DEAD):
        count = await PartnerWebhookDelivery.find({"status": partner_status.value}).count()
        partner_webhooks.add_metric([partner_status.value], count)

    return [inbox, inbox_age, escrows_due, sweep_lag, notifications, partner_webhooks]
