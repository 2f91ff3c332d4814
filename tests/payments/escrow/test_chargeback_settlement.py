"""An admin settles a lost chargeback by keeping what the escrow holds to cover the loss:
posted once through the ledger, audited, and leaving the escrow in a clear state."""

from __future__ import annotations

import asyncio
from typing import Any

from documents.accounts.audit import AuditEvent, AuditKind
from documents.events import EventKind
from documents.payments import ledger_accounts
from documents.payments.escrow import Escrow, EscrowStatus
from documents.payments.ledger import MovementKind
from server.runtime import Runtime
from tests.payments.escrow.test_admin_escrows import refund, release
from tests.payments.escrow.test_disputes import (
    chargeback,
    deliver,
    opened,
    paid_task,
    postings,
    told,
)
from tests.support.graphql_client import GraphQLClient, Tokens, error_codes, graphql_error_codes
from tests.support.marketplace import logged_in_admin
from tests.support.payments.escrow import assert_ledger_clean, balance, global_id, stored_escrow
from tests.support.payments.webhooks import chargeback_object

ESCROW = "escrow { id status }"


async def settle(client: GraphQLClient, who: Tokens, escrow: Escrow) -> dict[str, Any]:
    return await client.mutate(
        "adminSettleChargeback",
        {"escrowId": global_id(escrow), "note": "The bank sided with the card holder."},
        ESCROW,
        token=who.access,
    )


async def charged_back(
    client: GraphQLClient, runtime: Runtime, escrow: Escrow, amount: int | None = None
) -> None:
    """The payer's bank disputes `amount` (default: all) of the payment, and wins."""
    assert escrow.charge_id is not None
    disputed = chargeback_object(
        "dp_test",
        charge=escrow.charge_id,
        payment_intent=escrow.payment_intent_id,
        amount=escrow.fees.charged.amount if amount is None else amount,
        currency=escrow.fees.charged.currency,
    )
    await deliver(client, runtime, "charge.dispute.created", disputed, 1)
    await deliver(client, runtime, "charge.dispute.closed", {**disputed, "status": "lost"}, 1)


async def test_the_escrow_covers_a_lost_chargeback_once_and_ends_charged_back(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal, escrow = await paid_task(client, runtime)  # 110.00 AUD held of 121.00 charged
    assert escrow.id is not None
    await charged_back(client, runtime, escrow)
    assert await balance(ledger_accounts.platform_revenue()) == 1100 - 12100  # the platform's loss
    admin = await logged_in_admin(client, runtime)
    forbidden = await client.execute(
        "mutation($i: AdminSettleChargebackInput!) { adminSettleChargeback(input: $i) { "
        "errors { code } } }",
        {"i": {"escrowId": global_id(escrow)}},
        token=deal.poster.access,
    )
    assert graphql_error_codes(forbidden) == ["FORBIDDEN"]

    settled = await settle(client, admin, escrow)
    assert settled["errors"] == [] and settled["escrow"]["status"] == "CHARGED_BACK", settled
    assert await balance(ledger_accounts.escrow(escrow.id)) == 0
    assert await balance(ledger_accounts.platform_revenue()) == 0  # the fee earned, less nothing
    assert await balance(ledger_accounts.chargeback(escrow.id)) == 0
    assert await balance(ledger_accounts.funding(escrow.payer_id)) == 0  # the bank gave it back
    assert await postings(escrow, MovementKind.CHARGEBACK_COVERED) == 1
    audited = await AuditEvent.find_one(AuditEvent.kind == AuditKind.CHARGEBACK_SETTLED_BY_ADMIN)
    assert audited is not None and audited.details["amount"] == {"amount": 11000, "currency": "AUD"}
    assert audited.details["note"] == "The bank sided with the card holder."
    assert await told(deal.tasker.user_id, EventKind.CHARGEBACK_SETTLED)
    assert await told(deal.poster.user_id, EventKind.CHARGEBACK_SETTLED)

    # Final: nothing more moves, however asked.
    again = await settle(client, admin, escrow)
    assert error_codes(again) == ["INVALID_STATE"] and again["escrow"] is None
    assert error_codes(await release(client, admin, global_id(escrow))) == ["INVALID_STATE"]
    assert error_codes(await refund(client, admin, global_id(escrow))) == ["INVALID_STATE"]
    assert await postings(escrow, MovementKind.CHARGEBACK_COVERED) == 1
    assert (await stored_escrow(global_id(escrow))).status is EscrowStatus.CHARGED_BACK
    await assert_ledger_clean()


async def test_concurrent_settlements_move_the_money_once(
    client: GraphQLClient, runtime: Runtime
) -> None:
    _deal, escrow = await paid_task(client, runtime)
    assert escrow.id is not None
    await charged_back(client, runtime, escrow)
    admin = await logged_in_admin(client, runtime)

    results = await asyncio.gather(*(settle(client, admin, escrow) for _ in range(5)))
    codes = sorted(tuple(error_codes(result)) for result in results)
    assert codes == [(), *[("INVALID_STATE",)] * 4], results
    assert await postings(escrow, MovementKind.CHARGEBACK_COVERED) == 1
    assert await balance(ledger_accounts.escrow(escrow.id)) == 0
    assert await balance(ledger_accounts.platform_revenue()) == 0
    audits = AuditEvent.find(AuditEvent.kind == AuditKind.CHARGEBACK_SETTLED_BY_ADMIN)
    assert await audits.count() == 1
    await assert_ledger_clean()


async def test_after_a_partial_chargeback_the_rest_is_released_as_usual(
    client: GraphQLClient, runtime: Runtime
) -> None:
    _deal, escrow = await paid_task(client, runtime)
    assert escrow.id is not None
    await charged_back(client, runtime, escrow, amount=5000)
    admin = await logged_in_admin(client, runtime)

    settled = await settle(client, admin, escrow)
    assert settled["errors"] == [] and settled["escrow"]["status"] == "DISPUTED", settled
    assert await balance(ledger_accounts.escrow(escrow.id)) == 11000 - 5000
    assert await balance(ledger_accounts.platform_revenue()) == 1100
    assert error_codes(await refund(client, admin, global_id(escrow))) == ["INVALID_STATE"]

    released = await release(client, admin, global_id(escrow))
    assert released["errors"] == [], released
    assert (await stored_escrow(global_id(escrow))).status is EscrowStatus.RELEASED
    assert await balance(ledger_accounts.escrow(escrow.id)) == 0
    # The release's commission (10 % of the price) first, the provider the rest.
    assert await balance(ledger_accounts.wallet(escrow.provider_id)) == 6000 - 1100
    assert await balance(ledger_accounts.platform_revenue()) == 1100 + 1100
    assert error_codes(await settle(client, admin, escrow)) == ["INVALID_STATE"]
    await assert_ledger_clean()


async def test_only_a_lost_chargeback_of_money_still_held_is_settled(
    client: GraphQLClient, runtime: Runtime
) -> None:
    admin = await logged_in_admin(client, runtime)
    # No chargeback at all, or one still open.
    deal, escrow = await paid_task(client, runtime, tag="-open")
    refused = await settle(client, admin, escrow)
    assert error_codes(refused) == ["INVALID_STATE"] and "lost" in refused["errors"][0]["message"]
    await deliver(client, runtime, "charge.dispute.created", chargeback(escrow), 1)
    assert error_codes(await settle(client, admin, escrow)) == ["INVALID_STATE"]
    # A lost one on a deal its parties dispute: the dispute is decided first.
    deal, escrow = await paid_task(client, runtime, tag="-disputed")
    await opened(client, deal.poster, deal.task_id)
    await charged_back(client, runtime, escrow)
    refused = await settle(client, admin, escrow)
    assert error_codes(refused) == ["INVALID_STATE"]
    assert "resolveDispute" in refused["errors"][0]["message"]
    # A lost one after the money was released: nothing is left to cover it with.
    deal, escrow = await paid_task(client, runtime, tag="-released")
    for name, who in (("submitTask", deal.tasker), ("completeTask", deal.poster)):
        assert (await client.mutate(name, {"taskId": deal.task_id}, token=who.access))[
            "errors"
        ] == []
    released = await stored_escrow(global_id(escrow))
    assert released.status is EscrowStatus.RELEASED
    await charged_back(client, runtime, released)
    assert error_codes(await settle(client, admin, released)) == ["INVALID_STATE"]
    assert await postings(released, MovementKind.CHARGEBACK_COVERED) == 0
    await assert_ledger_clean()
