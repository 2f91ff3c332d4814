"""Admin views of the money: ledger transactions, commission earnings, the webhook inbox,
and retrying a dead webhook event. Every field is for admins only."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

import strawberry
from bson import ObjectId
from strawberry import relay
from strawberry.scalars import JSON

from documents.errors import DomainError, ErrorCode
from documents.money import Money
from documents.payments.ledger import LedgerTransaction, MovementKind, Ref
from documents.payments.webhooks import EventDifference, WebhookEvent, WebhookStatus
from resolvers.partners.ids import PARTNER_TYPE
from resolvers.payments import admin as admin_payments
from resolvers.payments.admin import Earnings, LedgerFilter, Period
from schema.common.context import Info
from schema.common.copying import copied
from schema.common.limits import bounded
from schema.common.payloads import Payload, mutation_payload
from schema.common.permissions import IsAdmin, allow
from schema.common.relay import (
    admin_documents,
    decode_id,
    object_id,
    requested_page,
    to_connection,
)
from schema.common.values import MoneyType
from schema.payments.wallets import MovementKindType  # noqa: F401  # the GraphQL enum of MovementKind

RefType = strawberry.enum(
    Ref, name="LedgerRefKind", description="What a ledger transaction is filed under."
)
PeriodType = strawberry.enum(Period, name="EarningsPeriod", description="UTC periods.")
WebhookStatusType = strawberry.enum(WebhookStatus, name="WebhookEventStatus")

ENTRIES_ESTIMATE = 8
"""Entries per transaction, for the query cost (a transaction may have more)."""
MAX_DIFFERENCES = 16
"""What one rejected event can differ in: no check compares more than a dozen fields."""


@strawberry.type(name="LedgerEntry", description="An amount into an account (negative: out).")
class LedgerEntryType:
    account: str = strawberry.field(description="Like `wallet:<user id>` or `platform_revenue`.")
    amount: MoneyType


@strawberry.type(name="LedgerRef")
class LedgerRefType:
    kind: Ref
    value: str


@strawberry.type(name="LedgerTransaction", description="One movement of money; entries sum to 0.")
class LedgerTransactionNode(relay.Node):
    id: relay.NodeID[str]
    idempotency_key: str
    kind: MovementKind
    # The payment flows post two to four entries; nothing posts more than a handful.
    entries: list[LedgerEntryType] = strawberry.field(metadata=bounded(ENTRIES_ESTIMATE))
    refs: list[LedgerRefType] = strawberry.field(metadata=bounded(len(Ref)))
    memo: str
    created_at: datetime

    @classmethod
    def of(cls, transaction: LedgerTransaction) -> LedgerTransactionNode:
        return copied(
            cls,
            transaction,
            id=str(transaction.id),
            entries=[
                LedgerEntryType(
                    account=entry.account,
                    amount=MoneyType.of(Money(amount=entry.amount, currency=entry.currency)),
                )
                for entry in transaction.entries
            ],
            refs=[LedgerRefType(kind=k, value=v) for k, v in sorted(transaction.refs.items())],
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[LedgerTransactionNode | None]:
        transactions = await admin_documents(info, node_ids, LedgerTransaction)
        return [cls.of(t) if t else None for t in transactions]


@strawberry.type
class LedgerTransactionConnection(relay.Connection[LedgerTransactionNode]):
    pass


@strawberry.input(name="LedgerRefInput")
class LedgerRefInput:
    kind: Ref
    value: str


@strawberry.input(description="Every given field must match.")
class LedgerTransactionFilter:
    kind: MovementKind | None = None
    account: str | None = strawberry.field(
        default=None, description="An account name, like `escrow:<id>` or `platform_revenue`."
    )
    ref: LedgerRefInput | None = None
    created_from: datetime | None = strawberry.field(default=None, description="Inclusive.")
    created_until: datetime | None = strawberry.field(default=None, description="Exclusive.")

    def to_filter(self) -> LedgerFilter:
        return LedgerFilter(
            kind=self.kind,
            account=self.account,
            ref=(self.ref.kind, self.ref.value) if self.ref else None,
            created_from=self.created_from,
            created_until=self.created_until,
        )


@strawberry.type(name="EarningsOfKind")
class EarningsOfKindType:
    kind: MovementKind
    amount: MoneyType


@strawberry.type(
    name="CommissionEarnings",
    description="What the platform revenue account took in during one period, in one currency.",
)
class CommissionEarningsType:
    period_start: datetime
    period_end: datetime = strawberry.field(description="Exclusive.")
    currency: str
    net: MoneyType = strawberry.field(
        description="Fees and commissions, less refunded fees and what the platform bore."
    )
    transactions: int
    by_kind: list[EarningsOfKindType] = strawberry.field(metadata=bounded(len(MovementKind)))

    @classmethod
    def of(cls, earnings: Earnings) -> CommissionEarningsType:
        return copied(
            cls,
            earnings,
            period_start=earnings.start,
            period_end=earnings.end,
            net=MoneyType.of(earnings.net_money),
            by_kind=[
                EarningsOfKindType(
                    kind=kind, amount=MoneyType.of(Money(amount=amount, currency=earnings.currency))
                )
                for kind, amount in sorted(earnings.by_kind.items())
            ],
        )


@strawberry.type(
    name="WebhookEventDifference",
    description="How a REJECTED event's object differs from what we recorded.",
)
class WebhookEventDifferenceType:
    field: str = strawberry.field(description="Like `payment_intent`, `amount` or `account`.")
    recorded: str
    received: str = strawberry.field(description="What the event says.")

    @classmethod
    def of(cls, difference: EventDifference) -> WebhookEventDifferenceType:
        return copied(cls, difference)


@strawberry.type(name="WebhookEvent", description="A gateway event as received and processed.")
class WebhookEventNode(relay.Node):
    id: relay.NodeID[str]
    event_id: str = strawberry.field(description="The gateway's id, like `evt_...`.")
    type: str
    account: str | None = strawberry.field(description="The connected account, for Connect.")
    status: WebhookStatus
    attempts: int
    next_attempt_at: datetime = strawberry.field(description="When it is retried, if pending.")
    last_error: str | None
    differences: list[WebhookEventDifferenceType] = strawberry.field(
        description="Why it was REJECTED: what differed from our records (else empty).",
        metadata=bounded(MAX_DIFFERENCES),
    )
    created_at: datetime = strawberry.field(description="When the gateway says it happened.")
    received_at: datetime
    processed_at: datetime | None
    payload: JSON = strawberry.field(description="The event as the gateway sent it.")

    @classmethod
    def of(cls, event: WebhookEvent) -> WebhookEventNode:
        return copied(
            cls,
            event,
            id=str(event.id),
            differences=[WebhookEventDifferenceType.of(d) for d in event.differences],
            created_at=event.created,
            payload=JSON(json.loads(event.payload)),
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[WebhookEventNode | None]:
        events = await admin_documents(info, node_ids, WebhookEvent)
        return [cls.of(e) if e else None for e in events]


@strawberry.type
class WebhookEventConnection(relay.Connection[WebhookEventNode]):
    pass


@strawberry.type
class AdminPaymentsQuery:
    @strawberry.field(extensions=allow(IsAdmin()), description="Ledger transactions, newest first.")
    async def ledger_transactions(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: LedgerTransactionFilter | None = None,
    ) -> LedgerTransactionConnection:
        page = await admin_payments.ledger_transactions(
            filter.to_filter() if filter else LedgerFilter(), requested_page(info, first, after)
        )
        return to_connection(LedgerTransactionConnection, page, LedgerTransactionNode.of)

    @strawberry.field(
        extensions=allow(IsAdmin()),
        description="Platform revenue per UTC period and currency, oldest first; periods "
        "without any are left out. `from` and `until` are widened to whole periods. With "
        "`partnerId`, the fees earned on that partner's wallets only.",
    )
    async def commission_earnings(
        self,
        period: Period,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        until: Annotated[datetime, strawberry.argument(description="Exclusive.")],
        currency: str | None = None,
        partner_id: relay.GlobalID | None = None,
    ) -> list[CommissionEarningsType]:
        partner = _partner_id(partner_id) if partner_id is not None else None
        found = await admin_payments.commission_earnings(period, from_, until, currency, partner)
        return [CommissionEarningsType.of(earnings) for earnings in found]

    @strawberry.field(
        extensions=allow(IsAdmin()),
        description="Stored gateway events, newest first; DEAD and REJECTED ones need an admin.",
    )
    async def webhook_events(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        status: WebhookStatus | None = None,
        type: str | None = None,
    ) -> WebhookEventConnection:
        page = await admin_payments.webhook_events(status, type, requested_page(info, first, after))
        return to_connection(WebhookEventConnection, page, WebhookEventNode.of)


def _partner_id(global_id: relay.GlobalID) -> ObjectId:
    oid = object_id(global_id.node_id) if global_id.type_name == PARTNER_TYPE else None
    if oid is None:
        raise DomainError(ErrorCode.INVALID_ID, "Not the id of a Partner.", "partnerId")
    return oid


@strawberry.input
class RetryWebhookEventInput:
    id: relay.GlobalID


@strawberry.type
class RetryWebhookEventPayload(Payload):
    event: WebhookEventNode | None = None


@strawberry.type
class AdminPaymentsMutation:
    @strawberry.mutation(
        extensions=allow(IsAdmin()),
        description="Process a DEAD webhook event again, with fresh attempts (audited).",
    )
    @mutation_payload
    async def retry_webhook_event(
        self, info: Info, input: RetryWebhookEventInput
    ) -> RetryWebhookEventPayload:
        admin = await info.context.require_viewer()
        event_id = decode_id(input.id, WebhookEventNode, "id")
        event = await admin_payments.retry_webhook_event(
            info.context.services, info.context.meta, admin, event_id
        )
        return RetryWebhookEventPayload(event=WebhookEventNode.of(event))
