"""Escrows under races and faults: duplicate webhooks, concurrent releases, lost results
of gateway calls, and events in the wrong order."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bson import ObjectId

from documents.accounts.profiles import ProviderProfile
from documents.clock import utcnow
from documents.payments import ledger_accounts
from documents.payments.escrow import Escrow, EscrowStatus
from documents.payments.ledger import LedgerTransaction, MovementKind
from documents.payments.webhooks import WebhookEvent, WebhookStatus
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.payments.escrow.escrows import payment_metadata
from resolvers.payments.escrow.progress import advance, sweep
from resolvers.payments.escrow.refunds import claim_refund
from resolvers.payments.escrow.release import claim_release, release_waiting_for, transfer_key
from resolvers.payments.webhooks.inbox import retry_due
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient
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
    transfers_of,
)
from tests.support.payments.webhooks import post_event, signature, stripe_event, webhook_secret


async def postings(escrow: Escrow, kind: MovementKind) -> int:
    return await LedgerTransaction.get_pymongo_collection().count_documents(
        {"refs.escrow": str(escrow.id), "kind": kind.value}
    )


async def unpaid(client: GraphQLClient) -> tuple[TaskDeal, Escrow]:
    deal = await assigned_task(client)
    escrow = await task_escrow(client, deal.poster, deal.task_id)
    assert escrow is not None
    return deal, await stored_escrow(escrow["id"])


async def held(client: GraphQLClient, runtime: Runtime) -> tuple[TaskDeal, Escrow]:
    deal, escrow = await unpaid(client)
    await onboard(client, runtime, deal.tasker)
    paid = await sandbox_pay(client, deal.poster, str(global_id(escrow)))
    assert paid["escrow"]["status"] == "HELD", paid
    return deal, await stored_escrow(str(global_id(escrow)))


def succeeded(escrow: Escrow, charge: str = "ch_test") -> dict[str, Any]:
    """The payment intent as `payment_intent.succeeded` shows it."""
    return {
        "id": escrow.payment_intent_id,
        "object": "payment_intent",
        "amount": escrow.fees.charged.amount,
        "currency": escrow.fees.charged.currency.lower(),
        "status": "succeeded",
        "capture_method": "automatic_async",
        "latest_charge": charge,
        "metadata": payment_metadata(escrow),
        "created": int(time.time()),
    }


async def test_one_payment_however_often_its_webhook_arrives(
    client: GraphQLClient, runtime: Runtime
) -> None:
    _deal, escrow = await unpaid(client)
    body = stripe_event("payment_intent.succeeded", succeeded(escrow))
    header = signature(body, webhook_secret(runtime.services))
    responses = await asyncio.gather(*(post_event(client.http, body, header) for _ in range(10)))
    assert {r.status_code for r in responses} == {200}
    paid = await Escrow.get(escrow.id)
    assert paid is not None and paid.status is EscrowStatus.HELD
    assert await postings(paid, MovementKind.PAYMENT_RECEIVED) == 1
    assert [c.status for c in paid.history].count(EscrowStatus.HELD) == 1
    assert await balance(ledger_accounts.funding(paid.payer_id)) == -paid.fees.charged.amount
    await assert_ledger_clean()


async def test_concurrent_completes_and_releases_make_one_transfer(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal, escrow = await unpaid(client)
    assert (await sandbox_pay(client, deal.poster, global_id(escrow)))["errors"] == []
    for name in ("startTask", "submitTask"):
        moved = await client.mutate(name, {"taskId": deal.task_id}, token=deal.tasker.access)
        assert moved["errors"] == []
    completes = await asyncio.gather(
        *(
            client.mutate("completeTask", {"taskId": deal.task_id}, token=deal.poster.access)
            for _ in range(2)
        )
    )
    assert sorted(len(payload["errors"]) for payload in completes) == [0, 1]
    # Claimed once; the transfer waits for the tasker's account, which appears now, while
    # every instance's sweep and the account's webhook try to release it at once.
    account = await runtime.services.payments.create_connected_account(
        email="tasker@example.com", country="AU", idempotency_key=f"race:{escrow.id}"
    )
    await ProviderProfile.get_pymongo_collection().update_one(
        {"_id": escrow.provider_id},
        {"$set": {"stripe_account_id": account.id, "payouts_enabled": True}},
        upsert=True,
    )
    await asyncio.gather(
        *(advance(runtime.services, escrow.id or ObjectId()) for _ in range(4)),
        *(sweep(runtime.services) for _ in range(2)),
        release_waiting_for(runtime.services, escrow.provider_id),
    )
    await sandbox(runtime).drain()
    released = await stored_escrow(global_id(escrow))
    assert released.status is EscrowStatus.RELEASED
    assert len(await transfers_of(runtime, released)) == 1
    assert await postings(released, MovementKind.ESCROW_RELEASED) == 1
    await assert_ledger_clean()


async def test_a_lost_intent_is_made_again_as_the_same_one(
    client: GraphQLClient, runtime: Runtime
) -> None:
    _deal, escrow = await unpaid(client)
    first = escrow.payment_intent_id
    assert first is not None
    # The gateway made it, and the process died before recording it.
    await Escrow.get_pymongo_collection().update_one(
        {"_id": escrow.id}, {"$set": {"payment_intent_id": None}}
    )
    await sweep(runtime.services)
    again = await Escrow.get(escrow.id)
    assert again is not None and again.payment_intent_id == first


async def test_a_lost_transfer_is_recorded_once_with_the_same_id(
    client: GraphQLClient, runtime: Runtime
) -> None:
    _deal, escrow = await held(client, runtime)

    async def claim(unit: UnitOfWork) -> Escrow | None:
        return await claim_release(unit, {"_id": escrow.id}, "approved")

    claimed = await transact(runtime.services, claim)
    assert claimed is not None and claimed.release is not None
    profile = await ProviderProfile.get(escrow.provider_id)
    assert profile is not None and profile.stripe_account_id is not None
    account = profile.stripe_account_id
    # The transfer is made, and its result lost in a crash.
    lost = await runtime.services.payments.create_transfer(
        amount=claimed.release.to_provider.amount,
        currency=claimed.release.to_provider.currency,
        destination_account_id=account,
        transfer_group=claimed.gateway_group,
        metadata={**payment_metadata(claimed), "release_round": "1"},
        idempotency_key=transfer_key(claimed, claimed.release),
        source_charge_id=claimed.charge_id,
    )
    await sweep(runtime.services)
    await sandbox(runtime).drain()
    released = await stored_escrow(global_id(escrow))
    assert released.status is EscrowStatus.RELEASED and released.transfer_id == lost.id
    assert await transfers_of(runtime, released) == [lost.id]
    assert await postings(released, MovementKind.ESCROW_RELEASED) == 1
    await assert_ledger_clean()


async def test_a_lost_refund_is_recorded_once(client: GraphQLClient, runtime: Runtime) -> None:
    _deal, escrow = await held(client, runtime)
    half = escrow.fees.charged.model_copy(update={"amount": escrow.fees.charged.amount // 2})

    async def claim(unit: UnitOfWork) -> object:
        return await claim_refund(unit, escrow, half, "goodwill")

    assert await transact(runtime.services, claim) is not None
    made = await runtime.services.payments.refund(
        escrow.payment_intent_id or "",
        amount=half.amount,
        metadata={**payment_metadata(escrow), "refund_number": "1"},
        idempotency_key=f"{escrow.gateway_group}:refund:1",
    )
    await sweep(runtime.services)
    refunded = await stored_escrow(global_id(escrow))
    assert refunded.status is EscrowStatus.PARTIALLY_REFUNDED
    assert refunded.refunds[0].refund_id == made.id and refunded.refunded == half
    assert await postings(refunded, MovementKind.REFUND) == 1
    await assert_ledger_clean()


async def test_a_refund_event_before_the_payment_event(
    client: GraphQLClient, runtime: Runtime
) -> None:
    _deal, escrow = await unpaid(client)
    secret = webhook_secret(runtime.services)
    charge = {
        "id": "ch_test",
        "object": "charge",
        "payment_intent": escrow.payment_intent_id,
        "amount": escrow.fees.charged.amount,
        "amount_refunded": 3000,
        "currency": escrow.fees.charged.currency.lower(),
        "metadata": payment_metadata(escrow),
    }
    refund = stripe_event("charge.refunded", charge)
    payment = stripe_event("payment_intent.succeeded", succeeded(escrow))
    assert (await post_event(client.http, refund, signature(refund, secret))).status_code == 200
    waiting = await WebhookEvent.find_one({"type": "charge.refunded"})
    assert waiting is not None and waiting.status is WebhookStatus.FAILED
    assert (await post_event(client.http, payment, signature(payment, secret))).status_code == 200
    await WebhookEvent.get_pymongo_collection().update_many(
        {}, {"$set": {"next_attempt_at": utcnow()}}
    )  # the backoff has passed
    await retry_due(runtime.services)
    # Delivered again, and another event saying the same: recorded once.
    again = stripe_event("charge.refunded", charge)
    for body in (refund, again):
        assert (await post_event(client.http, body, signature(body, secret))).status_code == 200
    recorded = await stored_escrow(global_id(escrow))
    assert recorded.status is EscrowStatus.PARTIALLY_REFUNDED
    assert recorded.refunded.amount == 3000 and recorded.refunds[0].external
    assert await postings(recorded, MovementKind.REFUND) == 1
    assert (
        await balance(ledger_accounts.funding(recorded.payer_id))
        == 3000 - escrow.fees.charged.amount
    )
    await assert_ledger_clean()
