"""Correctly signed escrow events that contradict what we recorded: another intent,
charge, refund or transfer, another amount or currency, another escrow's metadata, or a
connected account named on a platform object. Each is posted over HTTP as Stripe posts
it, changes nothing (escrow, ledger, wallet), is stored as rejected with what differed,
is listed for admins, and the genuine event still works afterwards."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from bson import ObjectId

from documents.clock import utcnow
from documents.money import Money
from documents.payments import ledger_accounts
from documents.payments.escrow import Escrow, EscrowStatus, RefundStatus
from documents.payments.ledger import MovementKind
from documents.payments.webhooks import WebhookEvent, WebhookStatus
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.payments.escrow.escrows import payment_metadata
from resolvers.payments.escrow.refunds import claim_refund
from resolvers.payments.escrow.release import transfer_key
from resolvers.payments.webhooks.inbox import MISMATCH_ALERT, retry_due
from server.runtime import Runtime
from tests.marketplace.test_milestones import milestones, split_task
from tests.payments.escrow.test_disputes import chargeback
from tests.payments.escrow.test_escrow_races import held, postings, succeeded, unpaid
from tests.payments.webhooks.test_escrow_webhooks import (
    charge,
    refund_object,
    released,
    reversed_transfer,
    transfer_of,
)
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import logged_in_admin
from tests.support.payments.escrow import (
    TaskDeal,
    assert_ledger_clean,
    assigned_task,
    balance,
    global_id,
    sandbox,
    sandbox_pay,
    stored_escrow,
    task_escrow,
)
from tests.support.payments.wallets import start_onboarding, stripe_account_of
from tests.support.payments.webhooks import (
    Variant,
    delivered,
    differing,
    rejected_in_turn,
    rejections_seen_by,
    stored,
)

ELSEWHERE = "acct_elsewhere"
"""A connected account, named by an event about one of the platform's own objects."""


def another_escrows(escrow: Escrow) -> dict[str, Any]:
    """Metadata naming another escrow."""
    return {"metadata": {**payment_metadata(escrow), "escrow_id": str(ObjectId())}}


async def assert_listed_for_admins(
    client: GraphQLClient, runtime: Runtime, rejected: list[str]
) -> None:
    admin = await logged_in_admin(client, runtime)
    seen = await rejections_seen_by(client, admin)
    assert seen == {event_id: await differing(event_id) for event_id in rejected}


async def unpaid_of(client: GraphQLClient, tag: str) -> tuple[TaskDeal, Escrow]:
    deal = await assigned_task(client, tag=tag)
    found = await task_escrow(client, deal.poster, deal.task_id)
    assert found is not None
    return deal, await stored_escrow(found["id"])


# -- payment intents -------------------------------------------------------------------


def payment_variants(escrow: Escrow) -> dict[str, Variant]:
    charged = escrow.fees.charged.amount
    return {
        "1 JPY of another intent": (
            {"id": "pi_another", "amount": 1, "currency": "jpy"},
            None,
            ["amount", "currency", "payment_intent"],
        ),
        "a cent short": ({"amount": charged - 1}, None, ["amount"]),
        "another currency": ({"currency": "usd"}, None, ["currency"]),
        "another escrow's metadata": (another_escrows(escrow), None, ["metadata.escrow_id"]),
        "on a connected account": ({}, ELSEWHERE, ["account"]),
    }


async def test_a_signed_payment_that_differs_from_the_escrow_changes_nothing(
    client: GraphQLClient, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    deal, escrow = await unpaid(client)
    caplog.set_level(logging.ERROR, logger="resolvers.payments.webhooks.inbox")
    variants = payment_variants(escrow)
    variants["received in part"] = (
        {"amount_received": escrow.fees.charged.amount // 2},
        None,
        ["amount_received"],
    )

    rejected = await rejected_in_turn(
        client, runtime.services, "payment_intent.succeeded", succeeded(escrow), variants
    )

    after = await stored_escrow(global_id(escrow))
    assert after.status is EscrowStatus.AWAITING_PAYMENT and after.history == escrow.history
    assert after.payment_intent_id == escrow.payment_intent_id and after.charge_id is None
    assert await postings(after, MovementKind.PAYMENT_RECEIVED) == 0
    assert await balance(ledger_accounts.funding(escrow.payer_id)) == 0
    alerts = [r for r in caplog.records if getattr(r, "alert", None) == MISMATCH_ALERT]
    assert [r.levelno for r in alerts] == [logging.ERROR] * len(rejected)
    assert [getattr(r, "event_id", None) for r in alerts] == rejected
    assert f"payment_intent: recorded {escrow.payment_intent_id}, event pi_another" in (
        alerts[0].getMessage()
    )
    # Not retried as a failing handler is, and a redelivery is not processed again.
    await WebhookEvent.get_pymongo_collection().update_many(
        {}, {"$set": {"next_attempt_at": utcnow()}}
    )
    await retry_due(runtime.services)
    assert [(await stored(event_id)).attempts for event_id in rejected] == [1] * len(rejected)
    await assert_listed_for_admins(client, runtime, rejected)

    paid = await sandbox_pay(client, deal.poster, global_id(escrow))
    assert paid["errors"] == [] and paid["escrow"]["status"] == "HELD"
    held_now = await stored_escrow(global_id(escrow))
    assert await postings(held_now, MovementKind.PAYMENT_RECEIVED) == 1
    await assert_ledger_clean()


@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        ("payment_intent.payment_failed", "requires_payment_method"),
        ("payment_intent.requires_action", "requires_action"),
        ("payment_intent.canceled", "canceled"),
    ],
)
async def test_an_unpaid_intent_event_that_differs_changes_nothing(
    client: GraphQLClient, runtime: Runtime, event_type: str, status: str
) -> None:
    _deal, escrow = await unpaid(client)
    genuine = {
        **succeeded(escrow),
        "status": status,
        "latest_charge": None,
        "last_payment_error": {"code": "card_declined"},
    }

    rejected = await rejected_in_turn(
        client, runtime.services, event_type, genuine, payment_variants(escrow)
    )

    after = await stored_escrow(global_id(escrow))
    assert after.status is EscrowStatus.AWAITING_PAYMENT and after.history == escrow.history
    assert after.payment_failure_code is None and not after.requires_action
    await assert_listed_for_admins(client, runtime, rejected)

    await delivered(client, runtime.services, event_type, genuine)
    moved = await stored_escrow(global_id(escrow))
    assert len(moved.history) == len(escrow.history) + 1
    if event_type == "payment_intent.canceled":
        assert moved.status is EscrowStatus.FAILED
    elif event_type == "payment_intent.requires_action":
        assert moved.requires_action
    else:
        assert moved.payment_failure_code == "card_declined"


async def test_an_intent_id_lost_in_a_crash_is_adopted_only_from_a_matching_event(
    client: GraphQLClient, runtime: Runtime
) -> None:
    """The process died between making the intent and recording its id: a payment of the
    same amount, with this escrow's metadata but another escrow's intent, is refused;
    the escrow's own intent is adopted when paid."""
    _deal, escrow = await unpaid(client)
    _other, other = await unpaid_of(client, "-other")
    assert escrow.fees.charged == other.fees.charged
    lost = escrow.payment_intent_id
    assert lost is not None
    await Escrow.get_pymongo_collection().update_one(
        {"_id": escrow.id}, {"$set": {"payment_intent_id": None}}
    )

    stolen = {**succeeded(escrow), "id": other.payment_intent_id}
    event_id = await delivered(client, runtime.services, "payment_intent.succeeded", stolen)

    assert await differing(event_id) == ["payment_intent"]
    after = await stored_escrow(global_id(escrow))
    assert after.payment_intent_id is None and after.status is EscrowStatus.AWAITING_PAYMENT
    assert await postings(after, MovementKind.PAYMENT_RECEIVED) == 0
    await assert_listed_for_admins(client, runtime, [event_id])

    await sandbox(runtime).confirm(lost)  # the payer pays the escrow's own intent
    await sandbox(runtime).drain()
    paid = await stored_escrow(global_id(escrow))
    assert paid.status is EscrowStatus.HELD and paid.payment_intent_id == lost
    assert await postings(paid, MovementKind.PAYMENT_RECEIVED) == 1
    await assert_ledger_clean()


async def test_a_milestone_payment_must_match_the_milestone_not_the_task(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal = await split_task(client)
    first = (await milestones(client, deal.poster, deal.task_id))[0]["escrow"]["id"]
    escrow = await stored_escrow(first)
    whole = escrow.fees.charged.amount * 3  # about what the whole task charges
    variants: dict[str, Variant] = {
        "the whole task's amount": ({"amount": whole}, None, ["amount"]),
        "another milestone's": (
            {"metadata": {**payment_metadata(escrow), "milestone": "2"}},
            None,
            ["metadata.milestone"],
        ),
    }

    rejected = await rejected_in_turn(
        client, runtime.services, "payment_intent.succeeded", succeeded(escrow), variants
    )

    after = await stored_escrow(first)
    assert after.status is EscrowStatus.AWAITING_PAYMENT and after.history == escrow.history
    assert await postings(after, MovementKind.PAYMENT_RECEIVED) == 0
    await assert_listed_for_admins(client, runtime, rejected)
    paid = await sandbox_pay(client, deal.poster, first)
    assert paid["escrow"]["status"] == "HELD", paid
    await assert_ledger_clean()


# -- refunds ---------------------------------------------------------------------------


async def test_a_charge_refunded_that_differs_records_no_refund(
    client: GraphQLClient, runtime: Runtime
) -> None:
    _deal, escrow = await held(client, runtime)
    charged = escrow.fees.charged.amount
    variants: dict[str, Variant] = {
        "another charge": ({"id": "ch_another"}, None, ["charge"]),
        "another intent": ({"payment_intent": "pi_another"}, None, ["payment_intent"]),
        "another currency": ({"currency": "jpy"}, None, ["currency"]),
        "another amount charged": ({"amount": charged + 100}, None, ["amount"]),
        "more refunded than charged": (
            {"amount_refunded": charged + 1},
            None,
            ["amount_refunded"],
        ),
        "another escrow's metadata": (another_escrows(escrow), None, ["metadata.escrow_id"]),
        "on a connected account": ({}, ELSEWHERE, ["account"]),
    }

    rejected = await rejected_in_turn(
        client, runtime.services, "charge.refunded", charge(escrow, 3000), variants
    )

    after = await stored_escrow(global_id(escrow))
    assert after.status is EscrowStatus.HELD and after.refunded.amount == 0
    assert after.refunds == [] and after.history == escrow.history
    assert await postings(after, MovementKind.REFUND) == 0
    assert await balance(ledger_accounts.funding(escrow.payer_id)) == -charged
    await assert_listed_for_admins(client, runtime, rejected)

    await delivered(client, runtime.services, "charge.refunded", charge(escrow, 3000))
    refunded = await stored_escrow(global_id(escrow))
    assert refunded.status is EscrowStatus.PARTIALLY_REFUNDED
    assert refunded.refunded.amount == 3000 and refunded.refunds[0].external
    await assert_ledger_clean()


async def test_a_refund_created_that_differs_from_our_pending_refund_records_nothing(
    client: GraphQLClient, runtime: Runtime
) -> None:
    _deal, escrow = await held(client, runtime)
    amount = 2500

    async def claim(unit: UnitOfWork) -> object:
        return await claim_refund(unit, escrow, Money(amount=amount, currency="AUD"), "goodwill")

    assert await transact(runtime.services, claim) is not None
    # The gateway made it; our process died before recording it. Its event arrives.
    genuine = refund_object(escrow, "re_made", amount)
    variants: dict[str, Variant] = {
        "another amount": ({"amount": amount - 1}, None, ["amount"]),
        "another currency": ({"currency": "jpy"}, None, ["currency"]),
        "another intent": ({"payment_intent": "pi_another"}, None, ["payment_intent"]),
        "a refund never claimed": (
            {"metadata": {**genuine["metadata"], "refund_number": "2"}},
            None,
            ["metadata.refund_number"],
        ),
        "on a connected account": ({}, ELSEWHERE, ["account"]),
    }

    rejected = await rejected_in_turn(client, runtime.services, "refund.created", genuine, variants)

    after = await stored_escrow(global_id(escrow))
    assert after.status is EscrowStatus.HELD and after.refunded.amount == 0
    [pending] = after.refunds
    assert pending.status is RefundStatus.PENDING and pending.refund_id is None
    assert await postings(after, MovementKind.REFUND) == 0
    await assert_listed_for_admins(client, runtime, rejected)

    await delivered(client, runtime.services, "refund.created", genuine)
    recorded = await stored_escrow(global_id(escrow))
    assert recorded.status is EscrowStatus.PARTIALLY_REFUNDED
    assert [(r.number, r.refund_id, r.status) for r in recorded.refunds] == [
        (1, "re_made", RefundStatus.SUCCEEDED)
    ]
    assert await postings(recorded, MovementKind.REFUND) == 1
    await assert_ledger_clean()


# -- transfers -------------------------------------------------------------------------


async def releasing(client: GraphQLClient, runtime: Runtime) -> tuple[Escrow, str]:
    """A paid task approved while its tasker's payout account was not enabled yet: the
    escrow is releasing, and the tasker has a connected account."""
    deal, unpaid_escrow = await unpaid(client)
    assert (await sandbox_pay(client, deal.poster, global_id(unpaid_escrow)))["errors"] == []
    for name, who in (("startTask", deal.tasker), ("submitTask", deal.tasker)):
        moved = await client.mutate(name, {"taskId": deal.task_id}, token=who.access)
        assert moved["errors"] == [], moved
    done = await client.mutate("completeTask", {"taskId": deal.task_id}, token=deal.poster.access)
    assert done["errors"] == [], done
    assert (await start_onboarding(client, deal.tasker))["errors"] == []
    escrow = await stored_escrow(global_id(unpaid_escrow))
    assert escrow.status is EscrowStatus.RELEASING and escrow.release is not None
    return escrow, await stripe_account_of(deal.tasker)


async def test_a_transfer_created_that_differs_from_the_claimed_release_records_nothing(
    client: GraphQLClient, runtime: Runtime
) -> None:
    escrow, account = await releasing(client, runtime)
    assert escrow.release is not None
    share = escrow.release.to_provider
    metadata = {**payment_metadata(escrow), "release_round": "1"}
    genuine = {
        "id": "tr_lost",
        "object": "transfer",
        "amount": share.amount,
        "amount_reversed": 0,
        "currency": share.currency.lower(),
        "destination": account,
        "metadata": metadata,
        "transfer_group": escrow.gateway_group,
        "created": int(utcnow().timestamp()),
    }
    variants: dict[str, Variant] = {
        "another amount": ({"amount": share.amount + 1}, None, ["amount"]),
        "another currency": ({"currency": "jpy"}, None, ["currency"]),
        "another destination": ({"destination": "acct_another"}, None, ["destination"]),
        "another transfer group": ({"transfer_group": "escrow:x"}, None, ["transfer_group"]),
        "a release never claimed": (
            {"metadata": {**metadata, "release_round": "2"}},
            None,
            ["metadata.release_round"],
        ),
        "on a connected account": ({}, ELSEWHERE, ["account"]),
    }

    rejected = await rejected_in_turn(
        client, runtime.services, "transfer.created", genuine, variants
    )

    after = await stored_escrow(global_id(escrow))
    assert after.status is EscrowStatus.RELEASING and after.transfer_id is None
    assert await postings(after, MovementKind.ESCROW_RELEASED) == 0
    assert await balance(ledger_accounts.wallet(escrow.provider_id)) == 0
    await assert_listed_for_admins(client, runtime, rejected)

    # The release's transfer is made at the gateway, and its recording lost: its event,
    # which matches, records it.
    made = await runtime.services.payments.create_transfer(
        amount=share.amount,
        currency=share.currency,
        destination_account_id=account,
        transfer_group=escrow.gateway_group,
        metadata=metadata,
        idempotency_key=transfer_key(escrow, escrow.release),
        source_charge_id=escrow.charge_id,
    )
    await sandbox(runtime).drain()
    recorded = await stored_escrow(global_id(escrow))
    assert recorded.status is EscrowStatus.RELEASED and recorded.transfer_id == made.id
    assert await balance(ledger_accounts.wallet(escrow.provider_id)) == share.amount
    await assert_ledger_clean()


async def test_a_transfer_reversal_that_differs_takes_nothing_from_the_wallet(
    client: GraphQLClient, runtime: Runtime
) -> None:
    escrow = await released(client, runtime)
    assert escrow.release is not None and escrow.transfer_id is not None and escrow.id
    share = escrow.release.to_provider.amount
    transfer = await transfer_of(runtime, escrow)
    genuine = {**reversed_transfer(transfer), "amount_reversed": 4000}
    variants: dict[str, Variant] = {
        "another transfer of the release": ({"id": "tr_another"}, None, ["transfer"]),
        "more reversed than transferred": (
            {"amount_reversed": share + 1},
            None,
            ["amount_reversed"],
        ),
        "another amount transferred": ({"amount": share + 5000}, None, ["amount"]),
        "another destination": ({"destination": "acct_another"}, None, ["destination"]),
        "on a connected account": ({}, ELSEWHERE, ["account"]),
    }

    rejected = await rejected_in_turn(
        client, runtime.services, "transfer.reversed", genuine, variants
    )

    after = await stored_escrow(global_id(escrow))
    assert after.status is EscrowStatus.RELEASED and after.transfer_reversed.amount == 0
    assert await postings(after, MovementKind.ADJUSTMENT) == 0
    assert await balance(ledger_accounts.wallet(escrow.provider_id)) == share
    await assert_listed_for_admins(client, runtime, rejected)

    await delivered(client, runtime.services, "transfer.reversed", genuine)
    frozen = await stored_escrow(global_id(escrow))
    assert frozen.status is EscrowStatus.DISPUTED and frozen.transfer_reversed.amount == 4000
    assert await balance(ledger_accounts.wallet(escrow.provider_id)) == share - 4000
    assert await balance(ledger_accounts.escrow(escrow.id)) == 4000
    await assert_ledger_clean()


# -- chargebacks -----------------------------------------------------------------------


async def test_a_chargeback_that_differs_from_the_payment_posts_nothing(
    client: GraphQLClient, runtime: Runtime
) -> None:
    _deal, escrow = await held(client, runtime)
    assert escrow.id is not None
    charged = escrow.fees.charged.amount
    variants: dict[str, Variant] = {
        "another charge of the intent": ({"charge": "ch_another"}, None, ["charge"]),
        "another intent for the charge": (
            {"payment_intent": "pi_another"},
            None,
            ["payment_intent"],
        ),
        "another currency": ({"currency": "jpy"}, None, ["currency"]),
        "more than was charged": ({"amount": charged + 1}, None, ["amount"]),
        "on a connected account": ({}, ELSEWHERE, ["account"]),
    }

    rejected = await rejected_in_turn(
        client, runtime.services, "charge.dispute.created", chargeback(escrow), variants
    )
    after = await stored_escrow(global_id(escrow))
    assert after.status is EscrowStatus.HELD and after.history == escrow.history
    assert await postings(after, MovementKind.DISPUTE_OPENED) == 0
    assert await balance(ledger_accounts.chargeback(escrow.id)) == 0

    opened = await delivered(client, runtime.services, "charge.dispute.created", chargeback(escrow))
    assert (await stored(opened)).status is WebhookStatus.PROCESSED
    assert (await stored_escrow(global_id(escrow))).status is EscrowStatus.DISPUTED
    lost = chargeback(escrow, "lost")
    rejected += await rejected_in_turn(
        client,
        runtime.services,
        "charge.dispute.closed",
        lost,
        {"another currency": ({"currency": "jpy"}, None, ["currency"])},
    )
    assert await postings(after, MovementKind.DISPUTE_LOST) == 0
    await assert_listed_for_admins(client, runtime, rejected)

    await delivered(client, runtime.services, "charge.dispute.closed", lost)
    assert await postings(after, MovementKind.DISPUTE_OPENED) == 1
    assert await postings(after, MovementKind.DISPUTE_LOST) == 1
    assert await balance(ledger_accounts.chargeback(escrow.id)) == 0
    await assert_ledger_clean()
