"""Disputes over GraphQL: opened by the payer or the provider while money is held, frozen
against automatic release, decided by an admin; and chargebacks from Stripe's webhooks."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from documents.accounts.audit import AuditEvent, AuditKind
from documents.clock import utcnow
from documents.events import DomainEvent, EventKind
from documents.payments import ledger_accounts
from documents.payments.disputes import Dispute
from documents.payments.escrow import Escrow, EscrowStatus
from documents.payments.ledger import LedgerTransaction, MovementKind
from documents.payments.webhooks import WebhookEvent, WebhookStatus
from resolvers.payments.escrow.progress import sweep
from resolvers.payments.webhooks.inbox import retry_due
from server.runtime import Runtime
from tests.payments.escrow.test_escrow_bookings import paid_booking
from tests.support.bookings import act
from tests.support.chat import open_conversation
from tests.support.graphql_client import GraphQLClient, Tokens, error_codes, graphql_error_codes
from tests.support.marketplace import logged_in_admin, object_id
from tests.support.payments.escrow import (
    TaskDeal,
    assert_ledger_clean,
    assigned_task,
    balance,
    global_id,
    onboard,
    sandbox,
    sandbox_pay,
    stored_escrow,
    task_escrow,
)
from tests.support.payments.webhooks import (
    chargeback_object,
    event_id_of,
    post_event,
    signature,
    stripe_event,
    webhook_secret,
)

DISPUTE = """dispute { id status reason evidence { url by { id } } openedBy { id }
  escrow { id status autoReleaseAt dispute { id } } task { id status } booking { id status }
  resolution { outcome refund { amount currency } note admin { id } } }"""
EVIDENCE = ["https://files.example.com/photo-1.jpg"]


async def paid_task(
    client: GraphQLClient, runtime: Runtime, *, tag: str = "", onboarded: bool = True
) -> tuple[TaskDeal, Escrow]:
    """A task accepted at 110.00 AUD (121.00 charged), paid and in progress."""
    deal = await assigned_task(client, tag=tag)
    escrow = await task_escrow(client, deal.poster, deal.task_id)
    assert escrow is not None
    if onboarded:
        await onboard(client, runtime, deal.tasker)
    paid = await sandbox_pay(client, deal.poster, escrow["id"])
    assert paid["escrow"]["status"] == "HELD", paid
    await move(client, "startTask", deal.tasker, deal.task_id)
    return deal, await stored_escrow(escrow["id"])


async def move(client: GraphQLClient, name: str, who: Tokens, task_id: str) -> None:
    moved = await client.mutate(name, {"taskId": task_id}, token=who.access)
    assert moved["errors"] == [], moved


async def open_dispute(
    client: GraphQLClient, who: Tokens, deal_id: str, evidence: list[str] | None = None
) -> dict[str, Any]:
    """The openDispute payload, errors included."""
    return await client.mutate(
        "openDispute",
        {"dealId": deal_id, "reason": "The work was not done.", "evidenceUrls": evidence or []},
        DISPUTE,
        token=who.access,
    )


async def opened(client: GraphQLClient, who: Tokens, deal_id: str) -> dict[str, Any]:
    payload = await open_dispute(client, who, deal_id, EVIDENCE)
    assert payload["errors"] == [], payload
    dispute: dict[str, Any] = payload["dispute"]
    return dispute


async def resolve(
    client: GraphQLClient,
    who: Tokens,
    dispute_id: str,
    outcome: str,
    refund: int | None = None,
) -> dict[str, Any]:
    """The resolveDispute payload, errors included."""
    refund_amount = None if refund is None else {"amount": refund, "currency": "AUD"}
    return await client.mutate(
        "resolveDispute",
        {
            "disputeId": dispute_id,
            "outcome": outcome,
            "refundAmount": refund_amount,
            "note": "Decided on the photos.",
        },
        DISPUTE,
        token=who.access,
    )


async def decided_by_admin(
    client: GraphQLClient,
    runtime: Runtime,
    dispute_id: str,
    outcome: str,
    refund: int | None = None,
) -> dict[str, Any]:
    """An admin's decision, which must be taken; its gateway steps done: the payload."""
    admin = await logged_in_admin(client, runtime)
    decided = await resolve(client, admin, dispute_id, outcome, refund)
    assert decided["errors"] == [], decided
    await sandbox(runtime).drain()
    return decided


async def postings(escrow: Escrow, kind: MovementKind) -> int:
    return await LedgerTransaction.get_pymongo_collection().count_documents(
        {"refs.escrow": str(escrow.id), "kind": kind.value}
    )


async def told(user_id: str, kind: EventKind) -> bool:
    return await DomainEvent.find({"audience": object_id(user_id), "kind": kind.value}).count() > 0


# --- opening ----------------------------------------------------------------------------


async def test_either_party_opens_a_dispute_that_freezes_the_payment(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal, escrow = await paid_task(client, runtime)
    outsider = await client.member("outsider@example.com")
    assert error_codes(await open_dispute(client, outsider, deal.task_id)) == ["FORBIDDEN"]
    bad_link = await open_dispute(client, deal.poster, deal.task_id, ["http://insecure.example"])
    assert error_codes(bad_link) == ["INVALID_INPUT"]
    assert bad_link["errors"][0]["field"] == "evidenceUrls.0"

    dispute = await opened(client, deal.poster, deal.task_id)
    assert dispute["status"] == "OPEN" and dispute["openedBy"]["id"] == deal.poster.user_id
    assert dispute["task"]["status"] == "DISPUTED" and dispute["booking"] is None
    assert dispute["escrow"]["status"] == "DISPUTED" and dispute["escrow"]["autoReleaseAt"] is None
    assert dispute["escrow"]["dispute"]["id"] == dispute["id"]
    assert [e["url"] for e in dispute["evidence"]] == EVIDENCE
    again = await open_dispute(client, deal.tasker, deal.task_id)
    assert error_codes(again) == ["ALREADY_EXISTS"]
    for who in (deal.poster, deal.tasker):
        assert await told(who.user_id, EventKind.DISPUTE_OPENED)

    more = await client.mutate(
        "addDisputeEvidence",
        {"disputeId": dispute["id"], "evidenceUrls": ["https://files.example.com/log.pdf"]},
        DISPUTE,
        token=deal.tasker.access,
    )
    assert more["errors"] == [], more
    assert [e["by"]["id"] for e in more["dispute"]["evidence"]] == [
        deal.poster.user_id,
        deal.tasker.user_id,
    ]
    stranger = await client.mutate(
        "addDisputeEvidence",
        {"disputeId": dispute["id"], "evidenceUrls": ["https://x.example.com/a.png"]},
        token=outsider.access,
    )
    assert error_codes(stranger) == ["NOT_FOUND"]
    # The work cannot be completed around the dispute: only an admin ends it.
    completed = await client.mutate(
        "completeTask", {"taskId": deal.task_id}, token=deal.poster.access
    )
    assert error_codes(completed) == ["INVALID_STATE"]
    assert (await stored_escrow(dispute["escrow"]["id"])).status is EscrowStatus.DISPUTED
    assert escrow.id is not None and await balance(ledger_accounts.escrow(escrow.id)) == 11000


async def test_only_money_held_can_be_disputed(client: GraphQLClient, runtime: Runtime) -> None:
    unpaid = await assigned_task(client, tag="-unpaid")  # and so not started either
    assert error_codes(await open_dispute(client, unpaid.poster, unpaid.task_id)) == [
        "INVALID_STATE"
    ]
    # Approved, and waiting for the tasker's payout account: the release is under way.
    deal, escrow = await paid_task(client, runtime, tag="-releasing", onboarded=False)
    await move(client, "submitTask", deal.tasker, deal.task_id)
    await move(client, "completeTask", deal.poster, deal.task_id)
    assert (await stored_escrow(global_id(escrow))).status is EscrowStatus.RELEASING
    refused = await open_dispute(client, deal.poster, deal.task_id)
    assert error_codes(refused) == ["INVALID_STATE"]
    assert "being released" in refused["errors"][0]["message"]
    assert await Dispute.find_all().count() == 0


async def test_concurrent_openings_make_one_dispute(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal, _escrow = await paid_task(client, runtime)
    payloads = await asyncio.gather(
        *(open_dispute(client, who, deal.task_id) for who in [deal.poster, deal.tasker] * 3)
    )
    assert sum(not p["errors"] for p in payloads) == 1, payloads
    assert all(error_codes(p) in ([], ["ALREADY_EXISTS"], ["INVALID_STATE"]) for p in payloads), (
        payloads
    )
    assert await Dispute.find_all().count() == 1


async def test_nothing_is_released_automatically_while_disputed(
    client: GraphQLClient, runtime: Runtime
) -> None:
    disputed, frozen = await paid_task(client, runtime, tag="-disputed")
    await move(client, "submitTask", disputed.tasker, disputed.task_id)
    await opened(client, disputed.tasker, disputed.task_id)
    undisputed, held = await paid_task(client, runtime, tag="-undisputed")
    await move(client, "submitTask", undisputed.tasker, undisputed.task_id)

    await sweep(runtime.services, now=utcnow() + timedelta(days=30))
    await sandbox(runtime).drain()
    assert (await stored_escrow(global_id(held))).status is EscrowStatus.RELEASED
    still = await stored_escrow(global_id(frozen))
    assert still.status is EscrowStatus.DISPUTED
    assert await postings(still, MovementKind.ESCROW_RELEASED) == 0


# --- resolving --------------------------------------------------------------------------


async def test_release_pays_the_provider_and_completes_the_task(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal, escrow = await paid_task(client, runtime)
    dispute = await opened(client, deal.poster, deal.task_id)
    forbidden = await client.execute(
        "mutation($i: ResolveDisputeInput!) { resolveDispute(input: $i) { errors { code } } }",
        {"i": {"disputeId": dispute["id"], "outcome": "RELEASE"}},
        token=deal.tasker.access,
    )
    assert graphql_error_codes(forbidden) == ["FORBIDDEN"]
    admin = await logged_in_admin(client, runtime)
    wrong = await resolve(client, admin, dispute["id"], "RELEASE", refund=100)
    assert error_codes(wrong) == ["INVALID_INPUT"]

    decided = await resolve(client, admin, dispute["id"], "RELEASE")
    assert decided["errors"] == [], decided
    resolved = decided["dispute"]
    assert resolved["status"] == "RESOLVED" and resolved["task"]["status"] == "COMPLETED"
    assert resolved["resolution"]["outcome"] == "RELEASE"
    assert resolved["resolution"]["refund"] == {"amount": 0, "currency": "AUD"}
    assert resolved["resolution"]["admin"]["id"] == admin.user_id
    await sandbox(runtime).drain()
    released = await stored_escrow(global_id(escrow))
    assert released.status is EscrowStatus.RELEASED and released.transfer_id
    assert await balance(ledger_accounts.wallet(escrow.provider_id)) == 9900
    assert await balance(ledger_accounts.platform_revenue()) == 2200
    assert await balance(ledger_accounts.funding(escrow.payer_id)) == -12100
    [audited] = await AuditEvent.find({"kind": AuditKind.DISPUTE_RESOLVED.value}).to_list()
    assert audited.actor_id == object_id(admin.user_id)
    assert audited.details["outcome"] == "release"
    for who in (deal.poster, deal.tasker):
        assert await told(who.user_id, EventKind.DISPUTE_RESOLVED)
    twice = await resolve(client, admin, dispute["id"], "REFUND")
    assert error_codes(twice) == ["INVALID_STATE"]
    await assert_ledger_clean()


async def test_refund_returns_everything_and_cancels_the_task(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal, escrow = await paid_task(client, runtime)
    dispute = await opened(client, deal.tasker, deal.task_id)
    decided = await decided_by_admin(client, runtime, dispute["id"], "REFUND")
    assert decided["dispute"]["task"]["status"] == "CANCELLED"
    assert decided["dispute"]["resolution"]["refund"]["amount"] == 12100
    refunded = await stored_escrow(global_id(escrow))
    assert refunded.status is EscrowStatus.REFUNDED and refunded.refunded.amount == 12100
    assert await balance(ledger_accounts.funding(escrow.payer_id)) == 0
    assert await balance(ledger_accounts.wallet(escrow.provider_id)) == 0
    assert await balance(ledger_accounts.platform_revenue()) == 0
    await assert_ledger_clean()


async def test_split_refunds_part_and_releases_the_rest_to_the_cent(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal, escrow = await paid_task(client, runtime)
    dispute = await opened(client, deal.poster, deal.task_id)
    admin = await logged_in_admin(client, runtime)
    for too_much in (12100, 20000):
        refused = await resolve(client, admin, dispute["id"], "SPLIT", refund=too_much)
        assert error_codes(refused) == ["INVALID_INPUT"], refused
    assert error_codes(await resolve(client, admin, dispute["id"], "SPLIT")) == ["INVALID_INPUT"]
    assert (await stored_escrow(global_id(escrow))).status is EscrowStatus.DISPUTED

    decided = await resolve(client, admin, dispute["id"], "SPLIT", refund=5000)
    assert decided["errors"] == [], decided
    assert decided["dispute"]["task"]["status"] == "COMPLETED"
    await sandbox(runtime).drain()
    settled = await stored_escrow(global_id(escrow))
    assert settled.status is EscrowStatus.RELEASED and settled.refunded.amount == 5000
    # 50.00 back: 4.55 of it the service fee's share. The release commission is 10 % of
    # the 60.45 of the price kept, rounded: 6.45 (exactly 645.04...); the tasker has the rest.
    refunded = -await balance(ledger_accounts.funding(escrow.payer_id))
    wallet = await balance(ledger_accounts.wallet(escrow.provider_id))
    revenue = await balance(ledger_accounts.platform_revenue())
    assert (12100 - refunded, wallet, revenue) == (5000, 5810, 1290)
    assert 5000 + wallet + revenue == escrow.fees.charged.amount
    assert escrow.id is not None and await balance(ledger_accounts.escrow(escrow.id)) == 0
    await assert_ledger_clean()


async def test_a_disputed_booking_is_frozen_readable_by_admins_and_refunded(
    client: GraphQLClient, runtime: Runtime
) -> None:
    customer, provider, booking_id, escrow_id = await paid_booking(client, runtime, 30)
    chat = await open_conversation(client, customer, booking_id)
    assert chat["errors"] == [], chat
    conversation = "query($id: ID!) { node(id: $id) { ... on Conversation { id } } }"
    variables = {"id": chat["conversation"]["id"]}
    admin = await logged_in_admin(client, runtime)
    assert (await client.data(conversation, variables, token=admin.access))["node"] is None

    dispute = await opened(client, customer, booking_id)
    assert dispute["booking"]["status"] == "DISPUTED" and dispute["task"] is None
    started = await act(client, "startBooking", provider, booking_id)
    cancelled = await act(client, "cancelBooking", customer, booking_id, reason="Changed my mind")
    assert error_codes(started) == error_codes(cancelled) == ["INVALID_STATE"]
    read = await client.data(conversation, variables, token=admin.access)
    assert read["node"] == {"id": chat["conversation"]["id"]}

    decided = await resolve(client, admin, dispute["id"], "REFUND")
    assert decided["dispute"]["booking"]["status"] == "CANCELLED"
    await sandbox(runtime).drain()
    escrow = await stored_escrow(escrow_id)
    assert escrow.status is EscrowStatus.REFUNDED and escrow.refunded == escrow.fees.charged
    assert await balance(ledger_accounts.funding(escrow.payer_id)) == 0
    await assert_ledger_clean()


# --- chargebacks ------------------------------------------------------------------------


async def deliver(
    client: GraphQLClient, runtime: Runtime, event_type: str, obj: dict[str, Any], times: int
) -> str:
    """One event, delivered `times` times (as Stripe redelivers it); returns its id."""
    body = stripe_event(event_type, obj)
    header = signature(body, webhook_secret(runtime.services))
    for _ in range(times):
        assert (await post_event(client.http, body, header)).status_code == 200
    return event_id_of(body)


def chargeback(escrow: Escrow, status: str = "needs_response") -> dict[str, Any]:
    assert escrow.charge_id is not None
    return chargeback_object(
        "dp_test",
        charge=escrow.charge_id,
        payment_intent=escrow.payment_intent_id,
        amount=escrow.fees.charged.amount,
        currency=escrow.fees.charged.currency,
        status=status,
    )


async def test_a_lost_chargeback_is_posted_once_and_borne_by_the_platform(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal, escrow = await paid_task(client, runtime)
    assert escrow.id is not None
    await deliver(client, runtime, "charge.dispute.created", chargeback(escrow), 3)
    # The same chargeback in another event: still one posting.
    await deliver(client, runtime, "charge.dispute.created", chargeback(escrow), 1)
    frozen = await stored_escrow(global_id(escrow))
    assert frozen.status is EscrowStatus.DISPUTED and frozen.auto_release_at is None
    assert await postings(frozen, MovementKind.DISPUTE_OPENED) == 1
    assert await balance(ledger_accounts.funding(escrow.payer_id)) == 0  # the bank gave it back
    assert await balance(ledger_accounts.chargeback(escrow.id)) == -12100
    assert await balance(ledger_accounts.escrow(escrow.id)) == 11000
    assert await told(deal.tasker.user_id, EventKind.CHARGEBACK_OPENED)

    await deliver(client, runtime, "charge.dispute.closed", chargeback(escrow, "lost"), 3)
    assert await postings(frozen, MovementKind.DISPUTE_LOST) == 1
    assert await balance(ledger_accounts.chargeback(escrow.id)) == 0
    assert await balance(ledger_accounts.platform_revenue()) == 1100 - 12100
    still = await stored_escrow(global_id(escrow))
    assert still.status is EscrowStatus.DISPUTED  # an admin decides about the provider
    await assert_ledger_clean()


async def test_a_chargeback_closed_before_it_opened_waits_and_a_win_reinstates(
    client: GraphQLClient, runtime: Runtime
) -> None:
    _deal, escrow = await paid_task(client, runtime)
    assert escrow.id is not None
    closed_id = await deliver(
        client, runtime, "charge.dispute.closed", chargeback(escrow, "won"), 1
    )
    waiting = await WebhookEvent.find_one({"event_id": closed_id})
    assert waiting is not None and waiting.status is WebhookStatus.FAILED
    assert await LedgerTransaction.find({"kind": MovementKind.DISPUTE_WON.value}).count() == 0

    await deliver(client, runtime, "charge.dispute.created", chargeback(escrow), 1)
    assert (await stored_escrow(global_id(escrow))).status is EscrowStatus.DISPUTED
    await WebhookEvent.get_pymongo_collection().update_many(
        {}, {"$set": {"next_attempt_at": utcnow()}}
    )  # the backoff has passed
    await retry_due(runtime.services)
    await deliver(client, runtime, "charge.dispute.closed", chargeback(escrow, "won"), 2)

    reinstated = await stored_escrow(global_id(escrow))
    assert reinstated.status is EscrowStatus.HELD
    assert await postings(reinstated, MovementKind.DISPUTE_OPENED) == 1
    assert await postings(reinstated, MovementKind.DISPUTE_WON) == 1
    assert await balance(ledger_accounts.funding(escrow.payer_id)) == -12100
    assert await balance(ledger_accounts.chargeback(escrow.id)) == 0
    assert await balance(ledger_accounts.platform_revenue()) == 1100
    await assert_ledger_clean()


async def test_a_won_chargeback_leaves_a_payment_frozen_by_an_open_dispute(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal, escrow = await paid_task(client, runtime)
    await opened(client, deal.poster, deal.task_id)
    await deliver(client, runtime, "charge.dispute.created", chargeback(escrow), 1)
    await deliver(client, runtime, "charge.dispute.closed", chargeback(escrow, "won"), 1)
    frozen = await stored_escrow(global_id(escrow))
    assert frozen.status is EscrowStatus.DISPUTED  # the parties' dispute still needs an admin
    assert await postings(frozen, MovementKind.DISPUTE_WON) == 1
    assert await balance(ledger_accounts.funding(escrow.payer_id)) == -12100
    await assert_ledger_clean()
