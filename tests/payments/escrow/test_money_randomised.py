"""A seeded random marketplace: many task deals down random paths through GraphQL and the
sandbox gateway (cards paid, declined, authenticated or abandoned; work tried before the
money came or before it was handed in; tasks cancelled before or after payment, left
unpaid past their deadline, stepped back from by their tasker, completed, left to the
automatic release, refunded in part in the dashboard, their transfers reversed;
withdrawals paid, returned or refused). At the end
money is conserved, computed from the escrows and withdrawals alone and then compared
with the ledger, which verifies clean, and the gateway reconciles clean.

The seed is printed; `GIGQL_MONEY_SEED=<n>` replays (or explores) another run.
"""

from __future__ import annotations

import os
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from bson import ObjectId

from documents.clock import utcnow
from documents.marketplace.tasks import Task
from documents.payments import ledger_accounts
from documents.payments.escrow import PAID_STATUSES, Escrow, EscrowStatus, RefundStatus
from documents.payments.payouts import Withdrawal, WithdrawalStatus
from documents.payments.webhooks import WebhookEvent, WebhookStatus
from resolvers.marketplace.lapses import lapse_unpaid_deals
from resolvers.payments import ledger
from resolvers.payments.escrow.progress import sweep
from resolvers.payments.ledger_check import verify
from resolvers.payments.reconcile.against_gateway import reconcile
from server.runtime import Runtime
from tests.payments.gateways.harness import new_key
from tests.support.graphql_client import GraphQLClient, Tokens, error_codes
from tests.support.marketplace import make_offer, object_id, post_task, poster, tasker
from tests.support.payments.escrow import onboard, sandbox, sandbox_pay, stored_escrow, task_escrow
from tests.support.payments.reconcile import next_second, until_now
from tests.support.payments.wallets import payout_id_of, request_withdrawal

DEFAULT_SEED = 20261206
"""Chosen to take the run down every path (asserted); other seeds may miss some."""
SEED = int(os.environ.get("GIGQL_MONEY_SEED", DEFAULT_SEED))
DEALS = 40
CURRENCY = "AUD"


@dataclass
class Market:
    client: GraphQLClient
    runtime: Runtime
    rng: random.Random
    posters: list[Tokens]
    taskers: list[Tokens]
    onboarded: set[str] = field(default_factory=set)
    withdrawals: list[str] = field(default_factory=list)
    """Withdrawals still on their way to the bank (global ids)."""

    async def ok(self, name: str, who: Tokens, task_id: str, **extra: str) -> None:
        moved = await self.client.mutate(name, {"taskId": task_id, **extra}, token=who.access)
        assert moved["errors"] == [], (name, moved)

    async def settle(self) -> None:
        await sandbox(self.runtime).drain()


async def deal(market: Market) -> None:
    """One task deal down a random path."""
    rng, client = market.rng, market.client
    payer = rng.choice(market.posters)
    worker = rng.choice(market.taskers)
    task = await post_task(client, payer)
    offer = await make_offer(client, worker, task["id"], rng.randrange(1_000, 50_000))
    accepted = await client.mutate("acceptOffer", {"offerId": offer["id"]}, token=payer.access)
    assert accepted["errors"] == [], accepted
    escrow = await task_escrow(client, payer, task["id"])
    assert escrow is not None
    # Work before the money: refused, and nothing moves.
    early = await client.mutate("startTask", {"taskId": task["id"]}, token=worker.access)
    assert error_codes(early) == ["PAYMENT_REQUIRED"], early

    # The payer's card: declined or asking for 3-D Secure first, sometimes given up on.
    for outcome in rng.choice(
        [["SUCCEEDED"], ["DECLINED", "SUCCEEDED"], ["REQUIRES_ACTION", "SUCCEEDED"],
         ["REQUIRES_ACTION", "DECLINED"], ["DECLINED"], []]
    ):  # fmt: skip
        paid = await sandbox_pay(client, payer, escrow["id"], outcome)
        assert paid["errors"] == [], paid
    await market.settle()
    if (await stored_escrow(escrow["id"])).status is not EscrowStatus.HELD:
        unpaid = rng.random()
        if unpaid < 0.4:
            await market.ok("cancelTask", payer, task["id"], reason="Found someone else.")
        elif unpaid < 0.7:  # left past its deadline: the deal lapses, the task reopens
            deadline = market.runtime.services.settings.payment_deadline
            later = utcnow() + deadline + timedelta(minutes=1)
            assert await lapse_unpaid_deals(market.runtime.services, later) >= 1  # ones left too
            await market.settle()
        return

    path = rng.choice(
        ["cancel", "complete", "auto", "refund_then_complete", "hold", "reverse", "step_back"]
    )
    if path == "cancel":
        await market.ok("cancelTask", payer, task["id"], reason="Plans changed.")
        return
    if path == "step_back":
        await market.ok("stepBackFromTask", worker, task["id"], reason="Called away.")
        await market.settle()
        return
    if path == "refund_then_complete":
        stored = await stored_escrow(escrow["id"])
        await market.runtime.services.payments.refund(
            stored.payment_intent_id or "",
            amount=rng.randrange(1, stored.fees.charged.amount),
            metadata={},
            idempotency_key=new_key("dashboard"),
        )
        await market.settle()
    if path == "hold":
        return
    await market.ok("startTask", worker, task["id"])
    # Accepting work not handed in yet: refused.
    early = await client.mutate("completeTask", {"taskId": task["id"]}, token=payer.access)
    assert error_codes(early) == ["INVALID_STATE"], early
    await market.ok("submitTask", worker, task["id"])
    if path == "auto":
        return  # released by a later sweep, or still held at the end
    await market.ok("completeTask", payer, task["id"])
    await market.settle()
    if path == "reverse":
        await reverse_part(market, worker, escrow["id"])


async def reverse_part(market: Market, worker: Tokens, escrow_id: str) -> None:
    """The platform takes back part of the transfer (what the wallet still holds)."""
    escrow = await stored_escrow(escrow_id)
    wallet = await ledger.balance(ledger_accounts.wallet(object_id(worker.user_id)), CURRENCY)
    if escrow.transfer_id is None or wallet.amount < 1:
        return
    amount = market.rng.randrange(1, min(wallet.amount, escrow.release.to_provider.amount) + 1)  # type: ignore[union-attr]
    await market.runtime.services.payments.reverse_transfer(
        escrow.transfer_id, amount=amount, idempotency_key=new_key("reversal")
    )
    await market.settle()


async def money_moves(market: Market) -> None:
    """Between deals: automatic releases fall due, providers withdraw, banks answer."""
    rng, gateway = market.rng, sandbox(market.runtime)
    if rng.random() < 0.2:
        await sweep(market.runtime.services, utcnow() + timedelta(days=3))
        await market.settle()
    if rng.random() < 0.4:
        worker = rng.choice(market.taskers)
        wallet = await ledger.balance(ledger_accounts.wallet(object_id(worker.user_id)), CURRENCY)
        onboarded = worker.user_id in market.onboarded
        if wallet.amount and onboarded:
            asked = rng.randrange(1, wallet.amount + 1) if rng.random() < 0.9 else wallet.amount + 1
            payload = await request_withdrawal(market.client, worker, asked, CURRENCY)
            if asked > wallet.amount:
                assert error_codes(payload) == ["INSUFFICIENT_FUNDS"], payload
            else:
                assert payload["errors"] == [], payload
                market.withdrawals.append(payload["withdrawal"]["id"])
    if market.withdrawals and rng.random() < 0.5:
        withdrawal = market.withdrawals.pop(rng.randrange(len(market.withdrawals)))
        payout = await payout_id_of(withdrawal)
        if rng.random() < 0.8:
            await gateway.pay_out(payout)
        else:
            await gateway.fail_payout(payout, rng.choice(["account_closed", "no_account"]))
        await market.settle()


@dataclass
class Expected:
    """Where the payers' money should be, computed from escrows and withdrawals only."""

    charged: int = 0
    refunded: int = 0
    platform: int = 0
    in_escrows: dict[ObjectId, int] = field(default_factory=dict)
    provider_earned: dict[ObjectId, int] = field(default_factory=lambda: defaultdict(int))
    in_flight: dict[ObjectId, int] = field(default_factory=lambda: defaultdict(int))
    paid_out: dict[ObjectId, int] = field(default_factory=lambda: defaultdict(int))

    def add_escrow(self, escrow: Escrow) -> None:
        fees = escrow.fees
        if escrow.status not in PAID_STATUSES:
            assert escrow.refunded.amount == 0 and escrow.released_at is None
            return
        refunds = [r for r in escrow.refunds if r.status is RefundStatus.SUCCEEDED]
        assert sum(r.amount.amount for r in refunds) == escrow.refunded.amount
        self.charged += fees.charged.amount
        self.refunded += escrow.refunded.amount
        self.platform += fees.platform_on_hold.amount - sum(r.from_platform.amount for r in refunds)
        assert escrow.id is not None
        if escrow.released_at is None:
            taken = sum(r.from_escrow.amount for r in refunds)
            self.in_escrows[escrow.id] = fees.price.amount - fees.commission_on_hold.amount - taken
            return
        release = escrow.release
        assert release is not None
        self.platform += release.commission.amount
        self.in_escrows[escrow.id] = escrow.transfer_reversed.amount
        self.provider_earned[escrow.provider_id] += (
            release.to_provider.amount - escrow.transfer_reversed.amount
        )

    def add_withdrawal(self, withdrawal: Withdrawal) -> None:
        amount = withdrawal.amount.amount
        if withdrawal.status is WithdrawalStatus.PAID:
            self.paid_out[withdrawal.provider_id] += amount
        elif withdrawal.status is not WithdrawalStatus.FAILED:
            self.in_flight[withdrawal.provider_id] += amount

    def wallet(self, provider: ObjectId) -> int:
        return self.provider_earned[provider] - self.in_flight[provider] - self.paid_out[provider]


def assert_every_path_taken(
    escrows: list[Escrow], withdrawals: list[Withdrawal], tasks: list[Task]
) -> None:
    moves = {change.move for task in tasks for change in task.history}
    assert {"lapse", "step_back", "cancel", "complete"} <= moves, moves
    statuses = {escrow.status for escrow in escrows}
    # Unpaid deals end: cancelled, or lapsed past their deadline ("lapse" above).
    assert {
        EscrowStatus.FAILED,
        EscrowStatus.HELD,
        EscrowStatus.RELEASING,
        EscrowStatus.RELEASED,
        EscrowStatus.REFUNDED,
        EscrowStatus.DISPUTED,
    } <= statuses
    assert any(e.refunds and e.released_at for e in escrows)
    assert {WithdrawalStatus.PAID, WithdrawalStatus.FAILED} <= {w.status for w in withdrawals}


async def test_a_random_marketplace_conserves_money(
    client: GraphQLClient, runtime: Runtime
) -> None:
    print(f"money run seed {SEED} (GIGQL_MONEY_SEED={SEED} replays it)")
    rng = random.Random(SEED)  # noqa: S311 - a repeatable run, not a secret
    start = await next_second()
    market = Market(
        client,
        runtime,
        rng,
        posters=[await poster(client, f"payer{n}@example.com") for n in range(5)],
        taskers=[await tasker(client, f"worker{n}@example.com") for n in range(5)],
    )
    for worker in market.taskers[:4]:  # the last one never sets up payouts
        await onboard(client, runtime, worker)
        market.onboarded.add(worker.user_id)

    for _ in range(DEALS):
        await deal(market)
        await money_moves(market)
    await market.settle()

    # Computed from our records of each deal and withdrawal.
    expected = Expected()
    escrows = await Escrow.find().to_list()
    assert len(escrows) == DEALS
    for escrow in escrows:
        expected.add_escrow(escrow)
    withdrawals = await Withdrawal.find().to_list()
    for withdrawal in withdrawals:
        expected.add_withdrawal(withdrawal)
    statuses = {escrow.status for escrow in escrows}
    print(f"escrows: {sorted(statuses)}; withdrawals: {sorted({w.status for w in withdrawals})}")
    if SEED == DEFAULT_SEED:
        assert_every_path_taken(escrows, withdrawals, await Task.find().to_list())
    providers = [object_id(t.user_id) for t in market.taskers]
    kept = (
        expected.platform
        + sum(expected.in_escrows.values())
        + sum(expected.provider_earned[p] for p in providers)
    )
    assert expected.charged > 0 and expected.refunded > 0
    assert expected.charged == expected.refunded + kept, expected
    assert all(expected.wallet(p) >= 0 for p in providers), expected

    # The ledger agrees, account by account.
    async def balance(account: str) -> int:
        return (await ledger.balance(account, CURRENCY)).amount

    payers = {escrow.payer_id for escrow in escrows}
    assert sum([await balance(ledger_accounts.funding(p)) for p in payers]) == -(
        expected.charged - expected.refunded
    )
    assert await balance(ledger_accounts.platform_revenue()) == expected.platform
    for escrow_id, held in expected.in_escrows.items():
        assert await balance(ledger_accounts.escrow(escrow_id)) == held, escrow_id
    for provider in providers:
        assert await balance(ledger_accounts.wallet(provider)) == expected.wallet(provider)
        assert (
            await balance(ledger_accounts.payout_in_flight(provider))
            == expected.in_flight[provider]
        )
        assert await balance(ledger_accounts.paid_out(provider)) == expected.paid_out[provider]

    # Every webhook was handled, the ledger verifies, the gateway reconciles.
    unhandled = await WebhookEvent.find(
        {"status": {"$in": [WebhookStatus.FAILED.value, WebhookStatus.DEAD.value]}}
    ).to_list()
    assert unhandled == []
    verification = await verify()
    assert verification.ok, verification.as_text()
    reconciliation = await reconcile(runtime.services.payments, start, until_now())
    assert reconciliation.ok, reconciliation.as_text()
