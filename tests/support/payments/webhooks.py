"""Webhook events as Stripe sends them: Stripe's event shape, signed with the secret of
the test runtime's sandbox gateway, posted to `/webhooks/stripe`."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

import httpx

from documents.payments.webhooks import WebhookEvent, WebhookStatus
from integrations.payments.gateway import GatewayEvent
from integrations.payments.sandbox import SandboxGateway
from integrations.payments.webhooks import sign_payload
from resolvers.common.services import Services
from resolvers.payments.webhooks.handlers import Handler, NotReady
from resolvers.payments.webhooks.inbox import receive
from tests.support.graphql_client import GraphQLClient, Tokens

ROUTE = "/webhooks/stripe"
REJECTED_EVENTS = """{ webhookEvents(first: 50, status: REJECTED) {
  edges { node { eventId status lastError differences { field recorded received } } } } }"""
UNKNOWN_TYPE = "customer.tax_id.created"
"""A real Stripe event type that gigql does not act on."""
FLAKY = "test.flaky"
"""An event type only the tests' own handler tables know."""


def webhook_secret(services: Services) -> str:
    sandbox = services.payments
    assert isinstance(sandbox, SandboxGateway), "the tests run on the sandbox gateway"
    return sandbox.webhook_secret


def stripe_event(
    event_type: str = UNKNOWN_TYPE,
    data_object: dict[str, Any] | None = None,
    *,
    event_id: str | None = None,
    account: str | None = None,
    created: int | None = None,
) -> bytes:
    """A webhook body in Stripe's event shape."""
    event: dict[str, Any] = {
        "id": event_id or f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()) if created is None else created,
        "data": {"object": data_object or {"id": f"obj_{secrets.token_hex(8)}"}},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    if account is not None:
        event["account"] = account
    return json.dumps(event).encode()


def chargeback_object(
    dispute_id: str,
    *,
    charge: str,
    payment_intent: str | None,
    amount: int,
    currency: str,
    status: str = "needs_response",
) -> dict[str, Any]:
    """A Stripe Dispute, the object of `charge.dispute.*` events (it carries no metadata of
    ours: the charge and, on recent API versions, the intent name the payment)."""
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": amount,
        "currency": currency.lower(),
        "charge": charge,
        "payment_intent": payment_intent,
        "reason": "fraudulent",
        "status": status,
        "is_charge_refundable": False,
        "metadata": {},
        "created": int(time.time()),
    }


def signature(body: bytes, secret: str, age_seconds: int = 0) -> str:
    """The `Stripe-Signature` header, as if Stripe had signed the body `age_seconds` ago."""
    return sign_payload(body, secret, int(time.time()) - age_seconds)


async def post_event(
    http: httpx.AsyncClient, body: bytes, signature_header: str | None
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if signature_header is not None:
        headers["Stripe-Signature"] = signature_header
    return await http.post(ROUTE, content=body, headers=headers)


async def delivered(
    client: GraphQLClient,
    services: Services,
    event_type: str,
    data_object: dict[str, Any],
    *,
    account: str | None = None,
) -> str:
    """A signed event about `data_object`, posted to the server as Stripe posts it; its id."""
    body = stripe_event(event_type, data_object, account=account)
    response = await post_event(client.http, body, signature(body, webhook_secret(services)))
    assert response.status_code == 200, response.text
    return event_id_of(body)


async def differing(event_id: str) -> list[str]:
    """The fields in which a rejected event differed from our records."""
    event = await stored(event_id)
    assert event.status is WebhookStatus.REJECTED, (event.status, event.last_error)
    assert event.last_error is not None and event.last_error.startswith("EventMismatch: ")
    return sorted(difference.field for difference in event.differences)


async def rejections_seen_by(client: GraphQLClient, admin: Tokens) -> dict[str, list[str]]:
    """The rejected events in the admins' list, each with the fields that differed."""
    data = await client.data(REJECTED_EVENTS, token=admin.access)
    return {
        edge["node"]["eventId"]: sorted(d["field"] for d in edge["node"]["differences"])
        for edge in data["webhookEvents"]["edges"]
        if edge["node"]["status"] == "REJECTED"
    }


Variant = tuple[dict[str, Any], str | None, list[str]]
"""What a variant of a genuine event changes in its object, the connected account the
event names, and the fields it must be found to differ in."""


async def rejected_in_turn(
    client: GraphQLClient,
    services: Services,
    event_type: str,
    genuine: dict[str, Any],
    variants: dict[str, Variant],
) -> list[str]:
    """Post each variant of the genuine object; each must be rejected for exactly its
    fields. Their event ids."""
    rejected = []
    for name, (changes, account, fields) in variants.items():
        event_id = await delivered(
            client, services, event_type, {**genuine, **changes}, account=account
        )
        assert await differing(event_id) == sorted(fields), name
        rejected.append(event_id)
    return rejected


async def received(services: Services, body: bytes) -> str:
    """`body`, signed as Stripe signs it, taken in by the webhook inbox; the event's id."""
    await receive(services, body, signature(body, webhook_secret(services)))
    return event_id_of(body)


def event_id_of(body: bytes) -> str:
    event_id: str = json.loads(body)["id"]
    return event_id


async def stored(event_id: str) -> WebhookEvent:
    found = await WebhookEvent.find_one({"event_id": event_id})
    assert found is not None, f"{event_id} was not stored"
    return found


async def stored_count() -> int:
    return await WebhookEvent.get_pymongo_collection().count_documents({})


class Flaky:
    """A handler that is not ready until told, and remembers what it handled."""

    def __init__(self, error: Exception | None = None, *, ready: bool = False) -> None:
        self.ready = ready
        self.error = error or NotReady("the payment it follows is not recorded")
        self.calls = 0
        self.handled: list[str] = []

    async def __call__(self, services: Services, event: GatewayEvent) -> None:
        self.calls += 1
        await asyncio.sleep(0)  # let concurrent deliveries interleave
        if not self.ready:
            raise self.error
        self.handled.append(event.id)

    @property
    def table(self) -> dict[str, Handler]:
        return {FLAKY: self}
