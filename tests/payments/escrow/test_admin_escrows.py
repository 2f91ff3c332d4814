"""Admins' escrow tools over GraphQL: the filtered list, and manual releases and refunds
(audited, typed errors for escrows that hold nothing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from documents.accounts.audit import AuditEvent, AuditKind
from documents.payments import ledger_accounts
from documents.payments.escrow import Escrow, EscrowStatus
from server.runtime import Runtime
from tests.payments.escrow.test_disputes import chargeback, deliver, opened, paid_task
from tests.support.graphql_client import GraphQLClient, Tokens, error_codes, graphql_error_codes
from tests.support.marketplace import logged_in_admin, object_id
from tests.support.payments.escrow import (
    assert_ledger_clean,
    assigned_task,
    balance,
    global_id,
    sandbox,
    stored_escrow,
    task_escrow,
)

ESCROWS = """query($first: Int, $after: String, $filter: EscrowFilter) {
  escrows(first: $first, after: $after, filter: $filter) {
    edges { node { id status payer { id } payee { id } refunded { amount }
      fees { charged { amount } } dispute { id status } } }
    pageInfo { hasNextPage endCursor }
  }
}"""
ESCROW = "escrow { id status refunded { amount } }"


async def listed(client: GraphQLClient, who: Tokens, **filters: Any) -> list[str]:
    data = await client.data(ESCROWS, {"filter": filters or None}, token=who.access)
    return [edge["node"]["id"] for edge in data["escrows"]["edges"]]


async def release(client: GraphQLClient, who: Tokens, escrow_id: str) -> dict[str, Any]:
    return await client.mutate(
        "adminReleaseEscrow",
        {"escrowId": escrow_id, "note": "Both sides agreed by phone."},
        ESCROW,
        token=who.access,
    )


async def refund(
    client: GraphQLClient, who: Tokens, escrow_id: str, amount: int | None = None
) -> dict[str, Any]:
    money = None if amount is None else {"amount": amount, "currency": "AUD"}
    return await client.mutate(
        "adminRefundEscrow",
        {"escrowId": escrow_id, "amount": money, "note": "Goodwill."},
        ESCROW,
        token=who.access,
    )


async def test_admins_list_and_filter_escrows(client: GraphQLClient, runtime: Runtime) -> None:
    first_deal, held = await paid_task(client, runtime, tag="-a")
    second_deal = await assigned_task(client, tag="-b")
    unpaid = await task_escrow(client, second_deal.poster, second_deal.task_id)
    assert unpaid is not None
    disputed = await opened(client, first_deal.poster, first_deal.task_id)
    admin = await logged_in_admin(client, runtime)

    newest_first = [unpaid["id"], global_id(held)]
    assert await listed(client, admin) == newest_first
    page = await client.data(ESCROWS, {"first": 1}, token=admin.access)
    assert page["escrows"]["pageInfo"]["hasNextPage"] is True
    after = await client.data(
        ESCROWS, {"after": page["escrows"]["pageInfo"]["endCursor"]}, token=admin.access
    )
    assert [e["node"]["id"] for e in after["escrows"]["edges"]] == [global_id(held)]
    assert await listed(client, admin, status="DISPUTED") == [global_id(held)]
    assert await listed(client, admin, status="AWAITING_PAYMENT") == [unpaid["id"]]
    assert await listed(client, admin, payerId=second_deal.poster.user_id) == [unpaid["id"]]
    assert await listed(client, admin, providerId=first_deal.tasker.user_id) == [global_id(held)]
    now = datetime.now(UTC)
    assert await listed(client, admin, createdFrom=(now - timedelta(hours=1)).isoformat()) == (
        newest_first
    )
    assert await listed(client, admin, createdTo=(now - timedelta(hours=1)).isoformat()) == []
    full = await client.data(ESCROWS, {"filter": {"status": "DISPUTED"}}, token=admin.access)
    assert full["escrows"]["edges"][0]["node"]["dispute"] == {
        "id": disputed["id"],
        "status": "OPEN",
    }

    member = await client.execute(ESCROWS, {}, token=first_deal.poster.access)
    assert graphql_error_codes(member) == ["FORBIDDEN"]
    backwards = await client.execute(
        ESCROWS,
        {"filter": {"createdFrom": now.isoformat(), "createdTo": now.isoformat()}},
        token=admin.access,
    )
    assert graphql_error_codes(backwards) == ["INVALID_INPUT"]


async def test_a_manual_release_is_audited_and_done_once(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal, escrow = await paid_task(client, runtime)
    admin = await logged_in_admin(client, runtime)
    forbidden = await client.execute(
        "mutation($i: AdminReleaseEscrowInput!) { adminReleaseEscrow(input: $i) { errors { code } } }",
        {"i": {"escrowId": global_id(escrow)}},
        token=deal.poster.access,
    )
    assert graphql_error_codes(forbidden) == ["FORBIDDEN"]

    released = await release(client, admin, global_id(escrow))
    assert released["errors"] == [], released
    await sandbox(runtime).drain()
    assert (await stored_escrow(global_id(escrow))).status is EscrowStatus.RELEASED
    assert await balance(ledger_accounts.wallet(escrow.provider_id)) == 9900
    [audited] = await AuditEvent.find({"kind": AuditKind.ESCROW_RELEASED_BY_ADMIN.value}).to_list()
    assert audited.actor_id == object_id(admin.user_id)
    assert audited.details["escrow_id"] == str(escrow.id)
    assert audited.details["amount"] == {"amount": 9900, "currency": "AUD"}
    assert audited.details["note"] == "Both sides agreed by phone."

    again = await release(client, admin, global_id(escrow))
    assert error_codes(again) == ["INVALID_STATE"] and again["escrow"] is None
    assert error_codes(await refund(client, admin, global_id(escrow))) == ["INVALID_STATE"]
    assert await AuditEvent.find({"kind": AuditKind.ESCROW_RELEASED_BY_ADMIN.value}).count() == 1
    await assert_ledger_clean()


async def test_manual_refunds_in_part_then_in_full(client: GraphQLClient, runtime: Runtime) -> None:
    _deal, escrow = await paid_task(client, runtime)
    admin = await logged_in_admin(client, runtime)
    assert error_codes(await refund(client, admin, global_id(escrow), 12101)) == ["INVALID_INPUT"]
    assert error_codes(await refund(client, admin, global_id(escrow), 0)) == ["INVALID_INPUT"]

    part = await refund(client, admin, global_id(escrow), 2100)
    assert part["errors"] == [], part
    await sandbox(runtime).drain()
    partly = await stored_escrow(global_id(escrow))
    assert partly.status is EscrowStatus.PARTIALLY_REFUNDED and partly.refunded.amount == 2100
    rest = await refund(client, admin, global_id(escrow))
    assert rest["errors"] == [], rest
    await sandbox(runtime).drain()
    refunded = await stored_escrow(global_id(escrow))
    assert refunded.status is EscrowStatus.REFUNDED and refunded.refunded.amount == 12100
    assert [r.amount.amount for r in refunded.refunds] == [2100, 10000]
    assert await balance(ledger_accounts.funding(escrow.payer_id)) == 0
    assert await balance(ledger_accounts.platform_revenue()) == 0
    audited = (
        await AuditEvent.find({"kind": AuditKind.ESCROW_REFUNDED_BY_ADMIN.value})
        .sort("at", "_id")
        .to_list()
    )
    assert [a.details["amount"]["amount"] for a in audited] == [2100, 10000]
    await assert_ledger_clean()


async def test_escrows_holding_nothing_or_under_dispute_are_refused(
    client: GraphQLClient, runtime: Runtime
) -> None:
    unpaid_deal = await assigned_task(client, tag="-unpaid")
    unpaid = await task_escrow(client, unpaid_deal.poster, unpaid_deal.task_id)
    assert unpaid is not None
    deal, escrow = await paid_task(client, runtime, tag="-disputed")
    await opened(client, deal.tasker, deal.task_id)
    admin = await logged_in_admin(client, runtime)
    for escrow_id in (unpaid["id"], global_id(escrow)):
        for payload in (
            await release(client, admin, escrow_id),
            await refund(client, admin, escrow_id, 100),
        ):
            assert error_codes(payload) == ["INVALID_STATE"], payload
    assert (
        "resolveDispute"
        in (await release(client, admin, global_id(escrow)))["errors"][0]["message"]
    )
    assert error_codes(await release(client, admin, deal.task_id)) == ["INVALID_ID"]
    assert await AuditEvent.find({"kind": {"$regex": "by_admin$"}}).count() == 0


async def test_an_escrow_frozen_by_a_lost_chargeback_is_released_by_hand(
    client: GraphQLClient, runtime: Runtime
) -> None:
    _deal, escrow = await paid_task(client, runtime)
    await deliver(client, runtime, "charge.dispute.created", chargeback(escrow), 1)
    await deliver(client, runtime, "charge.dispute.closed", chargeback(escrow, "lost"), 1)
    frozen = await stored_escrow(global_id(escrow))
    assert frozen.status is EscrowStatus.DISPUTED
    admin = await logged_in_admin(client, runtime)
    # The bank gave the payer the money back: a refund on top would pay them twice.
    refused = await refund(client, admin, global_id(escrow))
    assert error_codes(refused) == ["INVALID_STATE"]
    assert (await stored_escrow(global_id(escrow))).refunds == []
    released = await release(client, admin, global_id(escrow))
    assert released["errors"] == [], released
    await sandbox(runtime).drain()
    done: Escrow = await stored_escrow(global_id(escrow))
    assert done.status is EscrowStatus.RELEASED
    assert await balance(ledger_accounts.wallet(escrow.provider_id)) == 9900
    # The platform bore the chargeback: its fees, less the 121.00 the bank took back.
    assert await balance(ledger_accounts.platform_revenue()) == 2200 - 12100
    await assert_ledger_clean()
