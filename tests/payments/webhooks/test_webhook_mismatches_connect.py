"""Correctly signed Connect and Identity events that contradict what we recorded: an
account update or a payout of another connected account (or of none), a payout of
another amount, currency or id, a verification session named on a connected account or
not verified. Each changes nothing, is stored as rejected with what differed, is listed
for admins, and the genuine event still works afterwards."""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId

from documents.accounts.profiles import IdentityVerification, ProviderProfile
from documents.payments.payouts import Withdrawal, WithdrawalStatus
from server.runtime import Runtime
from tests.payments.payouts.test_connect import account_object
from tests.payments.payouts.test_connect_identity import session_of, start, verification
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import logged_in_admin, object_id, tasker
from tests.support.payments.escrow import assert_ledger_clean, sandbox
from tests.support.payments.ledger import usd
from tests.support.payments.wallets import (
    MY_PAYOUT_ACCOUNT,
    figures,
    fund,
    onboarded_provider,
    request_withdrawal,
    start_onboarding,
    stripe_account_of,
    user_id,
    wallet,
)
from tests.support.payments.webhooks import Variant, differing, rejected_in_turn, rejections_seen_by

ELSEWHERE = "acct_elsewhere"


async def assert_listed_for_admins(
    client: GraphQLClient, runtime: Runtime, rejected: list[str]
) -> None:
    admin = await logged_in_admin(client, runtime)
    seen = await rejections_seen_by(client, admin)
    assert seen == {event_id: await differing(event_id) for event_id in rejected}


async def test_an_account_update_of_another_connected_account_changes_no_flags(
    client: GraphQLClient, runtime: Runtime
) -> None:
    who = await tasker(client, "connected@example.com")
    assert (await start_onboarding(client, who))["errors"] == []
    account = await stripe_account_of(who)
    genuine = account_object(account, payouts_enabled=True)
    variants: dict[str, Variant] = {
        "on another account": ({}, ELSEWHERE, ["account"]),
        "on the platform's account": ({}, None, ["account"]),
    }

    rejected = await rejected_in_turn(
        client, runtime.services, "account.updated", genuine, variants
    )

    shown = (await client.data(MY_PAYOUT_ACCOUNT, token=who.access))["myPayoutAccount"]
    assert shown["payoutsEnabled"] is False and shown["detailsSubmitted"] is False
    profile = await ProviderProfile.get(user_id(who))
    assert profile is not None and profile.account_synced_at is None
    await assert_listed_for_admins(client, runtime, rejected)

    await sandbox(runtime).complete_onboarding(account)
    await sandbox(runtime).drain()
    enabled = (await client.data(MY_PAYOUT_ACCOUNT, token=who.access))["myPayoutAccount"]
    assert enabled["payoutsEnabled"] is True


def payout_object(withdrawal: Withdrawal, status: str) -> dict[str, Any]:
    """The withdrawal's payout as its `payout.*` events show it."""
    return {
        "id": withdrawal.payout_id,
        "object": "payout",
        "amount": withdrawal.amount.amount,
        "currency": withdrawal.amount.currency.lower(),
        "status": status,
        "failure_code": "account_closed" if status == "failed" else None,
        "metadata": {
            "withdrawal_id": str(withdrawal.id),
            "provider_id": str(withdrawal.provider_id),
        },
        "created": int(withdrawal.requested_at.timestamp()),
    }


def payout_variants(genuine: dict[str, Any], account: str) -> dict[str, Variant]:
    return {
        "on another account": ({}, ELSEWHERE, ["account"]),
        "on the platform's account": ({}, None, ["account"]),
        "another amount": ({"amount": genuine["amount"] + 1}, account, ["amount"]),
        "another currency": ({"currency": "eur"}, account, ["currency"]),
        "another payout": ({"id": "po_another"}, account, ["payout"]),
        "another provider's": (
            {"metadata": {**genuine["metadata"], "provider_id": str(ObjectId())}},
            account,
            ["metadata.provider_id"],
        ),
    }


@pytest.mark.parametrize("status", ["paid", "failed"])
async def test_a_payout_event_that_differs_from_the_withdrawal_settles_nothing(
    client: GraphQLClient, runtime: Runtime, status: str
) -> None:
    who = await onboarded_provider(client, runtime, "payee@example.com")
    await fund(who, usd(10_000))
    requested = await request_withdrawal(client, who, 4_000)
    assert requested["withdrawal"]["status"] == "IN_TRANSIT"
    withdrawal = await Withdrawal.get(object_id(requested["withdrawal"]["id"]))
    assert withdrawal is not None and withdrawal.payout_id is not None
    account = await stripe_account_of(who)
    genuine = payout_object(withdrawal, status)

    rejected = await rejected_in_turn(
        client, runtime.services, f"payout.{status}", genuine, payout_variants(genuine, account)
    )

    after = await Withdrawal.get(withdrawal.id)
    assert after is not None and after.status is WithdrawalStatus.IN_TRANSIT
    assert after.payout_id == withdrawal.payout_id and after.failure_code is None
    assert figures(await wallet(client, who)) == {
        "balance": 6_000,
        "available": 6_000,
        "pending": 0,
        "inFlight": 4_000,
        "paidOut": 0,
    }
    await assert_listed_for_admins(client, runtime, rejected)

    gateway = sandbox(runtime)
    if status == "paid":
        await gateway.pay_out(withdrawal.payout_id)
    else:
        await gateway.fail_payout(withdrawal.payout_id, "account_closed")
    await gateway.drain()
    settled = await Withdrawal.get(withdrawal.id)
    assert settled is not None
    assert settled.status is (
        WithdrawalStatus.PAID if status == "paid" else WithdrawalStatus.FAILED
    )
    await assert_ledger_clean()


async def test_a_payout_id_lost_in_a_crash_is_adopted_only_from_a_matching_event(
    client: GraphQLClient, runtime: Runtime
) -> None:
    """The payout was made; the process died before recording its id. Its `payout.paid`
    records it when account, amount and currency match, and settles the withdrawal."""
    who = await onboarded_provider(client, runtime, "crashed@example.com")
    await fund(who, usd(10_000))
    requested = await request_withdrawal(client, who, 4_000)
    withdrawal = await Withdrawal.get(object_id(requested["withdrawal"]["id"]))
    assert withdrawal is not None and withdrawal.payout_id is not None
    payout_id = withdrawal.payout_id
    await Withdrawal.get_pymongo_collection().update_one(
        {"_id": withdrawal.id},
        {"$set": {"status": WithdrawalStatus.REQUESTED.value, "payout_id": None}},
    )
    account = await stripe_account_of(who)
    variants: dict[str, Variant] = {
        "another amount": ({"amount": 3_999}, account, ["amount"]),
        "on another account": ({}, ELSEWHERE, ["account"]),
    }

    rejected = await rejected_in_turn(
        client, runtime.services, "payout.paid", payout_object(withdrawal, "paid"), variants
    )

    lost = await Withdrawal.get(withdrawal.id)
    assert lost is not None and (lost.status, lost.payout_id) == (WithdrawalStatus.REQUESTED, None)
    await assert_listed_for_admins(client, runtime, rejected)

    await sandbox(runtime).pay_out(payout_id)
    await sandbox(runtime).drain()
    paid = await Withdrawal.get(withdrawal.id)
    assert paid is not None and (paid.status, paid.payout_id) == (WithdrawalStatus.PAID, payout_id)
    assert figures(await wallet(client, who))["paidOut"] == 4_000
    await assert_ledger_clean()


async def test_an_identity_verification_named_on_an_account_or_not_verified_verifies_no_one(
    client: GraphQLClient, runtime: Runtime
) -> None:
    who = await tasker(client, "identity@example.com")
    assert (await start(client, who))["errors"] == []
    profile = await session_of(who)
    assert profile.identity_session_id is not None
    genuine = {
        "id": profile.identity_session_id,
        "object": "identity.verification_session",
        "metadata": {"user_id": str(user_id(who))},
        "status": "verified",
        "last_error": None,
    }
    variants: dict[str, Variant] = {
        "on a connected account": ({}, ELSEWHERE, ["account"]),
        "a session still asking for input": ({"status": "requires_input"}, None, ["status"]),
    }

    rejected = await rejected_in_turn(
        client, runtime.services, "identity.verification_session.verified", genuine, variants
    )

    assert await verification(client, who) == "PENDING"
    after = await session_of(who)
    assert after.identity_verification is IdentityVerification.PENDING
    assert after.identity_session_status == "requires_input"
    await assert_listed_for_admins(client, runtime, rejected)

    await sandbox(runtime).verify_identity(profile.identity_session_id, ok=True)
    await sandbox(runtime).drain()
    assert await verification(client, who) == "VERIFIED"
