"""Admins' views of the money over GraphQL: ledger transactions, commission earnings by
period, the webhook inbox with its dead letters, and retrying a dead event (audited)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from bson import ObjectId

from documents.accounts.audit import AuditEvent, AuditKind
from documents.money import Money
from documents.payments import ledger_accounts
from documents.payments.ledger import Entry, LedgerTransaction, MovementKind, Ref, transfer
from resolvers.payments.webhooks.inbox import receive
from server.runtime import Runtime
from tests.conftest import with_settings
from tests.support.graphql_client import GraphQLClient, Tokens, error_codes, graphql_error_codes
from tests.support.marketplace import logged_in_admin, object_id
from tests.support.payments.ledger import fund_wallet, pay, post, usd, withdraw
from tests.support.payments.webhooks import (
    FLAKY,
    Flaky,
    event_id_of,
    post_event,
    signature,
    stored,
    stripe_event,
    webhook_secret,
)

TRANSACTIONS = """query($first: Int, $after: String, $filter: LedgerTransactionFilter) {
  ledgerTransactions(first: $first, after: $after, filter: $filter) {
    edges { node { id idempotencyKey kind memo createdAt
      entries { account amount { amount currency } } refs { kind value } } }
    pageInfo { hasNextPage endCursor }
  }
}"""
EARNINGS = """query($period: EarningsPeriod!, $from: DateTime!, $until: DateTime!, $currency: String) {
  commissionEarnings(period: $period, from: $from, until: $until, currency: $currency) {
    periodStart periodEnd currency net { amount currency } transactions
    byKind { kind amount { amount } }
  }
}"""
WEBHOOKS = """query($status: WebhookEventStatus, $type: String) {
  webhookEvents(first: 10, status: $status, type: $type) {
    edges { node { id eventId type status attempts lastError processedAt payload } }
  }
}"""


def eur(amount: int) -> Money:
    return Money(amount=amount, currency="EUR")


def march(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


async def backdate(transaction: LedgerTransaction, at: datetime) -> None:
    """As if it had been posted at `at`."""
    await LedgerTransaction.get_pymongo_collection().update_one(
        {"_id": transaction.id}, {"$set": {"created_at": at}}
    )


def keys(result: dict[str, Any]) -> list[str]:
    return [edge["node"]["idempotencyKey"] for edge in result["ledgerTransactions"]["edges"]]


# --- ledger transactions ---------------------------------------------------------------


async def test_admins_list_and_filter_ledger_transactions(
    runtime: Runtime, client: GraphQLClient
) -> None:
    admin = await logged_in_admin(client, runtime)
    provider, payer, escrow = ObjectId(), ObjectId(), ObjectId()
    paid = await pay(payer, escrow, usd(10_000), usd(1_000))
    await backdate(paid, march(1))
    released = await post(
        f"escrow:{escrow}:released",
        MovementKind.ESCROW_RELEASED,
        transfer(ledger_accounts.escrow(escrow), ledger_accounts.wallet(provider), usd(10_000)),
        {Ref.ESCROW: escrow},
        memo="work approved",
    )
    await backdate(released, march(2))
    withdrawal = await withdraw(provider, "withdrawal:w1", usd(4_000))
    await backdate(withdrawal, march(3))

    async def listed(**variables: Any) -> list[str]:
        return keys(await client.data(TRANSACTIONS, variables, token=admin.access))

    assert await listed() == ["withdrawal:w1", f"escrow:{escrow}:released", f"escrow:{escrow}:paid"]
    assert await listed(filter={"kind": "PAYOUT_REQUESTED"}) == ["withdrawal:w1"]
    wallet = ledger_accounts.wallet(provider)
    assert await listed(filter={"account": wallet}) == [
        "withdrawal:w1",
        f"escrow:{escrow}:released",
    ]
    by_escrow = {"ref": {"kind": "ESCROW", "value": str(escrow)}}
    assert await listed(filter=by_escrow) == [
        f"escrow:{escrow}:released",
        f"escrow:{escrow}:paid",
    ]
    window = {"createdFrom": march(2, 0).isoformat(), "createdUntil": march(3, 0).isoformat()}
    assert await listed(filter=window) == [f"escrow:{escrow}:released"]
    assert await listed(filter={**window, "kind": "PAYMENT_RECEIVED"}) == []

    # Pages of one, no transaction skipped or repeated.
    first = await client.data(TRANSACTIONS, {"first": 2}, token=admin.access)
    assert keys(first) == ["withdrawal:w1", f"escrow:{escrow}:released"]
    after = first["ledgerTransactions"]["pageInfo"]["endCursor"]
    rest = await client.data(TRANSACTIONS, {"first": 2, "after": after}, token=admin.access)
    assert keys(rest) == [f"escrow:{escrow}:paid"]
    assert rest["ledgerTransactions"]["pageInfo"]["hasNextPage"] is False

    node = (await client.data(TRANSACTIONS, {"filter": by_escrow}, token=admin.access))[
        "ledgerTransactions"
    ]["edges"][0]["node"]
    assert node["kind"] == "ESCROW_RELEASED" and node["memo"] == "work approved"
    assert node["entries"] == [
        {
            "account": ledger_accounts.escrow(escrow),
            "amount": {"amount": -10_000, "currency": "USD"},
        },
        {"account": wallet, "amount": {"amount": 10_000, "currency": "USD"}},
    ]
    assert node["refs"] == [{"kind": "ESCROW", "value": str(escrow)}]
    assert node["createdAt"].startswith("2026-03-02T12:00:00")


async def test_ledger_filters_are_validated(runtime: Runtime, client: GraphQLClient) -> None:
    admin = await logged_in_admin(client, runtime)
    for bad in (
        {"account": "wallet:not-an-id"},
        {"account": "savings"},
        {"ref": {"kind": "PAYOUT", "value": " "}},
        {"createdFrom": march(3).isoformat(), "createdUntil": march(2).isoformat()},
    ):
        result = await client.execute(TRANSACTIONS, {"filter": bad}, token=admin.access)
        assert graphql_error_codes(result) == ["INVALID_INPUT"], (bad, result)


async def test_only_admins_see_the_money(runtime: Runtime, client: GraphQLClient) -> None:
    await fund_wallet(ObjectId(), usd(100))
    member = await client.member("mo@example.com")
    window = {"period": "DAY", "from": march(1).isoformat(), "until": march(2).isoformat()}
    for query, variables in ((TRANSACTIONS, {}), (EARNINGS, window), (WEBHOOKS, {})):
        result = await client.execute(query, variables, token=member.access)
        assert graphql_error_codes(result) == ["FORBIDDEN"]
        assert graphql_error_codes(await client.execute(query, variables)) == ["UNAUTHENTICATED"]
    # Nor through `node`.
    admin = await logged_in_admin(client, runtime)
    listed = await client.data(TRANSACTIONS, {}, token=admin.access)
    global_id = listed["ledgerTransactions"]["edges"][0]["node"]["id"]
    node = "query($id: ID!) { node(id: $id) { id ... on LedgerTransaction { kind } } }"
    assert (await client.data(node, {"id": global_id}, token=member.access))["node"] is None
    seen = (await client.data(node, {"id": global_id}, token=admin.access))["node"]
    assert seen == {"id": global_id, "kind": "ESCROW_RELEASED"}  # the newest


# --- commission earnings ---------------------------------------------------------------


async def _revenue_in_march() -> None:
    """Platform revenue on 2 and 3 March (week 10), 11 March (week 11) and in February."""
    payer, escrow = ObjectId(), ObjectId()
    revenue = ledger_accounts.platform_revenue()
    await backdate(await pay(payer, escrow, usd(10_000), usd(1_000)), march(2, 9))
    commission = await post(
        f"escrow:{escrow}:commission",
        MovementKind.COMMISSION,
        transfer(ledger_accounts.escrow(escrow), revenue, usd(500)),
    )
    await backdate(commission, march(2, 23))
    await backdate(await pay(ObjectId(), ObjectId(), eur(5_000), eur(700)), march(2, 10))
    released = await post(
        f"escrow:{escrow}:released",
        MovementKind.ESCROW_RELEASED,
        [
            Entry(account=ledger_accounts.escrow(escrow), currency="USD", amount=-9_500),
            Entry(account=ledger_accounts.wallet(ObjectId()), currency="USD", amount=7_500),
            Entry(account=revenue, currency="USD", amount=2_000),
        ],
    )
    await backdate(released, march(3))
    refund = await post(
        f"escrow:{escrow}:fee-refund",
        MovementKind.REFUND,
        transfer(revenue, ledger_accounts.funding(payer), usd(1_000)),
    )
    await backdate(refund, march(11))
    february = await pay(ObjectId(), ObjectId(), usd(100), usd(10))
    await backdate(february, datetime(2026, 2, 28, 23, 59, tzinfo=UTC))
    # Money that never touches revenue is not earnings.
    await backdate(await pay(ObjectId(), ObjectId(), usd(300), usd(0)), march(4))


def _summary(result: dict[str, Any]) -> list[tuple[str, str, int, int]]:
    return [
        (row["periodStart"][:10], row["currency"], row["net"]["amount"], row["transactions"])
        for row in result["commissionEarnings"]
    ]


async def test_commission_earnings_by_day_week_and_month(
    runtime: Runtime, client: GraphQLClient
) -> None:
    admin = await logged_in_admin(client, runtime)
    await _revenue_in_march()

    async def earnings(period: str, **extra: Any) -> dict[str, Any]:
        variables = {
            "period": period,
            "from": march(1, 0).isoformat(),
            "until": datetime(2026, 4, 1, tzinfo=UTC).isoformat(),
            **extra,
        }
        return await client.data(EARNINGS, variables, token=admin.access)

    by_day = await earnings("DAY")
    assert _summary(by_day) == [
        ("2026-03-02", "EUR", 700, 1),
        ("2026-03-02", "USD", 1_500, 2),
        ("2026-03-03", "USD", 2_000, 1),
        ("2026-03-11", "USD", -1_000, 1),
    ]
    usd_day = by_day["commissionEarnings"][1]
    assert usd_day["periodStart"].startswith("2026-03-02T00:00:00")
    assert usd_day["periodEnd"].startswith("2026-03-03T00:00:00")
    assert usd_day["byKind"] == [
        {"kind": "COMMISSION", "amount": {"amount": 500}},
        {"kind": "PAYMENT_RECEIVED", "amount": {"amount": 1_000}},
    ]
    # ISO weeks start on Monday (2 March 2026 is one); the range widens to whole weeks,
    # so the week of 1 March brings in 28 February.
    assert _summary(await earnings("WEEK")) == [
        ("2026-02-23", "USD", 10, 1),
        ("2026-03-02", "EUR", 700, 1),
        ("2026-03-02", "USD", 3_500, 3),
        ("2026-03-09", "USD", -1_000, 1),
    ]
    assert _summary(await earnings("MONTH")) == [
        ("2026-03-01", "EUR", 700, 1),
        ("2026-03-01", "USD", 2_500, 4),
    ]
    assert _summary(await earnings("MONTH", currency="usd")) == [("2026-03-01", "USD", 2_500, 4)]

    # A range inside a day covers the whole day; February stays out of March.
    narrow = await client.data(
        EARNINGS,
        {"period": "DAY", "from": march(3, 10).isoformat(), "until": march(3, 11).isoformat()},
        token=admin.access,
    )
    assert _summary(narrow) == [("2026-03-03", "USD", 2_000, 1)]


async def test_earnings_ranges_are_validated(runtime: Runtime, client: GraphQLClient) -> None:
    admin = await logged_in_admin(client, runtime)
    for period, start, end in (
        ("DAY", march(3), march(2)),
        ("DAY", march(3), march(3)),
        ("DAY", datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)),
    ):
        variables = {"period": period, "from": start.isoformat(), "until": end.isoformat()}
        result = await client.execute(EARNINGS, variables, token=admin.access)
        assert graphql_error_codes(result) == ["INVALID_INPUT"], (variables, result)
    naive = {"period": "MONTH", "from": "2026-03-01T00:00:00", "until": "2026-04-01T00:00:00Z"}
    result = await client.execute(EARNINGS, naive, token=admin.access)
    assert graphql_error_codes(result) == ["INVALID_INPUT"]
    # Fourteen months of months is fine.
    months = {
        "period": "MONTH",
        "from": datetime(2025, 1, 1, tzinfo=UTC).isoformat(),
        "until": datetime(2026, 3, 1, tzinfo=UTC).isoformat(),
    }
    assert (await client.data(EARNINGS, months, token=admin.access))["commissionEarnings"] == []


# --- webhook events --------------------------------------------------------------------


async def _dead_event(runtime: Runtime) -> str:
    """An event whose handler failed its only attempt."""
    services = with_settings(runtime, webhook_max_attempts=1).services
    body = stripe_event(FLAKY)
    await receive(services, body, signature(body, webhook_secret(services)), Flaky().table)
    assert (await stored(event_id_of(body))).status.value == "dead"
    return event_id_of(body)


async def _retry(client: GraphQLClient, who: Tokens, global_id: str) -> dict[str, Any]:
    return await client.mutate(
        "retryWebhookEvent",
        {"id": global_id},
        "event { id eventId status attempts lastError processedAt }",
        token=who.access,
    )


async def test_dead_webhook_events_are_listed_and_retried_by_admins(
    runtime: Runtime, client: GraphQLClient, base_url: str
) -> None:
    admin = await logged_in_admin(client, runtime)
    member = await client.member("eve@example.com")
    async with httpx.AsyncClient(base_url=base_url) as http:
        ignored = stripe_event()
        await post_event(http, ignored, signature(ignored, webhook_secret(runtime.services)))
    dead_id = await _dead_event(runtime)

    everything = await client.data(WEBHOOKS, {}, token=admin.access)
    assert [e["node"]["eventId"] for e in everything["webhookEvents"]["edges"]] == [
        dead_id,
        event_id_of(ignored),
    ]
    dead = await client.data(WEBHOOKS, {"status": "DEAD"}, token=admin.access)
    [edge] = dead["webhookEvents"]["edges"]
    node = edge["node"]
    assert node["eventId"] == dead_id and node["type"] == FLAKY and node["attempts"] == 1
    assert node["lastError"] == "NotReady: the payment it follows is not recorded"
    assert node["payload"]["id"] == dead_id and node["processedAt"] is None
    by_type = await client.data(WEBHOOKS, {"type": FLAKY}, token=admin.access)
    assert [e["node"]["eventId"] for e in by_type["webhookEvents"]["edges"]] == [dead_id]

    forbidden = await client.execute(
        "mutation($i: RetryWebhookEventInput!) { retryWebhookEvent(input: $i) { errors { code } } }",
        {"i": {"id": node["id"]}},
        token=member.access,
    )
    assert graphql_error_codes(forbidden) == ["FORBIDDEN"]
    assert (await stored(dead_id)).status.value == "dead"

    # Retried with the handlers the server runs, where this test type has none: it is
    # processed again (one fresh attempt) and ends as ignored.
    payload = await _retry(client, admin, node["id"])
    assert payload["errors"] == [], payload
    assert payload["event"]["eventId"] == dead_id
    assert payload["event"]["status"] == "IGNORED" and payload["event"]["attempts"] == 1
    assert payload["event"]["lastError"] is None and payload["event"]["processedAt"]
    [audited] = await AuditEvent.find({"kind": AuditKind.WEBHOOK_EVENT_RETRIED.value}).to_list()
    assert audited.actor_id == object_id(admin.user_id)
    assert audited.details["event_id"] == dead_id and audited.details["type"] == FLAKY
    assert audited.details["attempts_before"] == 1

    again = await _retry(client, admin, node["id"])
    assert error_codes(again) == ["INVALID_STATE"] and again["event"] is None
    assert "ignored, not dead" in again["errors"][0]["message"]
    wrong_type = await _retry(client, admin, admin.user_id)
    assert error_codes(wrong_type) == ["INVALID_ID"]
    assert await AuditEvent.find({"kind": AuditKind.WEBHOOK_EVENT_RETRIED.value}).count() == 1
