"""A task's money end to end: accepted, paid in the sandbox, held, released or refunded."""

from __future__ import annotations

from documents.events import DomainEvent, EventKind
from documents.payments import ledger_accounts
from documents.payments.escrow import EscrowStatus
from documents.payments.ledger import MovementKind
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient, Tokens, error_codes
from tests.support.marketplace import object_id
from tests.support.payments.escrow import (
    CLIENT_SECRET,
    assert_ledger_clean,
    assigned_task,
    balance,
    escrow_postings,
    onboard,
    sandbox,
    sandbox_pay,
    stored_escrow,
    task_escrow,
    transfers_of,
)


async def move(client: GraphQLClient, name: str, who: Tokens, task_id: str, **extra: str) -> None:
    payload = await client.mutate(name, {"taskId": task_id, **extra}, token=who.access)
    assert payload["errors"] == [], payload


async def test_accept_pay_complete_releases_to_the_tasker(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal = await assigned_task(client, amount=11000)
    escrow = await task_escrow(client, deal.poster, deal.task_id)
    assert escrow is not None and escrow["status"] == "AWAITING_PAYMENT"
    assert escrow["fees"]["charged"]["amount"] == 12100  # the 10 % service fee on top
    assert escrow["fees"]["providerShare"]["amount"] == 9900  # less the 10 % commission
    assert await task_escrow(client, deal.tasker, deal.task_id) == escrow
    outsider = await client.member("outsider@example.com")
    assert await task_escrow(client, outsider, deal.task_id) is None

    secret = await client.data(CLIENT_SECRET, {"id": escrow["id"]}, token=deal.poster.access)
    assert secret["node"]["clientSecret"].startswith("pi_")
    secret = await client.data(CLIENT_SECRET, {"id": escrow["id"]}, token=deal.tasker.access)
    assert secret["node"]["clientSecret"] is None
    stored = await stored_escrow(escrow["id"])
    intent = await runtime.services.payments.retrieve_payment_intent(stored.payment_intent_id or "")
    assert intent.transfer_group == f"escrow:{stored.id}"
    assert intent.metadata["task_id"] == str(object_id(deal.task_id))

    assert error_codes(await sandbox_pay(client, deal.tasker, escrow["id"])) == ["FORBIDDEN"]
    paid = await sandbox_pay(client, deal.poster, escrow["id"])
    assert paid["errors"] == [] and paid["escrow"]["status"] == "HELD"
    payer, provider = stored.payer_id, stored.provider_id
    assert await balance(ledger_accounts.funding(payer)) == -12100
    assert await balance(ledger_accounts.escrow(stored.id)) == 11000  # type: ignore[arg-type]

    await onboard(client, runtime, deal.tasker)
    await move(client, "startTask", deal.tasker, deal.task_id)
    await move(client, "submitTask", deal.tasker, deal.task_id)
    assert (await task_escrow(client, deal.poster, deal.task_id) or {})["autoReleaseAt"]
    await move(client, "completeTask", deal.poster, deal.task_id)
    await sandbox(runtime).drain()

    released = await stored_escrow(escrow["id"])
    assert released.status is EscrowStatus.RELEASED and released.transfer_id
    assert await transfers_of(runtime, released) == [released.transfer_id]
    assert await balance(ledger_accounts.wallet(provider)) == 9900
    assert await balance(ledger_accounts.escrow(released.id)) == 0  # type: ignore[arg-type]
    assert await balance(ledger_accounts.platform_revenue()) == 2200
    kinds = [t.kind for t in await escrow_postings(released.id)]  # type: ignore[arg-type]
    assert kinds == [MovementKind.PAYMENT_RECEIVED, MovementKind.ESCROW_RELEASED]
    await assert_ledger_clean()
    told = await DomainEvent.find({"audience": provider}).to_list()
    assert {EventKind.PAYMENT_SUCCEEDED, EventKind.ESCROW_RELEASED} <= {e.kind for e in told}


async def test_a_declined_card_leaves_it_payable(client: GraphQLClient, runtime: Runtime) -> None:
    deal = await assigned_task(client)
    escrow = await task_escrow(client, deal.poster, deal.task_id)
    assert escrow is not None
    declined = await sandbox_pay(client, deal.poster, escrow["id"], "DECLINED")
    assert declined["escrow"]["status"] == "AWAITING_PAYMENT"
    assert declined["escrow"]["paymentFailureCode"] == "card_declined"
    asked = await sandbox_pay(client, deal.poster, escrow["id"], "REQUIRES_ACTION")
    assert asked["escrow"]["requiresAction"] is True
    paid = await sandbox_pay(client, deal.poster, escrow["id"])  # passes 3-D Secure
    assert paid["escrow"]["status"] == "HELD" and paid["escrow"]["paymentFailureCode"] is None
    again = await sandbox_pay(client, deal.poster, escrow["id"])
    assert error_codes(again) == ["INVALID_STATE"]


async def test_cancelling_an_assigned_task_refunds_in_full(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal = await assigned_task(client)
    escrow = await task_escrow(client, deal.poster, deal.task_id)
    assert escrow is not None
    await sandbox_pay(client, deal.poster, escrow["id"])
    await move(client, "cancelTask", deal.poster, deal.task_id, reason="Plans changed.")
    await sandbox(runtime).drain()
    refunded = await stored_escrow(escrow["id"])
    assert refunded.status is EscrowStatus.REFUNDED
    assert refunded.refunded == refunded.fees.charged and refunded.refunds[0].refund_id
    assert await balance(ledger_accounts.funding(refunded.payer_id)) == 0
    assert await balance(ledger_accounts.platform_revenue()) == 0
    await assert_ledger_clean()


async def test_cancelling_before_payment_cancels_the_intent(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal = await assigned_task(client)
    escrow = await task_escrow(client, deal.poster, deal.task_id)
    assert escrow is not None
    await move(client, "cancelTask", deal.poster, deal.task_id, reason="Plans changed.")
    await sandbox(runtime).drain()
    failed = await stored_escrow(escrow["id"])
    assert failed.status is EscrowStatus.FAILED and failed.deal_cancelled
    intent = await runtime.services.payments.retrieve_payment_intent(failed.payment_intent_id or "")
    assert intent.status == "canceled"
    assert error_codes(await sandbox_pay(client, deal.poster, escrow["id"])) == ["INVALID_STATE"]


async def test_a_release_waits_for_the_taskers_payout_account(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal = await assigned_task(client)
    escrow = await task_escrow(client, deal.poster, deal.task_id)
    assert escrow is not None
    await sandbox_pay(client, deal.poster, escrow["id"])
    for name, who in (("startTask", deal.tasker), ("submitTask", deal.tasker)):
        await move(client, name, who, deal.task_id)
    await move(client, "completeTask", deal.poster, deal.task_id)
    waiting = await stored_escrow(escrow["id"])
    assert waiting.status is EscrowStatus.RELEASING and waiting.transfer_id is None
    await onboard(client, runtime, deal.tasker)  # account.updated releases it
    await sandbox(runtime).drain()
    released = await stored_escrow(escrow["id"])
    assert released.status is EscrowStatus.RELEASED
    assert await balance(ledger_accounts.wallet(released.provider_id)) == 9900
    await assert_ledger_clean()
