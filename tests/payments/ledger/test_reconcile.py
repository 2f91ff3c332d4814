"""`gigql reconcile`: our escrows, refunds, releases and withdrawals against the gateway's
objects of a period. Against the sandbox in this process for the comparison itself, and
against the Stripe adapter over HTTP (the Stripe stub and localstripe) for its listings
and the command as a real process."""

from __future__ import annotations

import asyncio
import json
import subprocess
from enum import StrEnum
from pathlib import Path

from beanie import PydanticObjectId

from documents.payments import ledger_accounts
from documents.payments.escrow import Escrow
from documents.payments.ledger import MovementKind, Ref, transfer
from documents.payments.payouts import Withdrawal, WithdrawalStatus
from documents.settings import Settings
from integrations.payments.stripe_gateway import StripeGateway
from resolvers.payments.reconcile.against_gateway import reconcile
from resolvers.payments.reconcile.report import Kind, Mismatch, Reconciliation
from server.cli import RECONCILE_MISMATCHES_EXIT
from server.runtime import Runtime
from tests.payments.gateways.conftest import localstripe_url, stripe_gateway, stripe_stub
from tests.payments.gateways.harness import SECRET_KEY, WEBHOOK_SECRET, new_key
from tests.payments.gateways.stripe_stub import StripeStub
from tests.support.gigql_process import assert_one_line_error, gigql_env, run_gigql
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import object_id
from tests.support.payments.escrow import (
    TaskDeal,
    assert_ledger_clean,
    assigned_task,
    global_id,
    onboard,
    sandbox,
    sandbox_pay,
    stored_escrow,
    task_escrow,
)
from tests.support.payments.ledger import fund_wallet, post, usd
from tests.support.payments.reconcile import next_second, until_now
from tests.support.payments.wallets import payout_id_of, request_withdrawal

# The Stripe adapter's fixtures (localstripe, the stub in front of it, the gateway).
__all__ = ["localstripe_url", "stripe_gateway", "stripe_stub"]


async def paid(client: GraphQLClient, tag: str, amount: int = 11000) -> tuple[TaskDeal, Escrow]:
    deal = await assigned_task(client, amount=amount, tag=tag)
    escrow = await task_escrow(client, deal.poster, deal.task_id)
    assert escrow is not None
    payment = await sandbox_pay(client, deal.poster, escrow["id"])
    assert payment["errors"] == [], payment
    return deal, await stored_escrow(escrow["id"])


async def released(client: GraphQLClient, runtime: Runtime, tag: str) -> tuple[TaskDeal, Escrow]:
    deal, escrow = await paid(client, tag)
    await onboard(client, runtime, deal.tasker)
    for name, who in (("startTask", deal.tasker), ("submitTask", deal.tasker)):
        moved = await client.mutate(name, {"taskId": deal.task_id}, token=who.access)
        assert moved["errors"] == [], moved
    done = await client.mutate("completeTask", {"taskId": deal.task_id}, token=deal.poster.access)
    assert done["errors"] == [], done
    await sandbox(runtime).drain()
    return deal, await stored_escrow(global_id(escrow))


async def refunded_at_the_gateway(runtime: Runtime, escrow: Escrow, amount: int) -> str:
    """A refund made in Stripe's dashboard: no metadata of ours; `charge.refunded` tells."""
    refund = await runtime.services.payments.refund(
        escrow.payment_intent_id or "", amount=amount, metadata={}, idempotency_key=new_key("dash")
    )
    await sandbox(runtime).drain()
    return refund.id


def found(result: Reconciliation) -> set[tuple[StrEnum, StrEnum | None, str]]:
    return {(f.check, f.kind, f.subject) for f in result.findings}


async def test_clean_after_payments_releases_refunds_and_a_withdrawal(
    client: GraphQLClient, runtime: Runtime
) -> None:
    start = await next_second()
    deal, _ = await released(client, runtime, "released")
    _, refunded = await paid(client, "dashboard")
    await refunded_at_the_gateway(runtime, refunded, 3000)
    cancelled, _ = await paid(client, "cancelled")
    cancel = await client.mutate(
        "cancelTask",
        {"taskId": cancelled.task_id, "reason": "Plans changed."},
        token=cancelled.poster.access,
    )
    assert cancel["errors"] == [], cancel
    await assigned_task(client, tag="unpaid")
    withdrawal = await request_withdrawal(client, deal.tasker, 4000, "AUD")
    assert withdrawal["errors"] == [], withdrawal
    await sandbox(runtime).pay_out(await payout_id_of(withdrawal["withdrawal"]["id"]))
    await sandbox(runtime).drain()

    result = await reconcile(runtime.services.payments, start, until_now())

    assert result.findings == []
    assert result.compared == {Kind.PAYMENT: 4, Kind.REFUND: 2, Kind.TRANSFER: 1, Kind.PAYOUT: 1}
    assert result.as_text().splitlines() == [
        f"reconcile ok: {start.isoformat()} to {result.created_until.isoformat()}: "
        "4 payment(s), 2 refund(s), 1 transfer(s), 1 payout(s) compared"
    ]
    await assert_ledger_clean()


async def test_each_kind_of_mismatch_is_reported_once(
    client: GraphQLClient, runtime: Runtime
) -> None:
    gateway = runtime.services.payments
    before = await gateway.create_payment_intent(
        amount=500,
        currency="AUD",
        transfer_group="elsewhere",
        metadata={},
        idempotency_key=new_key("old"),
    )
    start = await next_second()
    stray = await gateway.create_payment_intent(
        amount=700,
        currency="AUD",
        transfer_group="elsewhere",
        metadata={},
        idempotency_key=new_key("stray"),
    )
    deal, released_one = await released(client, runtime, "released")
    _, dashboard = await paid(client, "dashboard")
    refund_id = await refunded_at_the_gateway(runtime, dashboard, 3000)
    _, unpaid = await paid(client, "unrecorded")
    overcharged = await assigned_task(client, tag="overcharged")
    escrow_data = await task_escrow(client, overcharged.poster, overcharged.task_id)
    assert escrow_data is not None
    wrong_amount = await stored_escrow(escrow_data["id"])
    withdrawal = await request_withdrawal(client, deal.tasker, 4000, "AUD")
    assert withdrawal["errors"] == [], withdrawal
    payout_id = await payout_id_of(withdrawal["withdrawal"]["id"])
    withdrawal_id = object_id(withdrawal["withdrawal"]["id"])

    # What our records would look like had writes been lost or damaged.
    escrows = Escrow.get_pymongo_collection()
    await escrows.update_one({"_id": wrong_amount.id}, {"$inc": {"fees.customer_fee.amount": 100}})
    await escrows.update_one(
        {"_id": dashboard.id},
        {"$set": {"refunds": [], "refunded.amount": 0, "status": "held"}},
    )
    await escrows.update_one({"_id": released_one.id}, {"$set": {"transfer_id": "tr_lost"}})
    await escrows.update_one({"_id": unpaid.id}, {"$set": {"status": "awaiting_payment"}})
    await Withdrawal.get_pymongo_collection().update_one(
        {"_id": withdrawal_id}, {"$inc": {"amount.amount": 1}}
    )

    result = await reconcile(gateway, start, until_now())

    assert found(result) == {
        (Mismatch.MISSING_HERE, Kind.PAYMENT, stray.id),
        (
            Mismatch.AMOUNT,
            Kind.PAYMENT,
            f"{wrong_amount.payment_intent_id} (escrow {wrong_amount.id})",
        ),
        (Mismatch.STATUS, Kind.PAYMENT, f"{unpaid.payment_intent_id} (escrow {unpaid.id})"),
        (Mismatch.NOT_POSTED, Kind.PAYMENT, f"escrow {unpaid.id}"),
        (Mismatch.MISSING_HERE, Kind.REFUND, f"{refund_id} (escrow {dashboard.id})"),
        (Mismatch.NOT_POSTED, Kind.REFUND, f"escrow {dashboard.id}"),
        (
            Mismatch.MISSING_HERE,
            Kind.TRANSFER,
            f"{released_one.transfer_id} (escrow {released_one.id})",
        ),
        (Mismatch.MISSING_AT_GATEWAY, Kind.TRANSFER, f"tr_lost (escrow {released_one.id})"),
        (Mismatch.AMOUNT, Kind.PAYOUT, f"{payout_id} (withdrawal {withdrawal_id})"),
        (Mismatch.NOT_POSTED, Kind.PAYOUT, f"withdrawal {withdrawal_id}"),
    }
    assert len(result.findings) == len(found(result))
    assert before.id not in result.as_text()
    details = {(f.check, f.kind): f.detail for f in result.findings}
    assert details[Mismatch.AMOUNT, Kind.PAYMENT] == "gateway 121.00 AUD, ours 122.00 AUD"
    assert details[Mismatch.STATUS, Kind.PAYMENT] == "gateway succeeded, escrow awaiting_payment"
    lines = result.as_text().splitlines()
    assert lines[0].startswith(f"reconcile 10 mismatch(es): {start.isoformat()}")
    assert (
        f"missing_here: payment {stray.id}: 7.00 AUD requires_payment_method, no escrow of ours"
        in lines
    )
    assert len(lines) == 11
    assert result.as_json()["findings"][0].keys() == {"mismatch", "kind", "subject", "detail"}


# -- the Stripe adapter over HTTP ------------------------------------------------------


async def onboarded_account(gateway: StripeGateway, stub: StripeStub) -> str:
    account = await gateway.create_connected_account(
        email="p@example.com", country="AU", idempotency_key=new_key("acct")
    )
    stub.complete_onboarding(account.id)
    return account.id


async def test_the_stripe_adapter_lists_each_accounts_payouts_of_a_period_across_pages(
    stripe_gateway: StripeGateway, stripe_stub: StripeStub
) -> None:
    first, second = [await onboarded_account(stripe_gateway, stripe_stub) for _ in range(2)]

    async def payout(account: str, amount: int) -> str:
        made = await stripe_gateway.create_payout(
            account_id=account,
            amount=amount,
            currency="AUD",
            metadata={},
            idempotency_key=new_key("po"),
        )
        return made.id

    earlier = await payout(first, 100)
    start = await next_second()
    mine = [await payout(first, amount) for amount in (200, 300, 400)]
    theirs = await payout(second, 500)

    listed = [p async for p in stripe_gateway.list_payouts(first, start, until_now())]

    assert sorted(p.id for p in listed) == sorted(mine)  # three: more than a page of two
    assert {p.account_id for p in listed} == {first}
    assert earlier not in {p.id for p in listed} and theirs not in {p.id for p in listed}
    assert sorted(p.amount for p in listed) == [200, 300, 400]


async def test_gigql_reconcile_against_stripe_as_a_process(
    settings: Settings, tmp_path: Path, stripe_gateway: StripeGateway, stripe_stub: StripeStub
) -> None:
    account = await onboarded_account(stripe_gateway, stripe_stub)
    start = await next_second()
    provider = PydanticObjectId()
    await fund_wallet(provider, usd(5000))
    withdrawal = Withdrawal(
        id=PydanticObjectId(),
        provider_id=provider,
        account_id=account,
        amount=usd(2000),
        status=WithdrawalStatus.IN_TRANSIT,
    )
    assert withdrawal.id is not None
    await post(
        f"withdrawal:{withdrawal.id}:request",
        MovementKind.PAYOUT_REQUESTED,
        transfer(
            ledger_accounts.wallet(provider), ledger_accounts.payout_in_flight(provider), usd(2000)
        ),
        {Ref.PAYOUT: withdrawal.id},
    )
    made = await stripe_gateway.create_payout(
        account_id=account,
        amount=2000,
        currency="USD",
        metadata={"withdrawal_id": str(withdrawal.id)},
        idempotency_key=new_key("po"),
    )
    withdrawal.payout_id = made.id
    await withdrawal.insert()
    unknown = PydanticObjectId()
    stray = await stripe_gateway.create_payout(
        account_id=account,
        amount=900,
        currency="USD",
        metadata={"withdrawal_id": str(unknown)},
        idempotency_key=new_key("po"),
    )
    assert settings.mongodb_url is not None
    env = gigql_env(
        tmp_path / "data",
        MONGODB_URL=settings.mongodb_url,
        GIGQL_MONGODB_DATABASE=settings.mongodb_database,
        STRIPE_SECRET_KEY=SECRET_KEY,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        GIGQL_STRIPE_API_BASE=stripe_stub.url,
    )
    period = ("--from", start.isoformat(), "--to", until_now().isoformat())

    def gigql(*args: str) -> subprocess.CompletedProcess[str]:
        return run_gigql(*args, env=env, cwd=tmp_path)

    text = await asyncio.to_thread(gigql, "reconcile", *period)
    as_json = await asyncio.to_thread(gigql, "reconcile", *period, "--json")
    earlier = await asyncio.to_thread(
        gigql, "reconcile", "--from", "2020-01-01", "--to", "2020-01-31"
    )

    assert text.returncode == RECONCILE_MISMATCHES_EXIT, (text.stdout, text.stderr)
    assert text.stdout.splitlines()[1:] == [
        f"missing_here: payout {stray.id} (withdrawal {unknown}): "
        f"9.00 USD pending from {account}, no such withdrawal"
    ]
    assert text.stdout.startswith("reconcile 1 mismatch(es): ")
    report = json.loads(as_json.stdout)
    assert as_json.returncode == RECONCILE_MISMATCHES_EXIT
    assert report["compared"] == {"payment": 0, "refund": 0, "transfer": 0, "payout": 2}
    assert [f["subject"] for f in report["findings"]] == [f"{stray.id} (withdrawal {unknown})"]
    assert earlier.returncode == 0, earlier.stderr
    assert earlier.stdout.splitlines() == [
        "reconcile ok: 2020-01-01T00:00:00+00:00 to 2020-02-01T00:00:00+00:00: "
        "0 payment(s), 0 refund(s), 0 transfer(s), 0 payout(s) compared"
    ]


async def test_gigql_reconcile_refuses_bad_dates_and_runs_on_the_sandbox(
    settings: Settings, tmp_path: Path
) -> None:
    assert settings.mongodb_url is not None
    env = gigql_env(tmp_path / "data", MONGODB_URL=settings.mongodb_url)
    stripe = {**env, "STRIPE_SECRET_KEY": SECRET_KEY, "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}

    def gigql(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        return run_gigql("reconcile", *args, env=environment, cwd=tmp_path)

    sandboxed = await asyncio.to_thread(gigql, env, "--from", "2026-01-01", "--to", "2026-01-02")
    bad = await asyncio.to_thread(gigql, stripe, "--from", "yesterday", "--to", "2026-01-02")
    backwards = await asyncio.to_thread(gigql, stripe, "--from", "2026-01-02", "--to", "2026-01-01")

    # The sandbox keeps its objects in the database: nothing to compare in that period.
    assert sandboxed.returncode == 0, sandboxed.stderr
    assert sandboxed.stdout.startswith("reconcile ok: 2026-01-01T00:00:00+00:00"), sandboxed.stdout
    assert_one_line_error(bad, "not an ISO date", "yesterday")
    assert_one_line_error(backwards, "--to must be later than --from")
