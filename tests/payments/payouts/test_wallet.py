"""The provider's wallet: figures per currency and the history, read from the ledger."""

from __future__ import annotations

from documents.money import Money
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient, graphql_error_codes
from tests.support.marketplace import poster
from tests.support.payments.escrow import (
    assert_ledger_clean,
    assigned_task,
    onboard,
    sandbox,
    sandbox_pay,
    task_escrow,
)
from tests.support.payments.ledger import usd
from tests.support.payments.wallets import (
    MY_WALLET,
    figures,
    fund,
    onboarded_provider,
    payout_id_of,
    request_withdrawal,
    wallet,
)

NODE = "query($id: ID!) { node(id: $id) { ... on Withdrawal { id status } } }"


async def test_the_wallet_shows_each_currency_and_every_movement_newest_first(
    client: GraphQLClient, runtime: Runtime
) -> None:
    who = await onboarded_provider(client, runtime, "history@example.com")
    await fund(who, usd(8_000))
    await fund(who, Money(amount=500, currency="JPY"))
    payload = await request_withdrawal(client, who, 3_000)
    gateway = sandbox(runtime)
    await gateway.fail_payout(await payout_id_of(payload["withdrawal"]["id"]))
    await gateway.drain()
    await request_withdrawal(client, who, 1_000)

    found = await wallet(client, who)

    assert [b["currency"] for b in found["balances"]] == ["JPY", "USD"]
    assert figures(found, "JPY")["available"] == 500
    assert figures(found) == {
        "balance": 7_000,
        "available": 7_000,
        "pending": 0,
        "inFlight": 1_000,
        "paidOut": 0,
    }
    history = [
        (edge["node"]["kind"], edge["node"]["amount"]["amount"], edge["node"]["amount"]["currency"])
        for edge in found["transactions"]["edges"]
    ]
    assert history == [
        ("PAYOUT_REQUESTED", -1_000, "USD"),
        ("PAYOUT_FAILED", 3_000, "USD"),
        ("PAYOUT_REQUESTED", -3_000, "USD"),
        ("ESCROW_RELEASED", 500, "JPY"),
        ("ESCROW_RELEASED", 8_000, "USD"),
    ]


async def test_wallets_and_withdrawals_are_their_providers_own(
    client: GraphQLClient, runtime: Runtime
) -> None:
    owner = await onboarded_provider(client, runtime, "owner-wallet@example.com")
    other = await onboarded_provider(client, runtime, "other-wallet@example.com")
    await fund(owner, usd(1_000))
    withdrawal_id = (await request_withdrawal(client, owner, 400))["withdrawal"]["id"]

    assert (await wallet(client, other))["balances"] == []
    mine = await client.data(NODE, {"id": withdrawal_id}, token=owner.access)
    assert mine["node"] == {"id": withdrawal_id, "status": "IN_TRANSIT"}
    theirs = await client.data(NODE, {"id": withdrawal_id}, token=other.access)
    assert theirs["node"] is None

    customer = await poster(client, "no-wallet@example.com")
    result = await client.execute(MY_WALLET, token=customer.access)
    assert graphql_error_codes(result) == ["FORBIDDEN"]


async def test_a_deal_shows_as_pending_then_available_then_paid_out(
    client: GraphQLClient, runtime: Runtime
) -> None:
    """The whole way of the provider's share: held in escrow, released to the wallet once
    the payout account is enabled, withdrawn to the bank."""
    deal = await assigned_task(client, amount=11_000)
    escrow = await task_escrow(client, deal.poster, deal.task_id)
    assert escrow is not None
    share = escrow["fees"]["providerShare"]["amount"]
    await sandbox_pay(client, deal.poster, escrow["id"])
    gateway = sandbox(runtime)
    await gateway.drain()

    assert figures(await wallet(client, deal.tasker), "AUD")["pending"] == share

    for name, who in (("startTask", deal.tasker), ("submitTask", deal.tasker)):
        moved = await client.mutate(name, {"taskId": deal.task_id}, token=who.access)
        assert moved["errors"] == []
    completed = await client.mutate(
        "completeTask", {"taskId": deal.task_id}, token=deal.poster.access
    )
    assert completed["errors"] == []
    await onboard(client, runtime, deal.tasker)  # account.updated releases the escrow
    await gateway.drain()
    assert figures(await wallet(client, deal.tasker), "AUD") == {
        "balance": share,
        "available": share,
        "pending": 0,
        "inFlight": 0,
        "paidOut": 0,
    }

    payload = await request_withdrawal(client, deal.tasker, share, "AUD")
    await gateway.pay_out(await payout_id_of(payload["withdrawal"]["id"]))
    await gateway.drain()
    after = figures(await wallet(client, deal.tasker), "AUD")
    assert (after["available"], after["paidOut"]) == (0, share)
    await assert_ledger_clean()
