"""Disputes over a task paid in milestones, through GraphQL and the sandbox gateway: the
milestone in work is disputed and decided on its own, and the task goes on or ends."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from documents.accounts.audit import AuditEvent, AuditKind
from documents.clock import utcnow
from documents.events import DomainEvent, EventKind
from documents.marketplace.tasks import Task
from documents.payments import ledger_accounts
from documents.payments.disputes import Dispute
from documents.payments.escrow import Escrow, EscrowStatus
from documents.payments.ledger import MovementKind
from resolvers.payments.escrow.progress import sweep
from server.runtime import Runtime
from tests.marketplace.test_milestones import Split, act, milestones, ok, pay, task_escrows, working
from tests.payments.escrow.test_disputes import (
    chargeback,
    decided_by_admin,
    deliver,
    postings,
    resolve,
    told,
)
from tests.support.graphql_client import GraphQLClient, Tokens, error_codes
from tests.support.marketplace import logged_in_admin, object_id
from tests.support.payments.escrow import (
    assert_ledger_clean,
    assigned_task,
    balance,
    global_id,
    sandbox,
    sandbox_pay,
)

PARTS = [4000, 4000, 2000]
"""10 % service fee on each (4400, 4400 and 2200 charged); 10 % commission on release."""

DISPUTE = """dispute { id status milestone task { id status }
  escrow { id status autoReleaseAt } resolution { outcome refund { amount currency } } }"""


async def open_dispute(
    client: GraphQLClient, who: Tokens, deal_id: str, milestone: int | None
) -> dict[str, Any]:
    """The openDispute payload, errors included."""
    return await client.mutate(
        "openDispute",
        {"dealId": deal_id, "milestone": milestone, "reason": "Not what was agreed."},
        DISPUTE,
        token=who.access,
    )


async def ok_move(client: GraphQLClient, name: str, who: Tokens, task_id: str) -> None:
    moved = await client.mutate(name, {"taskId": task_id}, token=who.access)
    assert moved["errors"] == [], moved


async def done(client: GraphQLClient, runtime: Runtime, deal: Split, number: int) -> None:
    """Milestone `number` paid, handed in, approved and released."""
    await pay(client, deal, number)
    await ok(client, "submitMilestone", deal.tasker, deal.task_id, number)
    await ok(client, "approveMilestone", deal.poster, deal.task_id, number)
    await sandbox(runtime).drain()


async def statuses(client: GraphQLClient, deal: Split) -> list[tuple[str, str | None]]:
    """Each milestone's status and its escrow's, in order."""
    return [
        (m["status"], m["escrow"] and m["escrow"]["status"])
        for m in await milestones(client, deal.poster, deal.task_id)
    ]


async def task_status(deal: Split) -> str:
    task = await Task.get(object_id(deal.task_id))
    assert task is not None
    return task.status.value


async def test_a_milestone_handed_in_is_frozen_split_and_the_task_goes_on(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal = await working(client, runtime, PARTS)
    await done(client, runtime, deal, 1)
    await pay(client, deal, 2)
    await ok(client, "submitMilestone", deal.tasker, deal.task_id, 2)

    payload = await open_dispute(client, deal.poster, deal.task_id, 2)
    assert payload["errors"] == [], payload
    dispute = payload["dispute"]
    assert dispute["milestone"] == 2 and dispute["task"]["status"] == "DISPUTED"
    assert dispute["escrow"]["status"] == "DISPUTED" and dispute["escrow"]["autoReleaseAt"] is None
    first, second = await task_escrows(deal.task_id)
    assert dispute["escrow"]["id"] == global_id(second) and second.milestone == 2
    assert second.status is EscrowStatus.DISPUTED
    for who in (deal.poster, deal.tasker):
        assert await told(who.user_id, EventKind.DISPUTE_OPENED)
    # Frozen: the automatic release does not come, nor can the poster approve around it.
    await sweep(runtime.services, now=utcnow() + timedelta(days=365))
    await sandbox(runtime).drain()
    assert (await Escrow.get(second.id)).status is EscrowStatus.DISPUTED  # type: ignore[union-attr]
    assert await postings(second, MovementKind.ESCROW_RELEASED) == 0
    assert await balance(ledger_accounts.wallet(second.provider_id)) == 3600
    approved = await act(client, "approveMilestone", deal.poster, deal.task_id, 2)
    assert error_codes(approved) == ["INVALID_STATE"]

    decided = await decided_by_admin(client, runtime, dispute["id"], "SPLIT", refund=2200)
    assert decided["dispute"]["task"]["status"] == "IN_PROGRESS"
    assert decided["dispute"]["resolution"]["refund"] == {"amount": 2200, "currency": "AUD"}
    settled = await Escrow.get(second.id)
    assert settled is not None and settled.status is EscrowStatus.RELEASED
    assert settled.refunded.amount == 2200
    # 22.00 of 44.00 back (2.00 of it the service fee's); of the 20.00 of the price kept
    # the tasker gets 18.00 and the platform 2.00 commission, besides the 2.00 fee kept.
    payer, provider = first.payer_id, first.provider_id
    assert await balance(ledger_accounts.funding(payer)) == -(4400 + 4400 - 2200)
    assert await balance(ledger_accounts.wallet(provider)) == 3600 + 1800
    assert await balance(ledger_accounts.platform_revenue()) == 800 + 400
    assert await balance(ledger_accounts.escrow(settled.id)) == 0  # type: ignore[arg-type]
    await assert_ledger_clean()
    [audited] = await AuditEvent.find({"kind": AuditKind.DISPUTE_RESOLVED.value}).to_list()
    assert audited.details["outcome"] == "split" and audited.details["escrow_id"] == str(second.id)
    [back_to_work] = await DomainEvent.find(
        {"kind": EventKind.TASK_STATUS_CHANGED.value, "data.previous": "disputed"}
    ).to_list()
    assert back_to_work.data["status"] == "in_progress"
    for who in (deal.poster, deal.tasker):
        assert await told(who.user_id, EventKind.DISPUTE_RESOLVED)
        assert object_id(who.user_id) in back_to_work.audience
    assert await statuses(client, deal) == [
        ("APPROVED", "RELEASED"),
        ("APPROVED", "RELEASED"),
        ("PENDING", None),
    ]

    # The work goes on: the last milestone is funded, handed in and approved.
    await pay(client, deal, 3)
    submitted = await act(client, "submitMilestone", deal.tasker, deal.task_id, 3)
    assert submitted["errors"] == [] and submitted["task"]["status"] == "SUBMITTED", submitted
    finished = await act(client, "approveMilestone", deal.poster, deal.task_id, 3)
    assert finished["errors"] == [] and finished["task"]["status"] == "COMPLETED", finished
    await sandbox(runtime).drain()
    assert await balance(ledger_accounts.funding(payer)) == -(4400 + 4400 + 2200 - 2200)
    assert await balance(ledger_accounts.wallet(provider)) == 3600 + 1800 + 1800
    assert await balance(ledger_accounts.platform_revenue()) == 800 + 400 + 400
    await assert_ledger_clean()


async def test_refunding_the_last_milestone_completes_the_task(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal = await working(client, runtime, [4000, 6000])
    await done(client, runtime, deal, 1)
    await pay(client, deal, 2)
    submitted = await act(client, "submitMilestone", deal.tasker, deal.task_id, 2)
    assert submitted["task"]["status"] == "SUBMITTED", submitted
    opened = await open_dispute(client, deal.tasker, deal.task_id, 2)
    assert opened["errors"] == [], opened
    decided = await decided_by_admin(client, runtime, opened["dispute"]["id"], "REFUND")
    assert decided["dispute"]["task"]["status"] == "COMPLETED"  # the first was paid for
    assert decided["dispute"]["resolution"]["refund"]["amount"] == 6600
    first, second = await task_escrows(deal.task_id)
    assert first.status is EscrowStatus.RELEASED
    assert second.status is EscrowStatus.REFUNDED and second.refunded == second.fees.charged
    assert await balance(ledger_accounts.funding(first.payer_id)) == -4400
    assert await balance(ledger_accounts.wallet(first.provider_id)) == 3600
    assert await balance(ledger_accounts.platform_revenue()) == 800
    await assert_ledger_clean()
    completed = await DomainEvent.find(
        {"kind": EventKind.TASK_STATUS_CHANGED.value, "data.status": "completed"}
    ).to_list()
    assert [e.task_id for e in completed] == [object_id(deal.task_id)]


async def test_refunding_the_first_milestone_cancels_the_task_and_the_rest(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal = await working(client, runtime, PARTS)
    await pay(client, deal, 1)
    await pay(client, deal, 2)  # paid ahead: frozen by the dispute with the first
    await ok(client, "fundMilestone", deal.poster, deal.task_id, 3)  # not paid
    opened = await open_dispute(client, deal.poster, deal.task_id, 1)  # before it is handed in
    assert opened["errors"] == [], opened
    assert await statuses(client, deal) == [
        ("PENDING", "DISPUTED"),
        ("PENDING", "DISPUTED"),
        ("PENDING", "AWAITING_PAYMENT"),
    ]
    decided = await decided_by_admin(client, runtime, opened["dispute"]["id"], "REFUND")
    assert decided["dispute"]["task"]["status"] == "CANCELLED"
    first, second, unpaid = await task_escrows(deal.task_id)
    for refunded in (first, second):
        assert refunded.status is EscrowStatus.REFUNDED
        assert refunded.refunded == refunded.fees.charged
    assert unpaid.status is EscrowStatus.FAILED
    intent = await runtime.services.payments.retrieve_payment_intent(unpaid.payment_intent_id or "")
    assert intent.status == "canceled"
    assert await balance(ledger_accounts.funding(first.payer_id)) == 0
    assert await balance(ledger_accounts.wallet(first.provider_id)) == 0
    assert await balance(ledger_accounts.platform_revenue()) == 0
    await assert_ledger_clean()


async def test_a_release_puts_the_later_milestones_paid_ahead_back_on_hold(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal = await working(client, runtime, PARTS)
    await pay(client, deal, 1)
    await pay(client, deal, 2)
    await ok(client, "submitMilestone", deal.tasker, deal.task_id, 1)
    opened = await open_dispute(client, deal.tasker, deal.task_id, 1)
    assert opened["errors"] == [], opened
    decided = await decided_by_admin(client, runtime, opened["dispute"]["id"], "RELEASE")
    assert decided["dispute"]["task"]["status"] == "IN_PROGRESS"
    assert await statuses(client, deal) == [
        ("APPROVED", "RELEASED"),
        ("PENDING", "HELD"),
        ("PENDING", None),
    ]
    # Held as before: handed in, it is released automatically in due time.
    await ok(client, "submitMilestone", deal.tasker, deal.task_id, 2)
    later = utcnow() + runtime.services.settings.auto_release_after + timedelta(minutes=1)
    await sweep(runtime.services, later)
    await sandbox(runtime).drain()
    assert (await statuses(client, deal))[1] == ("APPROVED", "RELEASED")
    assert await balance(ledger_accounts.wallet(object_id(deal.tasker.user_id))) == 3600 + 3600
    assert await task_status(deal) == "in_progress"
    await assert_ledger_clean()


async def test_a_later_milestone_frozen_by_a_chargeback_stays_frozen_after_the_decision(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal = await working(client, runtime, PARTS)
    await pay(client, deal, 1)
    await pay(client, deal, 2)
    _first, second = await task_escrows(deal.task_id)
    await deliver(client, runtime, "charge.dispute.created", chargeback(second), 1)
    opened = await open_dispute(client, deal.poster, deal.task_id, 1)
    assert opened["errors"] == [], opened
    await decided_by_admin(client, runtime, opened["dispute"]["id"], "RELEASE")
    # The decision thaws what the task's dispute froze, not what the bank's did.
    assert (await statuses(client, deal))[:2] == [("APPROVED", "RELEASED"), ("PENDING", "DISPUTED")]
    await assert_ledger_clean()


async def test_a_later_milestone_paid_during_the_dispute_is_frozen_until_the_decision(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal = await working(client, runtime, PARTS)
    await pay(client, deal, 1)
    funded = await act(client, "fundMilestone", deal.poster, deal.task_id, 2)
    assert funded["errors"] == [], funded
    opened = await open_dispute(client, deal.poster, deal.task_id, 1)
    assert opened["errors"] == [], opened
    paid = await sandbox_pay(client, deal.poster, funded["milestone"]["escrow"]["id"])
    assert paid["errors"] == [], paid
    assert (await statuses(client, deal))[1] == ("PENDING", "DISPUTED")
    await decided_by_admin(client, runtime, opened["dispute"]["id"], "RELEASE")
    assert (await statuses(client, deal))[:2] == [("APPROVED", "RELEASED"), ("PENDING", "HELD")]
    await assert_ledger_clean()


async def test_racing_openings_and_decisions_have_one_winner(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal = await working(client, runtime, PARTS)
    await pay(client, deal, 1)
    await pay(client, deal, 2)
    openings = await asyncio.gather(
        *(open_dispute(client, who, deal.task_id, 1) for who in [deal.poster, deal.tasker] * 3)
    )
    assert sum(not p["errors"] for p in openings) == 1, openings
    assert await Dispute.find_all().count() == 1
    [dispute] = [p["dispute"] for p in openings if not p["errors"]]
    admin = await logged_in_admin(client, runtime)
    decisions = await asyncio.gather(
        *(resolve(client, admin, dispute["id"], outcome) for outcome in ["RELEASE", "REFUND"] * 3)
    )
    winners = [d for d in decisions if not d["errors"]]
    assert len(winners) == 1, decisions
    assert all(error_codes(d) in ([], ["INVALID_STATE"]) for d in decisions), decisions
    await sandbox(runtime).drain()
    first, second = await task_escrows(deal.task_id)
    if winners[0]["dispute"]["resolution"]["outcome"] == "RELEASE":
        assert (first.status, second.status) == (EscrowStatus.RELEASED, EscrowStatus.HELD)
        assert await task_status(deal) == "in_progress"
    else:
        assert (first.status, second.status) == (EscrowStatus.REFUNDED, EscrowStatus.REFUNDED)
        assert await task_status(deal) == "cancelled"
    await assert_ledger_clean()


async def test_the_milestone_must_be_named_in_work_and_paid(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal = await working(client, runtime, PARTS)
    await done(client, runtime, deal, 1)
    before = await statuses(client, deal)
    refused = {
        None: ("INVALID_INPUT", "milestone"),
        0: ("NOT_FOUND", "milestone"),
        4: ("NOT_FOUND", "milestone"),
        1: ("INVALID_STATE", "milestone"),  # approved: its payment is the tasker's
        3: ("INVALID_STATE", "milestone"),  # milestone 2 is in work
        2: ("INVALID_STATE", "milestone"),  # not funded
    }
    for number, expected in refused.items():
        payload = await open_dispute(client, deal.poster, deal.task_id, number)
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [expected], (number, payload)
    await ok(client, "fundMilestone", deal.poster, deal.task_id, 2)
    unpaid = await open_dispute(client, deal.poster, deal.task_id, 2)
    assert error_codes(unpaid) == ["INVALID_STATE"], unpaid
    outsider = await client.member("outsider@example.com")
    assert error_codes(await open_dispute(client, outsider, deal.task_id, 2)) == ["FORBIDDEN"]
    assert await Dispute.find_all().count() == 0
    assert await task_status(deal) == "in_progress"
    assert await statuses(client, deal) == [before[0], ("PENDING", "AWAITING_PAYMENT"), before[2]]

    # A task not in milestones takes none.
    plain = await assigned_task(client, tag="-plain")
    named = await open_dispute(client, plain.poster, plain.task_id, 1)
    assert [(e["code"], e["field"]) for e in named["errors"]] == [("INVALID_INPUT", "milestone")]
    assert await Dispute.find_all().count() == 0
    await assert_ledger_clean()
