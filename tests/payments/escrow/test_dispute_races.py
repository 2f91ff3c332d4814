"""A payment and a dispute of the same task committing at the same moment.

A payment's transaction reads the task's status (is it disputed?) and writes only its
escrow; opening a dispute writes the task and freezes the escrows holding money, and
deciding it thaws them and may return the task to work. A later milestone's escrow,
still awaiting payment, is what both sides concern: each test holds one transaction
after its reads and writes, runs the other, then lets the first go on. Without a write
both make, both would commit, the payment acting on the task's status from before the
other's move. A consistent end: the milestone paid while the task is disputed frozen
with the rest, one paid while it goes back to work held, and the ledger balanced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from documents.marketplace.tasks import TaskStatus
from documents.payments.escrow import FROZEN_BY_DEAL, EscrowStatus
from resolvers.common.deals import deal_disputed
from resolvers.payments.disputes import milestones as milestone_disputes
from resolvers.payments.escrow import events as escrow_events
from resolvers.payments.escrow import hooks as escrow_hooks
from resolvers.payments.escrow.escrows import change_escrow
from server.runtime import Runtime
from tests.marketplace.test_milestones import Split, act, task_escrows, working
from tests.payments.escrow.test_disputes import decided_by_admin, resolve
from tests.payments.escrow.test_milestone_disputes import (
    PARTS,
    open_dispute,
    statuses,
    task_status,
)
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import logged_in_admin
from tests.support.payments.escrow import assert_ledger_clean, sandbox, sandbox_pay

WAIT = 60
"""Seconds a test waits for the other side before failing rather than hanging."""

Wrapped = Callable[..., Awaitable[Any]]


class Hold:
    """Wraps a function a transaction calls (patched where the caller looks it up): its
    first call that `applies` returns, then waits until `release` is set. `calls` counts
    the calls (a retried transaction calls it again)."""

    def __init__(self, real: Wrapped, applies: Callable[..., bool] = lambda *a, **k: True):
        self.real, self.applies = real, applies
        self.reached, self.release = asyncio.Event(), asyncio.Event()
        self.calls = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        result = await self.real(*args, **kwargs)
        if not self.reached.is_set() and self.applies(*args, **kwargs):
            self.reached.set()
            await self.release.wait()
        return result


class Signal:
    """Wraps a function the other transaction calls: once `after` is set, a call that
    returns or raises (a write conflict) sets `then`. `calls` counts the calls."""

    def __init__(self, real: Wrapped, after: asyncio.Event, then: asyncio.Event):
        self.real, self.after, self.then = real, after, then
        self.calls = 0

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        try:
            return await self.real(*args, **kwargs)
        finally:
            if self.after.is_set():
                self.then.set()


def disputing(unit: Any, terms: Any, task: Any, **kwargs: Any) -> bool:
    return bool(task.status is TaskStatus.DISPUTED)


async def funded_second(client: GraphQLClient, runtime: Runtime) -> tuple[Split, str]:
    """A task in milestones, the first paid and in work, the second funded (its escrow
    awaiting payment): the id of the second's escrow."""
    deal = await working(client, runtime, PARTS)
    funded = await act(client, "fundMilestone", deal.poster, deal.task_id, 2)
    assert funded["errors"] == [], funded
    assert funded["milestone"]["escrow"]["status"] == "AWAITING_PAYMENT", funded
    return deal, funded["milestone"]["escrow"]["id"]


async def assert_frozen_together(
    client: GraphQLClient, runtime: Runtime, deal: Split, dispute_id: str
) -> None:
    """Both milestones frozen by the dispute; its decision holds the second again."""
    assert await task_status(deal) == "disputed"
    first, second = await task_escrows(deal.task_id)
    for escrow in (first, second):
        assert escrow.status is EscrowStatus.DISPUTED, escrow.history
        assert escrow.frozen_by == FROZEN_BY_DEAL and escrow.auto_release_at is None
    await assert_ledger_clean()
    await decided_by_admin(client, runtime, dispute_id, "RELEASE")
    assert (await statuses(client, deal))[:2] == [("APPROVED", "RELEASED"), ("PENDING", "HELD")]
    await assert_ledger_clean()


async def test_a_payment_reading_the_task_before_the_dispute_commits_ends_frozen(
    client: GraphQLClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    deal, second_id = await funded_second(client, runtime)
    # The payment holds after writing its escrow and reading the task (not disputed).
    payment = Hold(deal_disputed)
    dispute = Signal(escrow_hooks.task_moved, payment.reached, payment.release)
    monkeypatch.setattr(escrow_events, "deal_disputed", payment)
    monkeypatch.setattr(escrow_hooks, "task_moved", dispute)

    paying = asyncio.create_task(sandbox_pay(client, deal.poster, second_id))
    await asyncio.wait_for(payment.reached.wait(), WAIT)
    paid, opened = await asyncio.wait_for(
        asyncio.gather(paying, open_dispute(client, deal.poster, deal.task_id, 1)), WAIT
    )
    assert paid["errors"] == [], paid
    assert opened["errors"] == [], opened
    monkeypatch.undo()
    await assert_frozen_together(client, runtime, deal, opened["dispute"]["id"])
    assert dispute.calls >= 2  # the opening conflicted with the payment and was retried


async def test_a_payment_during_an_uncommitted_dispute_ends_frozen(
    client: GraphQLClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    deal, second_id = await funded_second(client, runtime)
    # The opening holds after moving the task and freezing what holds money.
    dispute = Hold(escrow_hooks.task_moved, disputing)
    payment = Signal(change_escrow, dispute.reached, dispute.release)
    monkeypatch.setattr(escrow_hooks, "task_moved", dispute)
    monkeypatch.setattr(escrow_events, "change_escrow", payment)

    opening = asyncio.create_task(open_dispute(client, deal.poster, deal.task_id, 1))
    await asyncio.wait_for(dispute.reached.wait(), WAIT)
    opened, paid = await asyncio.wait_for(
        asyncio.gather(opening, sandbox_pay(client, deal.poster, second_id)), WAIT
    )
    assert opened["errors"] == [], opened
    assert paid["errors"] == [], paid
    monkeypatch.undo()
    await assert_frozen_together(client, runtime, deal, opened["dispute"]["id"])
    assert payment.calls >= 2  # the payment conflicted with the opening and was retried


async def disputed_with_second_funded(
    client: GraphQLClient, runtime: Runtime
) -> tuple[Split, str, str]:
    """The first milestone disputed, the second funded and not paid: the ids of the
    dispute and of the second's escrow."""
    deal, second_id = await funded_second(client, runtime)
    opened = await open_dispute(client, deal.poster, deal.task_id, 1)
    assert opened["errors"] == [], opened
    return deal, opened["dispute"]["id"], second_id


async def assert_back_to_work(client: GraphQLClient, runtime: Runtime, deal: Split) -> None:
    """The first milestone released, the task in progress and the second held, not
    frozen with nothing left to thaw it."""
    await sandbox(runtime).drain()
    assert await task_status(deal) == "in_progress"
    assert (await statuses(client, deal))[:2] == [("APPROVED", "RELEASED"), ("PENDING", "HELD")]
    await assert_ledger_clean()


async def test_a_payment_reading_the_task_before_the_decision_commits_ends_held(
    client: GraphQLClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    deal, dispute_id, second_id = await disputed_with_second_funded(client, runtime)
    admin = await logged_in_admin(client, runtime)
    # The payment holds after writing its escrow and reading the task (disputed).
    payment = Hold(deal_disputed)
    decision = Signal(milestone_disputes.decided, payment.reached, payment.release)
    monkeypatch.setattr(escrow_events, "deal_disputed", payment)
    monkeypatch.setattr(milestone_disputes, "decided", decision)

    paying = asyncio.create_task(sandbox_pay(client, deal.poster, second_id))
    await asyncio.wait_for(payment.reached.wait(), WAIT)
    paid, decided = await asyncio.wait_for(
        asyncio.gather(paying, resolve(client, admin, dispute_id, "RELEASE")), WAIT
    )
    assert paid["errors"] == [], paid
    assert decided["errors"] == [], decided
    monkeypatch.undo()
    await assert_back_to_work(client, runtime, deal)
    assert decision.calls >= 2  # the decision conflicted with the payment and was retried


async def test_a_payment_during_an_uncommitted_decision_ends_held(
    client: GraphQLClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    deal, dispute_id, second_id = await disputed_with_second_funded(client, runtime)
    admin = await logged_in_admin(client, runtime)
    # The decision holds after thawing the later milestones, before the task goes on.
    decision = Hold(milestone_disputes.decided)
    payment = Signal(change_escrow, decision.reached, decision.release)
    monkeypatch.setattr(milestone_disputes, "decided", decision)
    monkeypatch.setattr(escrow_events, "change_escrow", payment)

    deciding = asyncio.create_task(resolve(client, admin, dispute_id, "RELEASE"))
    await asyncio.wait_for(decision.reached.wait(), WAIT)
    decided, paid = await asyncio.wait_for(
        asyncio.gather(deciding, sandbox_pay(client, deal.poster, second_id)), WAIT
    )
    assert decided["errors"] == [], decided
    assert paid["errors"] == [], paid
    monkeypatch.undo()
    await assert_back_to_work(client, runtime, deal)
    assert payment.calls >= 2  # the payment conflicted with the decision and was retried
