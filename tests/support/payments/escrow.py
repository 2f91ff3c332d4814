"""Helpers for the escrow tests: deals made over GraphQL, paid in the sandbox gateway."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId

from documents.accounts.profiles import ProviderProfile
from documents.payments.escrow import Escrow
from documents.payments.ledger import LedgerTransaction
from integrations.payments.sandbox import SandboxGateway
from resolvers.payments import ledger
from resolvers.payments.ledger_check import verify
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient, Tokens
from tests.support.marketplace import make_offer, object_id, post_task, poster, tasker

ESCROW_FIELDS = """id status refunded { amount currency } paymentFailureCode requiresAction
  autoReleaseAt payer { id } payee { id }
  fees { price { amount currency } customerFee { amount } charged { amount }
         commissionOnHold { amount } commissionOnRelease { amount } providerShare { amount } }"""
TASK_ESCROW = (
    f"query($id: ID!) {{ node(id: $id) {{ ... on Task {{ escrow {{ {ESCROW_FIELDS} }} }} }} }}"
)
BOOKING_ESCROW = (
    f"query($id: ID!) {{ node(id: $id) {{ ... on Booking {{ escrow {{ {ESCROW_FIELDS} }} }} }} }}"
)
CLIENT_SECRET = "query($id: ID!) { node(id: $id) { ... on Escrow { clientSecret } } }"


def sandbox(runtime: Runtime) -> SandboxGateway:
    gateway = runtime.services.payments
    assert isinstance(gateway, SandboxGateway)
    return gateway


@dataclass(frozen=True)
class TaskDeal:
    poster: Tokens
    tasker: Tokens
    task_id: str
    offer_id: str


async def assigned_task(client: GraphQLClient, amount: int = 11000, tag: str = "") -> TaskDeal:
    """A task whose offer of `amount` the poster accepted: its escrow awaits payment."""
    who = await poster(client, f"poster{tag}@example.com")
    worker = await tasker(client, f"tasker{tag}@example.com")
    task = await post_task(client, who)
    offer = await make_offer(client, worker, task["id"], amount)
    accepted = await client.mutate(
        "acceptOffer", {"offerId": offer["id"]}, "offer { status }", token=who.access
    )
    assert accepted["errors"] == [], accepted
    return TaskDeal(who, worker, task["id"], offer["id"])


async def task_escrow(client: GraphQLClient, who: Tokens, task_id: str) -> dict[str, Any] | None:
    data = await client.data(TASK_ESCROW, {"id": task_id}, token=who.access)
    escrow: dict[str, Any] | None = data["node"]["escrow"]
    return escrow


async def booking_escrow(
    client: GraphQLClient, who: Tokens, booking_id: str
) -> dict[str, Any] | None:
    data = await client.data(BOOKING_ESCROW, {"id": booking_id}, token=who.access)
    escrow: dict[str, Any] | None = data["node"]["escrow"]
    return escrow


async def sandbox_pay(
    client: GraphQLClient, who: Tokens, escrow_id: str, outcome: str = "SUCCEEDED"
) -> dict[str, Any]:
    """The sandboxPay payload, errors included."""
    return await client.mutate(
        "sandboxPay",
        {"escrowId": escrow_id, "outcome": outcome},
        f"escrow {{ {ESCROW_FIELDS} }}",
        token=who.access,
    )


async def onboard(client: GraphQLClient, runtime: Runtime, who: Tokens) -> str:
    """The provider's connected account, onboarded with payouts enabled (as the gateway's
    `account.updated` reports it)."""
    started = await client.mutate("startPayoutOnboarding", {}, token=who.access)
    assert started["errors"] == [], started
    profile = await ProviderProfile.get(PydanticObjectId(object_id(who.user_id)))
    assert profile is not None and profile.stripe_account_id is not None
    await sandbox(runtime).complete_onboarding(profile.stripe_account_id)
    await sandbox(runtime).drain()
    return profile.stripe_account_id


def global_id(escrow: Escrow) -> str:
    return base64.b64encode(f"Escrow:{escrow.id}".encode()).decode()


async def stored_escrow(escrow_id: str) -> Escrow:
    escrow = await Escrow.get(PydanticObjectId(object_id(escrow_id)))
    assert escrow is not None
    return escrow


async def escrow_postings(escrow_id: ObjectId) -> list[LedgerTransaction]:
    return await LedgerTransaction.find({"refs.escrow": str(escrow_id)}).sort("_id").to_list()


async def balance(account: str, currency: str = "AUD") -> int:
    return (await ledger.balance(account, currency)).amount


async def assert_ledger_clean() -> None:
    report = await verify()
    assert report.ok, report


async def transfers_of(runtime: Runtime, escrow: Escrow) -> list[str]:
    """The ids of the sandbox's transfers for the escrow's deal."""
    now = datetime.now(UTC)
    return [
        transfer.id
        async for transfer in sandbox(runtime).list_transfers(
            now - timedelta(hours=1), now + timedelta(minutes=1)
        )
        if transfer.transfer_group == escrow.gateway_group
    ]


async def pay_task(client: GraphQLClient, payer: Tokens, task_id: str) -> None:
    """Pay an assigned task's escrow in the sandbox: work may start once it is held."""
    escrow = await task_escrow(client, payer, task_id)
    assert escrow is not None, "no escrow: is the task assigned?"
    paid = await sandbox_pay(client, payer, escrow["id"])
    assert paid["errors"] == [] and paid["escrow"]["status"] == "HELD", paid


async def pay_booking(client: GraphQLClient, customer: Tokens, booking_id: str) -> None:
    """Pay a confirmed booking's escrow in the sandbox."""
    escrow = await booking_escrow(client, customer, booking_id)
    assert escrow is not None, "no escrow: is the booking confirmed?"
    paid = await sandbox_pay(client, customer, escrow["id"])
    assert paid["errors"] == [] and paid["escrow"]["status"] == "HELD", paid
