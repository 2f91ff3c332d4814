"""Withdrawals from a provider's wallet: GraphQL over HTTP, the sandbox's payouts and
their webhook events, the ledger's guard under concurrency, and crash recovery."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import timedelta
from typing import Any

import pytest

from documents.accounts.profiles import ProviderProfile
from documents.accounts.users import User
from documents.events import DomainEvent, EventKind, Notification
from documents.payments.ledger import LedgerTransaction, MovementKind
from documents.payments.payouts import Withdrawal, WithdrawalStatus
from documents.payments.webhooks import WebhookEvent
from integrations.payments.gateway import GatewayEvent, Payout
from integrations.payments.sandbox import SandboxGateway
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.inputs import MoneyInput
from resolvers.common.services import Services
from resolvers.payments import withdrawals
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient, Tokens, error_codes
from tests.support.marketplace import object_id, tasker
from tests.support.payments.escrow import assert_ledger_clean, sandbox
from tests.support.payments.ledger import ledger_counts, usd
from tests.support.payments.wallets import (
    figures,
    fund,
    onboarded_provider,
    payout_id_of,
    request_withdrawal,
    start_onboarding,
    user_id,
    wallet,
)

MY_WITHDRAWALS = "{ myWithdrawals(first: 50) { edges { node { id status failureCode } } } }"


async def my_withdrawals(client: GraphQLClient, who: Tokens) -> list[dict[str, Any]]:
    data = await client.data(MY_WITHDRAWALS, token=who.access)
    return [edge["node"] for edge in data["myWithdrawals"]["edges"]]


async def test_a_withdrawal_is_paid_out_to_the_bank(
    client: GraphQLClient, runtime: Runtime
) -> None:
    who = await onboarded_provider(client, runtime, "paid@example.com")
    await fund(who, usd(10_000))

    payload = await request_withdrawal(client, who, 4_000)

    assert payload["errors"] == []
    assert payload["withdrawal"]["status"] == "IN_TRANSIT"
    assert figures(await wallet(client, who)) == {
        "balance": 6_000,
        "available": 6_000,
        "pending": 0,
        "inFlight": 4_000,
        "paidOut": 0,
    }

    gateway = sandbox(runtime)
    await gateway.pay_out(await payout_id_of(payload["withdrawal"]["id"]))
    await gateway.drain()

    assert await my_withdrawals(client, who) == [
        {"id": payload["withdrawal"]["id"], "status": "PAID", "failureCode": None}
    ]
    after = figures(await wallet(client, who))
    assert (after["available"], after["inFlight"], after["paidOut"]) == (6_000, 0, 4_000)
    kinds = [e.kind for e in await DomainEvent.find({"audience": user_id(who)}).to_list()]
    assert EventKind.PAYOUT_REQUESTED in kinds and EventKind.PAYOUT_PAID in kinds
    await assert_ledger_clean()


async def test_a_failed_payout_puts_the_money_back_and_tells_the_provider(
    client: GraphQLClient, runtime: Runtime
) -> None:
    who = await onboarded_provider(client, runtime, "bounced@example.com")
    await fund(who, usd(5_000))
    payload = await request_withdrawal(client, who, 5_000)
    payout_id = await payout_id_of(payload["withdrawal"]["id"])
    gateway = sandbox(runtime)

    await gateway.fail_payout(payout_id, "account_closed")
    await gateway.drain()

    assert await my_withdrawals(client, who) == [
        {"id": payload["withdrawal"]["id"], "status": "FAILED", "failureCode": "account_closed"}
    ]
    after = figures(await wallet(client, who))
    assert (after["available"], after["inFlight"], after["paidOut"]) == (5_000, 0, 0)
    notified = await Notification.find(
        {"user_id": user_id(who), "kind": EventKind.PAYOUT_FAILED.value}
    ).count()
    assert notified == 1
    await assert_ledger_clean()


async def test_payout_events_are_idempotent_in_any_order(
    client: GraphQLClient, runtime: Runtime
) -> None:
    """A bank may return a payout after reporting it paid; the failure may also arrive
    first. Either way the money ends in the wallet once, and repeats change nothing."""
    who = await onboarded_provider(client, runtime, "bank-returned@example.com")
    await fund(who, usd(3_000))
    payload = await request_withdrawal(client, who, 3_000)
    withdrawal_id = object_id(payload["withdrawal"]["id"])
    payout_id = await payout_id_of(payload["withdrawal"]["id"])
    gateway = sandbox(runtime)
    await gateway.pay_out(payout_id)
    await gateway.drain()
    (paid,) = await WebhookEvent.find({"type": "payout.paid"}).to_list()
    paid_event = GatewayEvent.from_stripe(json.loads(paid.payload))
    failed_event = dataclasses.replace(
        paid_event,
        id="evt_returned",
        type="payout.failed",
        data_object={**paid_event.data_object, "status": "failed", "failure_code": "no_account"},
    )
    services = runtime.services

    for _ in range(2):
        await withdrawals.payout_failed(services, failed_event)
        await withdrawals.payout_paid(services, paid_event)

    withdrawal = await Withdrawal.get(withdrawal_id)
    assert withdrawal is not None and withdrawal.status is WithdrawalStatus.FAILED
    after = figures(await wallet(client, who))
    assert (after["available"], after["inFlight"], after["paidOut"]) == (3_000, 0, 0)
    returned = LedgerTransaction.find({"kind": MovementKind.PAYOUT_FAILED.value})
    assert await returned.count() == 1
    await assert_ledger_clean()


async def test_withdrawing_needs_enabled_payouts(client: GraphQLClient, runtime: Runtime) -> None:
    never = await tasker(client, "no-account@example.com")
    await fund(never, usd(1_000))
    halfway = await tasker(client, "halfway@example.com")
    await start_onboarding(client, halfway)  # never completed
    await fund(halfway, usd(1_000))
    before = await ledger_counts()

    for who in (never, halfway):
        payload = await request_withdrawal(client, who, 500)
        assert error_codes(payload) == ["PAYOUTS_NOT_ENABLED"]
        assert payload["withdrawal"] is None

    assert await ledger_counts() == before
    assert await Withdrawal.find().count() == 0


@pytest.mark.parametrize(
    ("amount", "currency", "code"),
    [
        (0, "USD", "INVALID_INPUT"),
        (-100, "USD", "INVALID_INPUT"),
        (100, "EUR", "INVALID_INPUT"),  # the wallet holds no euros
        (100, "XXQ", "INVALID_INPUT"),
        (10_001, "USD", "INSUFFICIENT_FUNDS"),
    ],
)
async def test_a_refused_withdrawal_changes_nothing(
    client: GraphQLClient, runtime: Runtime, amount: int, currency: str, code: str
) -> None:
    who = await onboarded_provider(client, runtime, "refused@example.com")
    await fund(who, usd(10_000))
    before = await ledger_counts()

    payload = await request_withdrawal(client, who, amount, currency)

    assert error_codes(payload) == [code]
    assert payload["errors"][0]["field"] in ("amount", None)
    assert await ledger_counts() == before
    assert await Withdrawal.find().count() == 0
    assert figures(await wallet(client, who))["available"] == 10_000


async def test_twenty_concurrent_withdrawals_never_overdraw(
    client: GraphQLClient, runtime: Runtime
) -> None:
    who = await onboarded_provider(client, runtime, "stampede@example.com")
    await fund(who, usd(7_500))

    payloads = await asyncio.gather(*(request_withdrawal(client, who, 1_000) for _ in range(20)))

    succeeded = [p for p in payloads if p["errors"] == []]
    assert len(succeeded) == 7
    assert sorted(c for p in payloads for c in error_codes(p)) == ["INSUFFICIENT_FUNDS"] * 13
    assert figures(await wallet(client, who)) == {
        "balance": 500,
        "available": 500,
        "pending": 0,
        "inFlight": 7_000,
        "paidOut": 0,
    }
    stored = await Withdrawal.find({"provider_id": user_id(who)}).to_list()
    assert len(stored) == 7
    assert {w.status for w in stored} == {WithdrawalStatus.IN_TRANSIT}
    assert len({w.payout_id for w in stored}) == 7
    await assert_ledger_clean()


class ProcessDied(BaseException):
    """Stands for the process ending abruptly: nothing after it runs."""


@dataclasses.dataclass
class DiesAfterPayout:
    """The sandbox gateway, except that the process dies right after a payout is made,
    before its answer could be recorded."""

    sandbox: SandboxGateway
    made: list[Payout] = dataclasses.field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sandbox, name)

    async def create_payout(self, **request: Any) -> Payout:
        self.made.append(await self.sandbox.create_payout(**request))
        raise ProcessDied


async def test_a_crash_after_the_payout_is_recovered_by_the_retry_job_with_one_payout(
    client: GraphQLClient, runtime: Runtime
) -> None:
    who = await onboarded_provider(client, runtime, "crash@example.com")
    await fund(who, usd(2_000))
    gateway = sandbox(runtime)
    dying = DiesAfterPayout(gateway)
    services: Services = dataclasses.replace(runtime.services, payments=dying)
    user = await User.get(user_id(who))
    assert user is not None
    viewer = Viewer(user=user, session_id=user_id(who))

    with pytest.raises(ProcessDied):
        await withdrawals.request_withdrawal(services, viewer, MoneyInput(1_500, "USD"))

    (withdrawal,) = await Withdrawal.find().to_list()
    assert (withdrawal.status, withdrawal.payout_id) == (WithdrawalStatus.REQUESTED, None)
    assert figures(await wallet(client, who))["inFlight"] == 1_500
    (made,) = dying.made

    # Requests this recent are left alone, as if still on their way to the gateway.
    assert await withdrawals.retry_unsent_payouts(runtime.services) == 0
    assert await withdrawals.retry_unsent_payouts(runtime.services, older_than=timedelta(0)) == 1

    recovered = await Withdrawal.get(withdrawal.id)
    assert recovered is not None
    assert (recovered.status, recovered.payout_id) == (WithdrawalStatus.IN_TRANSIT, made.id)
    await gateway.drain()
    assert await WebhookEvent.find({"type": "payout.created"}).count() == 1  # one payout
    # (A `payout.paid` arriving before the retry records the payout itself:
    # tests/payments/webhooks/test_webhook_mismatches_connect.py.)
    await gateway.pay_out(made.id)
    await gateway.drain()
    settled = await Withdrawal.get(withdrawal.id)
    assert settled is not None and settled.status is WithdrawalStatus.PAID
    after = figures(await wallet(client, who))
    assert (after["available"], after["inFlight"], after["paidOut"]) == (500, 0, 1_500)
    await assert_ledger_clean()


async def test_a_payout_the_gateway_refuses_fails_at_once_and_returns_the_money(
    client: GraphQLClient, runtime: Runtime
) -> None:
    who = await tasker(client, "refused-payout@example.com")
    await start_onboarding(client, who)
    # Our flags say enabled, the gateway's account does not (it changed in between).
    await ProviderProfile.get_pymongo_collection().update_one(
        {"_id": user_id(who)}, {"$set": {"payouts_enabled": True}}
    )
    await fund(who, usd(2_000))

    payload = await request_withdrawal(client, who, 2_000)

    assert payload["errors"] == []
    assert payload["withdrawal"]["status"] == "FAILED"
    assert payload["withdrawal"]["failureCode"] == "payouts_not_allowed"
    after = figures(await wallet(client, who))
    assert (after["available"], after["inFlight"]) == (2_000, 0)
    await assert_ledger_clean()
