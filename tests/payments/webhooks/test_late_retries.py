"""Retries after the gateway's idempotency window: Stripe forgets a key after 24 hours, so
a transfer, refund or payout made but not recorded before then, and retried later with
the same key, would be made twice. The late retry finds it at the gateway and records it;
one never made is made once. Against the sandbox and the Stripe adapter over HTTP (the
stub in front of localstripe), each made to forget its keys as Stripe does."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from beanie import PydanticObjectId

from documents.accounts.profiles import ProviderProfile
from documents.accounts.users import User
from documents.money import Money
from documents.payments.escrow import Escrow, EscrowStatus
from documents.payments.payouts import Withdrawal, WithdrawalStatus
from integrations.payments.gateway import PaymentGateway, Payout, Refund, Transfer
from integrations.payments.sandbox import SandboxGateway
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.inputs import MoneyInput
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.payments import withdrawals
from resolvers.payments.escrow.progress import advance, sweep
from resolvers.payments.escrow.refunds import claim_refund
from resolvers.payments.escrow.release import claim_release
from resolvers.payments.webhooks.inbox import receive
from server.runtime import Runtime
from tests.payments.gateways.conftest import (
    deliveries,
    localstripe_url,
    sandbox,
    sandbox_database,
    stripe_gateway,
    stripe_stub,
)
from tests.payments.gateways.harness import Harness, SandboxHarness, StripeHarness, new_key
from tests.payments.gateways.stripe_stub import StripeStub
from tests.payments.webhooks.test_stripe_crash_recovery import ProcessDied, new_escrow, stored
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import object_id, tasker
from tests.support.payments.escrow import assert_ledger_clean
from tests.support.payments.ledger import fund_wallet

# The gateways' fixtures: localstripe, the stub in front of it, the adapter; the sandbox.
__all__ = [
    "deliveries",
    "localstripe_url",
    "sandbox",
    "sandbox_database",
    "stripe_gateway",
    "stripe_stub",
]

LONG_AGO = timedelta(days=2)
"""Older than any idempotency window: the gateway has forgotten the step's key."""

Webhook = tuple[bytes, str]


@dataclasses.dataclass(frozen=True)
class Side:
    """A gateway with what these tests do to it."""

    harness: Harness
    forget_idempotency_keys: Callable[[], Awaitable[None]]
    webhook: Callable[[str, str], Awaitable[Webhook]]
    """The body and signature of the event of this type about this object."""

    @property
    def gateway(self) -> PaymentGateway:
        return self.harness.gateway


def _about(event_type: str, object_id: str, event: dict[str, Any]) -> bool:
    return bool(event["type"] == event_type and event["data"]["object"]["id"] == object_id)


@pytest.fixture(params=["stripe", "sandbox"])
def side(request: pytest.FixtureRequest) -> Side:
    if request.param == "stripe":
        stub: StripeStub = request.getfixturevalue("stripe_stub")

        async def stripe_webhook(event_type: str, object_id: str) -> Webhook:
            body = await stub.webhook(lambda event: _about(event_type, object_id, event))
            return body, stub.signature_of(body)

        async def forget_idempotency_keys() -> None:
            stub.forget_idempotency_keys()

        return Side(
            StripeHarness(request.getfixturevalue("stripe_gateway"), stub),
            forget_idempotency_keys,
            stripe_webhook,
        )
    gateway: SandboxGateway = request.getfixturevalue("sandbox")
    delivered: list[Webhook] = request.getfixturevalue("deliveries")

    async def sandbox_webhook(event_type: str, object_id: str) -> Webhook:
        await gateway.drain()
        return next(
            sent for sent in delivered if _about(event_type, object_id, json.loads(sent[0]))
        )

    return Side(
        SandboxHarness(gateway, delivered), gateway.forget_idempotency_keys, sandbox_webhook
    )


class Dies:
    """The gateway, except that the process dies once at `call`: right after the gateway
    answered it (it made the object, we never learnt of it), or right before."""

    def __init__(self, gateway: PaymentGateway, call: str, *, before: bool = False) -> None:
        self._gateway = gateway
        self._call = call
        self._before = before
        self.answered: list[object] = []
        self.died = False

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._gateway, name)
        if name != self._call:
            return method

        async def dying(*args: Any, **kwargs: Any) -> object:
            if self.died:
                return await method(*args, **kwargs)
            self.died = True
            if self._before:
                raise ProcessDied
            self.answered.append(await method(*args, **kwargs))
            raise ProcessDied

        return dying


def on(runtime: Runtime, gateway: PaymentGateway | Dies) -> Services:
    return dataclasses.replace(runtime.services, payments=cast("PaymentGateway", gateway))


def recent() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - LONG_AGO - timedelta(hours=1), now + timedelta(minutes=1)


async def transfers(side: Side, escrow: Escrow) -> list[str]:
    listed = side.gateway.list_transfers(*recent(), transfer_group=escrow.gateway_group)
    return [transfer.id async for transfer in listed]


async def refunds(side: Side, escrow: Escrow) -> list[str]:
    assert escrow.payment_intent_id is not None
    listed = side.gateway.list_refunds(*recent(), payment_intent_id=escrow.payment_intent_id)
    return [refund.id async for refund in listed]


async def payouts(side: Side, account: str) -> list[str]:
    return [payout.id async for payout in side.gateway.list_payouts(account, *recent())]


async def connected_account(side: Side) -> str:
    account = await side.gateway.create_connected_account(
        email="p@example.com", country="AU", idempotency_key=new_key("acct")
    )
    await side.harness.complete_onboarding(account.id)
    return account.id


async def paid_escrow(runtime: Runtime, side: Side) -> Escrow:
    """An escrow paid at the gateway, its provider onboarded."""
    services = on(runtime, side.gateway)
    escrow = await new_escrow(services)
    await advance(services, escrow.id or PydanticObjectId())
    intent_id = (await stored(escrow)).payment_intent_id
    assert intent_id is not None
    await side.harness.pay(await side.gateway.retrieve_payment_intent(intent_id))
    await receive(services, *await side.webhook("payment_intent.succeeded", intent_id))
    account = await connected_account(side)
    await ProviderProfile.get_pymongo_collection().update_one(
        {"_id": escrow.provider_id},
        {"$set": {"stripe_account_id": account, "payouts_enabled": True}},
        upsert=True,
    )
    paid = await stored(escrow)
    assert paid.status is EscrowStatus.HELD
    return paid


async def claim_a_refund(services: Services, escrow: Escrow) -> None:
    async def claim(unit: UnitOfWork) -> object:
        return await claim_refund(unit, escrow, Money(amount=2100, currency="AUD"), "goodwill")

    assert await transact(services, claim) is not None


async def claim_the_release(services: Services, escrow: Escrow) -> None:
    async def claim(unit: UnitOfWork) -> Escrow | None:
        return await claim_release(unit, {"_id": escrow.id}, "approved")

    assert await transact(services, claim) is not None


async def age_escrow_claims(escrow: Escrow) -> None:
    """The escrow's claimed refunds and release were claimed long ago."""
    at = datetime.now(UTC) - LONG_AGO
    fields: dict[str, object] = {"refunds.$[].at": at}
    if (await stored(escrow)).release is not None:
        fields["release.claimed_at"] = at
    await Escrow.get_pymongo_collection().update_one({"_id": escrow.id}, {"$set": fields})


async def test_a_refund_and_transfer_made_but_unrecorded_are_recorded_not_made_again(
    runtime: Runtime, side: Side
) -> None:
    escrow = await paid_escrow(runtime, side)
    services = on(runtime, side.gateway)

    await claim_a_refund(services, escrow)
    dying = Dies(side.gateway, "refund")
    with pytest.raises(ProcessDied):
        await advance(on(runtime, dying), escrow.id or PydanticObjectId())
    (made,) = dying.answered
    assert isinstance(made, Refund)
    await age_escrow_claims(escrow)
    await side.forget_idempotency_keys()
    await sweep(services)
    refunded = await stored(escrow)
    assert refunded.status is EscrowStatus.PARTIALLY_REFUNDED
    assert [r.refund_id for r in refunded.refunds] == [made.id]
    assert await refunds(side, escrow) == [made.id]

    await claim_the_release(services, escrow)
    dying = Dies(side.gateway, "create_transfer")
    with pytest.raises(ProcessDied):
        await advance(on(runtime, dying), escrow.id or PydanticObjectId())
    (transfer,) = dying.answered
    assert isinstance(transfer, Transfer)
    await age_escrow_claims(escrow)
    await side.forget_idempotency_keys()
    await sweep(services)
    released = await stored(escrow)
    assert (released.status, released.transfer_id) == (EscrowStatus.RELEASED, transfer.id)
    assert await transfers(side, escrow) == [transfer.id]
    await assert_ledger_clean()


async def test_a_refund_and_transfer_never_made_are_made_once(runtime: Runtime, side: Side) -> None:
    escrow = await paid_escrow(runtime, side)
    services = on(runtime, side.gateway)

    await claim_a_refund(services, escrow)
    await age_escrow_claims(escrow)
    await sweep(services)
    await sweep(services)  # a repeat finds it made and recorded
    refunded = await stored(escrow)
    made = await refunds(side, escrow)
    assert len(made) == 1
    assert [r.refund_id for r in refunded.refunds] == made

    await claim_the_release(services, escrow)
    await age_escrow_claims(escrow)
    dying = Dies(side.gateway, "create_transfer")
    with pytest.raises(ProcessDied):  # made under the new key, and not recorded either
        await advance(on(runtime, dying), escrow.id or PydanticObjectId())
    (transfer,) = dying.answered
    assert isinstance(transfer, Transfer)
    await sweep(services)
    released = await stored(escrow)
    assert (released.status, released.transfer_id) == (EscrowStatus.RELEASED, transfer.id)
    assert await transfers(side, escrow) == [transfer.id]
    await assert_ledger_clean()


async def test_a_late_payout_retry_records_the_payout_made_or_makes_one(
    client: GraphQLClient, runtime: Runtime, side: Side
) -> None:
    who = await tasker(client, "late-payout@example.com")
    provider = object_id(who.user_id)
    account = await connected_account(side)
    await ProviderProfile.get_pymongo_collection().update_one(
        {"_id": provider},
        {"$set": {"stripe_account_id": account, "payouts_enabled": True}},
        upsert=True,
    )
    await fund_wallet(provider, Money(amount=5000, currency="AUD"))
    user = await User.get(provider)
    assert user is not None
    viewer = Viewer(user=user, session_id=provider)
    services = on(runtime, side.gateway)

    made_then_died = Dies(side.gateway, "create_payout")
    with pytest.raises(ProcessDied):
        await withdrawals.request_withdrawal(
            on(runtime, made_then_died), viewer, MoneyInput(2500, "AUD")
        )
    (made,) = made_then_died.answered
    assert isinstance(made, Payout)
    died_first = Dies(side.gateway, "create_payout", before=True)
    with pytest.raises(ProcessDied):
        await withdrawals.request_withdrawal(
            on(runtime, died_first), viewer, MoneyInput(1500, "AUD")
        )
    await Withdrawal.get_pymongo_collection().update_many(
        {}, {"$set": {"requested_at": datetime.now(UTC) - LONG_AGO}}
    )
    await side.forget_idempotency_keys()

    assert await withdrawals.retry_unsent_payouts(services, older_than=timedelta(0)) == 2
    assert await withdrawals.retry_unsent_payouts(services, older_than=timedelta(0)) == 0
    sent = {w.amount.amount: w for w in await Withdrawal.find().to_list()}
    assert {w.status for w in sent.values()} == {WithdrawalStatus.IN_TRANSIT}
    assert sent[2500].payout_id == made.id
    listed = await payouts(side, account)
    assert len(listed) == 2 and set(listed) == {made.id, sent[1500].payout_id}
    await assert_ledger_clean()
