"""Operator views of the money: ledger transactions, commission earnings by period, the
webhook inbox with its dead letters, and retrying a dead event (audited)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId

from documents.accounts.audit import AuditKind
from documents.errors import DomainError, ErrorCode
from documents.money import Money
from documents.payments import ledger_accounts
from documents.payments.ledger import LedgerTransaction, MovementKind, Ref
from documents.payments.ledger_accounts import parse_account
from documents.payments.webhooks import WebhookEvent, WebhookStatus
from resolvers.accounts import audit
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.pagination import Page, PageRequest, paginate
from resolvers.common.services import RequestMeta, Services
from resolvers.common.validation import Checked
from resolvers.payments.webhooks.inbox import process, revive

NEWEST_FIRST = [("created_at", -1), ("_id", -1)]
MAX_PERIODS = 400
"""Earnings periods one request may span: more than a year of days."""


@dataclass(frozen=True, slots=True)
class LedgerFilter:
    kind: MovementKind | None = None
    account: str | None = None
    """An account name, such as `wallet:<user id>` or `platform_revenue`."""
    ref: tuple[Ref, str] | None = None
    created_from: datetime | None = None
    """Inclusive."""
    created_until: datetime | None = None
    """Exclusive."""


async def ledger_transactions(
    filters: LedgerFilter, request: PageRequest
) -> Page[LedgerTransaction]:
    """The transactions matching every given filter, newest first."""
    checked = Checked()
    if filters.account is not None:
        try:
            parse_account(filters.account)
        except ValueError as error:
            checked.fail(ErrorCode.INVALID_INPUT, f"Not an account: {error}.", "account")
    if filters.ref is not None and not filters.ref[1].strip():
        checked.fail(ErrorCode.INVALID_INPUT, "Give the value to look for.", "ref")
    check_range(checked, filters.created_from, filters.created_until)
    checked.raise_if_any()

    query: dict[str, Any] = {}
    if filters.kind is not None:
        query["kind"] = filters.kind.value
    if filters.account is not None:
        query["entries.account"] = filters.account
    if filters.ref is not None:
        name, value = filters.ref
        query[f"refs.{name.value}"] = value.strip()
    created = created_range(filters.created_from, filters.created_until)
    if created:
        query["created_at"] = created
    return await paginate(LedgerTransaction, query, NEWEST_FIRST, request)


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    """ISO weeks, Monday to Sunday."""
    MONTH = "month"


@dataclass(slots=True)
class Earnings:
    """The platform revenue account's movements in one period and currency."""

    start: datetime
    end: datetime
    currency: str
    net: int = 0
    transactions: int = 0
    by_kind: dict[MovementKind, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def net_money(self) -> Money:
        return Money(amount=self.net, currency=self.currency)


async def commission_earnings(
    period: Period,
    start: datetime,
    end: datetime,
    currency: str | None = None,
    partner_id: ObjectId | None = None,
) -> list[Earnings]:
    """What the platform earned (fees and commissions, less fee refunds and what it bore),
    per UTC period and currency, for the periods that had any; oldest first. With
    `partner_id`, only what it earned on that partner's wallets (their fees).

    `start` and `end` are widened to whole periods. Revenue is sharded in the balances,
    never in the entries: each transaction has one entry on the account per currency.
    """
    checked = Checked()
    check_range(checked, start, end)
    if currency is not None and not currency.strip():
        checked.fail(ErrorCode.INVALID_INPUT, "Give a currency code or none.", "currency")
    checked.raise_if_any()
    first, last = period_start(period, start), period_start(period, end - timedelta(microseconds=1))
    if _periods_between(period, first, last) >= MAX_PERIODS:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"At most {MAX_PERIODS} {period.value}s at once; shorten the range.",
            "until",
        )
    revenue = ledger_accounts.platform_revenue()
    wanted = currency.strip().upper() if currency is not None else None
    query: dict[str, Any] = {
        "entries.account": revenue,
        "created_at": {"$gte": first, "$lt": next_period(period, last)},
    }
    if partner_id is not None:
        query[f"refs.{Ref.PARTNER.value}"] = str(partner_id)
    found: dict[tuple[datetime, str], Earnings] = {}
    transactions = LedgerTransaction.get_pymongo_collection().find(
        query, {"entries": 1, "kind": 1, "created_at": 1}
    )
    async for raw in transactions:
        bucket = period_start(period, raw["created_at"])
        for entry in raw["entries"]:
            if entry["account"] != revenue or wanted not in (None, entry["currency"]):
                continue
            key = (bucket, entry["currency"])
            earnings = found.get(key)
            if earnings is None:
                earnings = Earnings(bucket, next_period(period, bucket), entry["currency"])
                found[key] = earnings
            earnings.net += entry["amount"]
            earnings.transactions += 1
            earnings.by_kind[MovementKind(raw["kind"])] += entry["amount"]
    return [found[key] for key in sorted(found)]


def period_start(period: Period, moment: datetime) -> datetime:
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.WEEK:
        return day - timedelta(days=day.weekday())
    if period is Period.MONTH:
        return day.replace(day=1)
    return day


def next_period(period: Period, start: datetime) -> datetime:
    if period is Period.DAY:
        return start + timedelta(days=1)
    if period is Period.WEEK:
        return start + timedelta(weeks=1)
    return (start + timedelta(days=32)).replace(day=1)


def _periods_between(period: Period, first: datetime, last: datetime) -> int:
    if period is Period.MONTH:
        return (last.year - first.year) * 12 + last.month - first.month
    return (last - first) // (timedelta(weeks=1) if period is Period.WEEK else timedelta(days=1))


def check_range(checked: Checked, start: datetime | None, end: datetime | None) -> None:
    for value, name in ((start, "from"), (end, "until")):
        if value is not None and value.tzinfo is None:
            checked.fail(ErrorCode.INVALID_INPUT, "Give a time zone (or Z).", name)
    if start is not None and end is not None and start.tzinfo and end.tzinfo and start >= end:
        checked.fail(ErrorCode.INVALID_INPUT, "`until` must be later than `from`.", "until")


def created_range(start: datetime | None, end: datetime | None) -> dict[str, datetime]:
    bounds = {}
    if start is not None:
        bounds["$gte"] = start
    if end is not None:
        bounds["$lt"] = end
    return bounds


async def webhook_events(
    status: WebhookStatus | None, event_type: str | None, request: PageRequest
) -> Page[WebhookEvent]:
    """Stored gateway events, newest first; `dead` ones wait for an admin."""
    query: dict[str, Any] = {}
    if status is not None:
        query["status"] = status.value
    if event_type is not None:
        query["type"] = event_type.strip()
    return await paginate(WebhookEvent, query, [("received_at", -1), ("_id", -1)], request)


async def retry_webhook_event(
    services: Services, meta: RequestMeta, admin: Viewer, event_id: ObjectId
) -> WebhookEvent:
    """A dead event back in the queue with fresh attempts, processed at once."""
    event = await WebhookEvent.get(PydanticObjectId(event_id))
    if event is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such webhook event.", "id")
    if await revive(event.event_id) is None:
        current = await WebhookEvent.get(PydanticObjectId(event_id))
        status = current.status.value if current else "gone"
        raise DomainError(ErrorCode.INVALID_STATE, f"The event is {status}, not dead.", "id")
    # Recorded before processing: whatever processing does, the admin's act is on file.
    await audit.record(
        AuditKind.WEBHOOK_EVENT_RETRIED,
        meta,
        actor_id=admin.user_id,
        event_id=event.event_id,
        type=event.type,
        attempts_before=event.attempts,
        last_error=event.last_error,
    )
    processed = await process(services, event.event_id)
    if processed is not None:
        return processed
    # Another runner (the retry job) took it first; show where it stands.
    latest = await WebhookEvent.get(PydanticObjectId(event_id))
    return latest or event
