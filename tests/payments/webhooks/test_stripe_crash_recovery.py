"""A crash between a Stripe call and its database write, on the Stripe adapter over HTTP
(the Stripe stub in front of localstripe): Stripe made the object, the process died
before recording it, and the sweep or the retry job repeats the request with the same
`Idempotency-Key`, gets the same object back, and Stripe holds exactly one."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from beanie import PydanticObjectId

from documents.accounts.profiles import ProviderProfile
from documents.accounts.users import User
from documents.money import Money
from documents.payments.escrow import Escrow, EscrowStatus
from documents.payments.payouts import Withdrawal, WithdrawalStatus
from integrations.payments.gateway import PaymentIntent, Payout, Refund, Transfer
from integrations.payments.stripe_gateway import StripeGateway
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.inputs import MoneyInput
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.payments import withdrawals
from resolvers.payments.escrow.escrows import open_escrow
from resolvers.payments.escrow.progress import advance, sweep
from resolvers.payments.escrow.refunds import claim_refund
from resolvers.payments.escrow.release import claim_release
from resolvers.payments.reconcile.against_gateway import reconcile
from resolvers.payments.webhooks.inbox import receive
from server.runtime import Runtime
from tests.payments.gateways.conftest import localstripe_url, stripe_gateway, stripe_stub
from tests.payments.gateways.harness import SECRET_KEY, WEBHOOK_SECRET, StripeHarness, new_key
from tests.payments.gateways.stripe_stub import StripeStub
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import object_id, tasker
from tests.support.payments.escrow import assert_ledger_clean
from tests.support.payments.ledger import fund_wallet
from tests.support.payments.reconcile import next_second, until_now

# The Stripe adapter's fixtures (localstripe, the stub in front of it, the gateway).
__all__ = ["localstripe_url", "stripe_gateway", "stripe_stub"]


class ProcessDied(Exception):
    """The process died right after Stripe answered, before anything was written."""


class DiesAfter(StripeGateway):
    """Stripe, except that the process dies once, as soon as `call` has been answered."""

    def __init__(self, stub: StripeStub, call: str) -> None:
        super().__init__(SECRET_KEY, WEBHOOK_SECRET, api_base=stub.url)
        self.call = call
        self.answered: list[object] = []

    def _then_die(self, call: str, answer: object) -> None:
        if call == self.call and not self.answered:
            self.answered.append(answer)
            raise ProcessDied

    async def create_payment_intent(self, *args: Any, **kwargs: Any) -> PaymentIntent:
        intent = await super().create_payment_intent(*args, **kwargs)
        self._then_die("create_payment_intent", intent)
        return intent

    async def refund(self, *args: Any, **kwargs: Any) -> Refund:
        refund = await super().refund(*args, **kwargs)
        self._then_die("refund", refund)
        return refund

    async def create_transfer(self, *args: Any, **kwargs: Any) -> Transfer:
        transfer = await super().create_transfer(*args, **kwargs)
        self._then_die("create_transfer", transfer)
        return transfer

    async def create_payout(self, *args: Any, **kwargs: Any) -> Payout:
        payout = await super().create_payout(*args, **kwargs)
        self._then_die("create_payout", payout)
        return payout


def on(runtime: Runtime, gateway: StripeGateway) -> Services:
    return dataclasses.replace(runtime.services, payments=gateway)


def sent_with(stub: StripeStub, key: str) -> list[str]:
    """The paths of the requests that carried `key`."""
    return [seen.path for seen in stub.seen if seen.idempotency_key == key]


async def connected_account(gateway: StripeGateway, stub: StripeStub) -> str:
    account = await gateway.create_connected_account(
        email="p@example.com", country="AU", idempotency_key=new_key("acct")
    )
    stub.complete_onboarding(account.id)
    return account.id


async def new_escrow(services: Services) -> Escrow:
    async def work(unit: UnitOfWork) -> Escrow:
        return await open_escrow(
            unit,
            services.terms,
            services.fees,
            deal=f"task:{PydanticObjectId()}",
            payer_id=PydanticObjectId(),
            provider_id=PydanticObjectId(),
            price=Money(amount=11000, currency="AUD"),
        )

    return await transact(services, work)


async def stored(escrow: Escrow) -> Escrow:
    found = await Escrow.get(escrow.id)
    assert found is not None
    return found


async def test_a_lost_intent_refund_and_transfer_are_each_made_once_on_stripe(
    runtime: Runtime, stripe_gateway: StripeGateway, stripe_stub: StripeStub
) -> None:
    start = await next_second()
    stripe = on(runtime, stripe_gateway)
    escrow = await new_escrow(stripe)
    group = escrow.gateway_group

    # The intent: made, then the process dies before recording its id.
    dying = DiesAfter(stripe_stub, "create_payment_intent")
    with pytest.raises(ProcessDied):
        await advance(on(runtime, dying), escrow.id or PydanticObjectId())
    assert (await stored(escrow)).payment_intent_id is None
    await sweep(stripe)
    (lost,) = dying.answered
    assert isinstance(lost, PaymentIntent)
    assert (await stored(escrow)).payment_intent_id == lost.id
    assert sent_with(stripe_stub, f"{group}:intent") == ["/v1/payment_intents"] * 2
    intents = [i async for i in stripe_gateway.list_payment_intents(start, until_now())]
    assert [i.id for i in intents if i.transfer_group == group] == [lost.id]

    # The payer pays on localstripe; its signed webhook goes through our inbox.
    await StripeHarness(stripe_gateway, stripe_stub).pay(lost)
    body = await stripe_stub.webhook(
        lambda e: e["type"] == "payment_intent.succeeded" and e["data"]["object"]["id"] == lost.id
    )
    await receive(stripe, body, stripe_stub.signature_of(body))
    paid = await stored(escrow)
    assert paid.status is EscrowStatus.HELD and paid.charge_id

    # A partial refund: made, then the process dies before recording it.
    async def claim(unit: UnitOfWork) -> object:
        return await claim_refund(unit, paid, Money(amount=2100, currency="AUD"), "goodwill")

    assert await transact(stripe, claim) is not None
    dying = DiesAfter(stripe_stub, "refund")
    with pytest.raises(ProcessDied):
        await advance(on(runtime, dying), escrow.id or PydanticObjectId())
    assert (await stored(escrow)).pending_refund is not None
    await sweep(stripe)
    (made,) = dying.answered
    assert isinstance(made, Refund)
    refunded = await stored(escrow)
    assert refunded.status is EscrowStatus.PARTIALLY_REFUNDED
    assert [r.refund_id for r in refunded.refunds] == [made.id]
    assert sent_with(stripe_stub, f"{group}:refund:1") == ["/v1/refunds"] * 2
    refunds = [r async for r in stripe_gateway.list_refunds(start, until_now())]
    assert [r.id for r in refunds if r.payment_intent_id == lost.id] == [made.id]

    # The release: the transfer is made, then the process dies before recording it.
    account = await connected_account(stripe_gateway, stripe_stub)
    await ProviderProfile.get_pymongo_collection().update_one(
        {"_id": escrow.provider_id},
        {"$set": {"stripe_account_id": account, "payouts_enabled": True}},
        upsert=True,
    )

    async def release(unit: UnitOfWork) -> Escrow | None:
        return await claim_release(unit, {"_id": escrow.id}, "approved")

    assert await transact(stripe, release) is not None
    dying = DiesAfter(stripe_stub, "create_transfer")
    with pytest.raises(ProcessDied):
        await advance(on(runtime, dying), escrow.id or PydanticObjectId())
    assert (await stored(escrow)).status is EscrowStatus.RELEASING
    await sweep(stripe)
    (transfer,) = dying.answered
    assert isinstance(transfer, Transfer)
    released = await stored(escrow)
    assert released.status is EscrowStatus.RELEASED and released.transfer_id == transfer.id
    assert sent_with(stripe_stub, f"{group}:transfer") == ["/v1/transfers"] * 2
    transfers = [t async for t in stripe_gateway.list_transfers(start, until_now())]
    assert [t.id for t in transfers if t.transfer_group == group] == [transfer.id]

    # Our records, the ledger and Stripe agree.
    await assert_ledger_clean()
    result = await reconcile(stripe_gateway, start, until_now())
    assert result.findings == []


async def test_a_lost_payout_is_made_once_on_stripe(
    client: GraphQLClient,
    runtime: Runtime,
    stripe_gateway: StripeGateway,
    stripe_stub: StripeStub,
) -> None:
    start = await next_second()
    who = await tasker(client, "stripe-crash@example.com")
    provider = object_id(who.user_id)
    account = await connected_account(stripe_gateway, stripe_stub)
    await ProviderProfile.get_pymongo_collection().update_one(
        {"_id": provider},
        {"$set": {"stripe_account_id": account, "payouts_enabled": True}},
        upsert=True,
    )
    await fund_wallet(provider, Money(amount=3000, currency="AUD"))
    user = await User.get(provider)
    assert user is not None
    dying = DiesAfter(stripe_stub, "create_payout")

    with pytest.raises(ProcessDied):
        await withdrawals.request_withdrawal(
            on(runtime, dying), Viewer(user=user, session_id=provider), MoneyInput(2500, "AUD")
        )
    (withdrawal,) = await Withdrawal.find().to_list()
    assert (withdrawal.status, withdrawal.payout_id) == (WithdrawalStatus.REQUESTED, None)
    retried = await withdrawals.retry_unsent_payouts(
        on(runtime, stripe_gateway), older_than=timedelta(0)
    )

    (made,) = dying.answered
    assert isinstance(made, Payout) and retried == 1
    recovered = await Withdrawal.get(withdrawal.id)
    assert recovered is not None
    assert (recovered.status, recovered.payout_id) == (WithdrawalStatus.IN_TRANSIT, made.id)
    key = withdrawals.payout_key(withdrawal.id or PydanticObjectId())
    assert sent_with(stripe_stub, key) == ["/v1/payouts"] * 2
    payouts = [p async for p in stripe_gateway.list_payouts(account, start, until_now())]
    assert [(p.id, dict(p.metadata)) for p in payouts] == [
        (made.id, {"withdrawal_id": str(withdrawal.id), "provider_id": str(provider)})
    ]
    await assert_ledger_clean()
    assert (await reconcile(stripe_gateway, start, until_now())).findings == []
