"""A task paid in milestones, end to end: split on acceptance, each funded, paid, handed
in and approved on its own, through GraphQL and the sandbox gateway."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from documents.clock import utcnow
from documents.events import DomainEvent, EventKind
from documents.marketplace.tasks import Task, TaskStatus
from documents.payments import ledger_accounts
from documents.payments.escrow import Escrow, EscrowStatus
from documents.payments.ledger import LedgerTransaction
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.payments.escrow import hooks as escrow_hooks
from resolvers.payments.escrow.progress import sweep
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient, Tokens, error_codes
from tests.support.marketplace import aud, make_offer, object_id, post_task, poster, tasker
from tests.support.payments.escrow import (
    CLIENT_SECRET,
    assert_ledger_clean,
    balance,
    onboard,
    sandbox,
    sandbox_pay,
    stored_escrow,
    transfers_of,
)

SPLIT = [3333, 3333, 3334]
"""10000 in three: 10 % of each rounds differently from 10 % of the whole."""

MILESTONES = """milestones { number title status amount { amount currency } note
  escrow { id status clientSecret fees { charged { amount } customerFee { amount }
           commissionOnHold { amount } commissionOnRelease { amount } providerShare { amount } } } }"""
TASK_MILESTONES = f"query($id: ID!) {{ node(id: $id) {{ ... on Task {{ status {MILESTONES} }} }} }}"


@dataclass(frozen=True)
class Split:
    poster: Tokens
    tasker: Tokens
    task_id: str


def parts(amounts: list[int], currency: str = "AUD") -> list[dict[str, Any]]:
    return [
        {"title": f"Part {n}", "amount": {"amount": a, "currency": currency}}
        for n, a in enumerate(amounts, start=1)
    ]


async def offered(client: GraphQLClient, amount: int = 10000) -> tuple[Tokens, Tokens, str, str]:
    who = await poster(client, "poster@example.com")
    worker = await tasker(client, "tasker@example.com")
    task = await post_task(client, who)
    offer = await make_offer(client, worker, task["id"], amount)
    return who, worker, task["id"], offer["id"]


async def accept(
    client: GraphQLClient, who: Tokens, offer_id: str, milestones: list[dict[str, Any]]
) -> dict[str, Any]:
    return await client.mutate(
        "acceptOffer",
        {"offerId": offer_id, "milestones": milestones},
        "offer { status } task { status }",
        token=who.access,
    )


async def split_task(client: GraphQLClient, amounts: list[int] = SPLIT) -> Split:
    who, worker, task_id, offer_id = await offered(client, sum(amounts))
    accepted = await accept(client, who, offer_id, parts(amounts))
    assert accepted["errors"] == [], accepted
    assert accepted["task"]["status"] == "ASSIGNED"
    return Split(who, worker, task_id)


async def working(client: GraphQLClient, runtime: Runtime, amounts: list[int] = SPLIT) -> Split:
    """A task split into milestones, started by an onboarded tasker."""
    deal = await split_task(client, amounts)
    await start_work(client, runtime, deal)
    return deal


async def start_work(client: GraphQLClient, runtime: Runtime, deal: Split) -> None:
    """The tasker onboarded and the first milestone paid: work starts."""
    await onboard(client, runtime, deal.tasker)
    await pay(client, deal, 1)
    start = await client.mutate("startTask", {"taskId": deal.task_id}, token=deal.tasker.access)
    assert start["errors"] == [], start


async def milestones(client: GraphQLClient, who: Tokens, task_id: str) -> list[dict[str, Any]]:
    data = await client.data(TASK_MILESTONES, {"id": task_id}, token=who.access)
    found: list[dict[str, Any]] = data["node"]["milestones"]
    return found


async def act(
    client: GraphQLClient, name: str, who: Tokens, task_id: str, number: int, **extra: str
) -> dict[str, Any]:
    return await client.mutate(
        name,
        {"taskId": task_id, "number": number, **extra},
        "task { status } milestone { number status escrow { id status } }",
        token=who.access,
    )


async def ok(client: GraphQLClient, name: str, who: Tokens, task_id: str, number: int) -> None:
    payload = await act(client, name, who, task_id, number)
    assert payload["errors"] == [], payload


async def pay(client: GraphQLClient, deal: Split, number: int) -> Escrow:
    """Fund milestone `number` (repeating it is harmless) and pay it in the sandbox."""
    funded = await act(client, "fundMilestone", deal.poster, deal.task_id, number)
    assert funded["errors"] == [], funded
    escrow_id = funded["milestone"]["escrow"]["id"]
    if funded["milestone"]["escrow"]["status"] != "HELD":  # paid already to start the work
        paid = await sandbox_pay(client, deal.poster, escrow_id)
        assert paid["errors"] == [] and paid["escrow"]["status"] == "HELD", paid
    return await stored_escrow(escrow_id)


async def task_escrows(task_id: str) -> list[Escrow]:
    return await Escrow.find({"task_id": object_id(task_id)}).sort("milestone").to_list()


async def test_three_milestones_paid_and_released_one_by_one(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal = await split_task(client)
    listed = await milestones(client, deal.poster, deal.task_id)
    assert [(m["number"], m["amount"]["amount"], m["status"]) for m in listed] == [
        (1, 3333, "PENDING"),
        (2, 3333, "PENDING"),
        (3, 3334, "PENDING"),
    ]
    # The first is due on acceptance; the others once the poster funds them.
    first = listed[0]["escrow"]
    assert first["status"] == "AWAITING_PAYMENT" and first["clientSecret"].startswith("pi_")
    assert [m["escrow"] for m in listed[1:]] == [None, None]
    seen_by_tasker = await milestones(client, deal.tasker, deal.task_id)
    assert seen_by_tasker[0]["escrow"]["clientSecret"] is None
    outsider = await client.member("outsider@example.com")
    assert await milestones(client, outsider, deal.task_id) == []  # not theirs to see
    plain = await client.data(
        "query($id: ID!) { node(id: $id) { ... on Task { escrow { id } } } }",
        {"id": deal.task_id},
        token=deal.poster.access,
    )
    assert plain["node"]["escrow"] is None  # no escrow for the whole deal

    await start_work(client, runtime, deal)
    # A task in milestones is handed in milestone by milestone, not as a whole.
    whole = await client.mutate("submitTask", {"taskId": deal.task_id}, token=deal.tasker.access)
    assert error_codes(whole) == ["INVALID_STATE"]

    escrows = []
    for number in (1, 2, 3):
        escrow = await pay(client, deal, number)
        intent = await runtime.services.payments.retrieve_payment_intent(
            escrow.payment_intent_id or ""
        )
        assert intent.transfer_group == escrow.gateway_group
        assert intent.metadata["milestone"] == str(number)
        assert intent.metadata["deal"] == f"task:{object_id(deal.task_id)}:milestone:{number}"
        assert error_codes(await act(client, "approveMilestone", deal.poster, deal.task_id, number))
        submitted = await act(client, "submitMilestone", deal.tasker, deal.task_id, number)
        assert submitted["errors"] == [] and submitted["milestone"]["status"] == "SUBMITTED"
        assert submitted["task"]["status"] == ("SUBMITTED" if number == 3 else "IN_PROGRESS")
        approved = await act(client, "approveMilestone", deal.poster, deal.task_id, number)
        assert approved["errors"] == [] and approved["milestone"]["status"] == "APPROVED"
        await sandbox(runtime).drain()
        released = await stored_escrow(approved["milestone"]["escrow"]["id"])
        assert released.status is EscrowStatus.RELEASED
        assert await transfers_of(runtime, released) == [released.transfer_id]
        escrows.append(released)
        assert approved["task"]["status"] == ("COMPLETED" if number == 3 else "IN_PROGRESS")

    # Fees are each milestone's own (10 % of 3333 is 333, of 3334 also 333): each escrow is
    # exact in itself, and together they account for every cent paid.
    assert len({e.payment_intent_id for e in escrows}) == 3
    charged = sum(e.fees.charged.amount for e in escrows)
    assert charged == 10000 + 333 * 3
    for escrow in escrows:
        fees = escrow.fees
        assert fees.provider_share + fees.commission_on_hold + fees.commission_on_release == (
            fees.price
        )
        assert await balance(ledger_accounts.escrow(escrow.id)) == 0  # type: ignore[arg-type]
    payer, provider = escrows[0].payer_id, escrows[0].provider_id
    assert await balance(ledger_accounts.funding(payer)) == -charged
    shares = sum(e.fees.provider_share.amount for e in escrows)
    assert shares == 3000 + 3000 + 3001
    assert await balance(ledger_accounts.wallet(provider)) == shares
    assert await balance(ledger_accounts.platform_revenue()) == charged - shares
    await assert_ledger_clean()

    task = await Task.get(object_id(deal.task_id))
    assert task is not None and task.status.value == "completed"
    told = await DomainEvent.find({"audience": provider, "data.milestone": 2}).to_list()
    assert {
        EventKind.PAYMENT_SUCCEEDED,
        EventKind.MILESTONE_SUBMITTED,
        EventKind.MILESTONE_APPROVED,
        EventKind.ESCROW_RELEASED,
    } <= {e.kind for e in told}
    completed = await DomainEvent.find(
        {"kind": EventKind.TASK_STATUS_CHANGED.value, "data.status": "completed"}
    ).to_list()
    assert [e.task_id for e in completed] == [object_id(deal.task_id)]


async def test_invalid_splits_are_refused_and_change_nothing(client: GraphQLClient) -> None:
    who, worker, task_id, offer_id = await offered(client, 10000)
    refused = {
        "one part": (parts([10000]), "milestones"),
        "too many": (parts([100] * 99 + [100]), "milestones"),
        "short of the offer": (parts([4000, 5000]), "milestones"),
        "over the offer": (parts([4000, 7000]), "milestones"),
        "zero": (parts([0, 10000]), "milestones.0.amount"),
        "negative": (parts([-100, 10100]), "milestones.0.amount"),
        "other currency": (parts([5000, 5000], "USD"), "milestones.0.amount"),
        "untitled": ([{"title": " ", "amount": aud(5000)}, parts([5000])[0]], "milestones.0.title"),
    }
    for case, (split, field) in refused.items():
        payload = await accept(client, who, offer_id, split)
        assert payload["offer"] is None, case
        assert [(e["code"], e["field"]) for e in payload["errors"]][:1] == [
            ("INVALID_INPUT", field)
        ], (case, payload)
    by_tasker = await accept(client, worker, offer_id, parts([5000, 5000]))
    assert error_codes(by_tasker) == ["FORBIDDEN"]
    task = await Task.get(object_id(task_id))
    assert task is not None and task.status.value == "open" and task.milestones == []
    assert await Escrow.find().count() == 0
    assert await LedgerTransaction.find().count() == 0

    # Milestone actions on a task not split into milestones are refused too.
    plain = await accept(client, who, offer_id, [])
    assert plain["errors"] == [] and plain["task"]["status"] == "ASSIGNED"
    assert error_codes(await act(client, "fundMilestone", who, task_id, 1)) == ["INVALID_STATE"]


async def test_cancelling_part_way_refunds_only_what_is_paid_and_not_approved(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal = await working(client, runtime)
    first = await pay(client, deal, 1)
    await ok(client, "submitMilestone", deal.tasker, deal.task_id, 1)
    await ok(client, "approveMilestone", deal.poster, deal.task_id, 1)
    second = await pay(client, deal, 2)  # paid, its work not handed in yet
    await ok(client, "fundMilestone", deal.poster, deal.task_id, 3)  # not paid yet
    cancel = {"taskId": deal.task_id, "reason": "Plans changed."}
    cancelled = await client.mutate(
        "cancelTask", cancel, "task { status }", token=deal.poster.access
    )
    assert cancelled["errors"] == [] and cancelled["task"]["status"] == "CANCELLED"
    await sandbox(runtime).drain()

    released, refunded, unpaid = await task_escrows(deal.task_id)
    assert released.id == first.id and released.status is EscrowStatus.RELEASED
    assert refunded.id == second.id and refunded.status is EscrowStatus.REFUNDED
    assert refunded.refunded == refunded.fees.charged
    assert unpaid.status is EscrowStatus.FAILED
    intent = await runtime.services.payments.retrieve_payment_intent(unpaid.payment_intent_id or "")
    assert intent.status == "canceled"
    payer, provider = released.payer_id, released.provider_id
    assert await balance(ledger_accounts.funding(payer)) == -released.fees.charged.amount
    assert await balance(ledger_accounts.wallet(provider)) == released.fees.provider_share.amount
    await assert_ledger_clean()


async def test_a_milestone_handed_in_is_not_taken_back_by_cancelling(
    client: GraphQLClient, runtime: Runtime
) -> None:
    """Sending work back for changes does not undo that it was handed in: cancelling
    would refund the poster for work done. It takes the tasker's own step back or an
    admin's decision on a dispute."""
    deal = await working(client, runtime)
    paid = await pay(client, deal, 1)
    await ok(client, "submitMilestone", deal.tasker, deal.task_id, 1)
    cancel = {"taskId": deal.task_id, "reason": "Plans changed."}
    assert error_codes(await client.mutate("cancelTask", cancel, token=deal.poster.access)) == [
        "INVALID_STATE"
    ]
    sent_back = await act(
        client, "requestMilestoneChanges", deal.poster, deal.task_id, 1, reason="Not yet."
    )
    assert sent_back["errors"] == [] and sent_back["milestone"]["status"] == "PENDING"
    refused = await client.mutate("cancelTask", cancel, token=deal.poster.access)
    assert error_codes(refused) == ["INVALID_STATE"], refused
    await sandbox(runtime).drain()
    held = await Escrow.get(paid.id)
    assert held is not None
    assert held.status is EscrowStatus.HELD and held.refunded.amount == 0
    await assert_ledger_clean()


async def test_concurrent_approvals_make_one_transfer_and_fundings_one_intent(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal = await working(client, runtime)
    funded = await asyncio.gather(
        *(act(client, "fundMilestone", deal.poster, deal.task_id, 2) for _ in range(4))
    )
    assert all(f["errors"] == [] for f in funded), funded
    assert len({f["milestone"]["escrow"]["id"] for f in funded}) == 1
    await pay(client, deal, 1)
    await ok(client, "submitMilestone", deal.tasker, deal.task_id, 1)
    approvals = await asyncio.gather(
        *(act(client, "approveMilestone", deal.poster, deal.task_id, 1) for _ in range(4))
    )
    assert sorted(error_codes(a) for a in approvals) == [[]] + [["INVALID_STATE"]] * 3
    await sandbox(runtime).drain()
    first, second, *rest = await task_escrows(deal.task_id)
    assert rest == []
    assert first.status is EscrowStatus.RELEASED
    assert await transfers_of(runtime, first) == [first.transfer_id]
    assert second.payment_intent_id is not None
    escrow_id = funded[0]["milestone"]["escrow"]["id"]
    secret = await client.data(CLIENT_SECRET, {"id": escrow_id}, token=deal.poster.access)
    assert secret["node"]["clientSecret"].startswith(second.payment_intent_id)
    assert (
        await balance(ledger_accounts.wallet(first.provider_id)) == first.fees.provider_share.amount
    )
    await assert_ledger_clean()


async def test_a_milestone_handed_in_is_released_automatically(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal = await working(client, runtime, [6000, 4000])
    for number in (1, 2):
        await pay(client, deal, number)
        await ok(client, "submitMilestone", deal.tasker, deal.task_id, number)
        later = utcnow() + runtime.services.settings.auto_release_after + timedelta(minutes=1)
        await sweep(runtime.services, later)
        await sandbox(runtime).drain()
        listed = await milestones(client, deal.poster, deal.task_id)
        assert listed[number - 1]["status"] == "APPROVED"
        assert listed[number - 1]["escrow"]["status"] == "RELEASED"
    task = await Task.get(object_id(deal.task_id))
    assert task is not None and task.status.value == "completed"
    await assert_ledger_clean()


async def test_a_dispute_freezes_every_paid_milestone_not_approved(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal = await working(client, runtime)
    for number in (1, 2):
        await pay(client, deal, number)
    await ok(client, "submitMilestone", deal.tasker, deal.task_id, 1)
    await ok(client, "approveMilestone", deal.poster, deal.task_id, 1)
    await ok(client, "submitMilestone", deal.tasker, deal.task_id, 2)
    await ok(client, "fundMilestone", deal.poster, deal.task_id, 3)

    async def dispute(unit: UnitOfWork) -> None:
        # What the task's move to disputed does to its escrows (the dispute's own flow
        # lives with disputes).
        task = await Task.get(object_id(deal.task_id), session=unit.session)
        assert task is not None
        disputed = task.model_copy(update={"status": TaskStatus.DISPUTED})
        await escrow_hooks.task_moved(
            unit, runtime.services.terms, disputed, changes_requested=False, note="No."
        )

    await transact(runtime.services, dispute)
    await sandbox(runtime).drain()
    released, frozen, unpaid = await task_escrows(deal.task_id)
    assert released.status is EscrowStatus.RELEASED
    assert frozen.status is EscrowStatus.DISPUTED and frozen.auto_release_at is None
    assert unpaid.status is EscrowStatus.AWAITING_PAYMENT
    await sweep(runtime.services, utcnow() + timedelta(days=365))
    still = await Escrow.get(frozen.id)
    assert still is not None and still.status is EscrowStatus.DISPUTED
    await assert_ledger_clean()
