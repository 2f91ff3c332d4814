"""`POST /webhooks/stripe` and the inbox behind it: verified, stored once, processed
once, retried with backoff, parked as dead, revived.

Signature and storage go over real HTTP to the test server. Failing processing needs a
handler that fails on demand: those tests give `receive` a handler table of their own
(the inbox's seam for it), with the same database and settings as the server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from documents.clock import utcnow
from documents.payments.webhooks import WebhookEvent, WebhookStatus
from integrations.payments.errors import WebhookSignatureError
from integrations.payments.sandbox import SandboxGateway
from resolvers.common.services import Services
from resolvers.payments.webhooks.inbox import NotAnEvent, receive, retry_due, revive
from server.runtime import Runtime
from tests.conftest import with_settings
from tests.support.payments.webhooks import (
    FLAKY,
    Flaky,
    event_id_of,
    post_event,
    signature,
    stored,
    stored_count,
    stripe_event,
    webhook_secret,
)

BASE = timedelta(milliseconds=150)


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        yield client


def services_with(runtime: Runtime, max_attempts: int = 8) -> Services:
    return with_settings(
        runtime, webhook_retry_base=BASE, webhook_max_attempts=max_attempts
    ).services


async def until_due(event_id: str) -> None:
    wait = (await stored(event_id)).next_attempt_at - utcnow()
    await asyncio.sleep(max(wait.total_seconds(), 0) + 0.01)


# --- over HTTP ------------------------------------------------------------------------


async def test_a_signed_event_is_stored_once_and_acknowledged(
    runtime: Runtime, http: httpx.AsyncClient
) -> None:
    body = stripe_event(account="acct_123")
    response = await post_event(http, body, signature(body, webhook_secret(runtime.services)))
    assert response.status_code == 200, response.text
    event_id = event_id_of(body)
    # An event type gigql does not act on is kept and acknowledged all the same.
    assert response.json() == {"received": True, "id": event_id, "status": "ignored"}
    event = await stored(event_id)
    assert event.status is WebhookStatus.IGNORED and event.attempts == 1
    assert event.payload == body.decode() and event.account == "acct_123"
    assert event.type == json.loads(body)["type"] and event.processed_at is not None

    # Stripe delivers again (it did not hear our answer): acknowledged, nothing repeated.
    again = await post_event(http, body, signature(body, webhook_secret(runtime.services)))
    assert again.status_code == 200 and again.json()["status"] == "ignored"
    assert await stored_count() == 1
    assert (await stored(event_id)).attempts == 1


async def test_a_signature_made_almost_five_minutes_ago_is_accepted(
    runtime: Runtime, http: httpx.AsyncClient
) -> None:
    body = stripe_event()
    header = signature(body, webhook_secret(runtime.services), age_seconds=290)
    assert (await post_event(http, body, header)).status_code == 200
    assert await stored_count() == 1


def _wrong_secret(body: bytes, secret: str) -> tuple[bytes, str | None]:
    return body, signature(body, secret + "x")


def _tampered(body: bytes, secret: str) -> tuple[bytes, str | None]:
    return body.replace(b'"livemode": false', b'"livemode": true'), signature(body, secret)


def _missing(body: bytes, secret: str) -> tuple[bytes, str | None]:
    return body, None


def _too_old(body: bytes, secret: str) -> tuple[bytes, str | None]:
    return body, signature(body, secret, age_seconds=301)


def _no_v1(body: bytes, secret: str) -> tuple[bytes, str | None]:
    return body, signature(body, secret).replace("v1=", "v0=")


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (_wrong_secret, "no signature matches the payload"),
        (_tampered, "no signature matches the payload"),
        (_missing, "no Stripe-Signature header"),
        (_too_old, "older than 300 s"),
        (_no_v1, "no v1 signature"),
    ],
    ids=["wrong secret", "tampered body", "no header", "older than 300 s", "no v1"],
)
async def test_an_event_that_is_not_genuine_is_refused_and_not_stored(
    runtime: Runtime, http: httpx.AsyncClient, forge: object, reason: str
) -> None:
    assert callable(forge)
    body, header = forge(stripe_event(), webhook_secret(runtime.services))
    response = await post_event(http, body, header)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid signature"
    assert reason in response.json()["detail"]
    assert await stored_count() == 0


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"id": "evt_no_type", "created": 1700000000, "data": {"object": {}}}',
        b'{"id": 42, "type": "charge.refunded", "created": 1700000000, "data": {"object": {}}}',
        b'{"id": "evt_x", "type": "charge.refunded", "created": "yesterday", "data": {}}',
    ],
    ids=["not json", "a list", "no type", "a numeric id", "a bad date"],
)
async def test_a_signed_body_that_is_not_an_event_is_refused(
    runtime: Runtime, http: httpx.AsyncClient, body: bytes
) -> None:
    response = await post_event(http, body, signature(body, webhook_secret(runtime.services)))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "not an event"
    assert await stored_count() == 0


async def test_ten_concurrent_deliveries_store_and_process_the_event_once(
    runtime: Runtime, http: httpx.AsyncClient
) -> None:
    body = stripe_event()
    header = signature(body, webhook_secret(runtime.services))
    responses = await asyncio.gather(*(post_event(http, body, header) for _ in range(10)))
    assert [r.status_code for r in responses] == [200] * 10
    assert {r.json()["id"] for r in responses} == {event_id_of(body)}
    assert await stored_count() == 1
    event = await stored(event_id_of(body))
    # One runner claimed it (each claim counts an attempt) and finished it.
    assert event.status is WebhookStatus.IGNORED and event.attempts == 1


async def test_sandbox_events_go_through_the_same_inbox(runtime: Runtime) -> None:
    """The sandbox hands its events to `receive` in-process (server/runtime.py Loopback),
    signed as Stripe signs them: each is stored once and processed."""
    sandbox = runtime.services.payments
    assert isinstance(sandbox, SandboxGateway)
    intent = await sandbox.create_payment_intent(
        amount=1234,
        currency="usd",
        transfer_group="inbox-test",
        metadata={"test": "inbox"},
        idempotency_key="inbox-test-intent",
    )
    await sandbox.confirm(intent.id)
    await sandbox.drain()
    events = await _stored_about(intent.id)
    assert "payment_intent.succeeded" in {e.type for e in events}
    assert len({e.event_id for e in events}) == len(events)
    assert all(e.status is not WebhookStatus.RECEIVED and e.attempts >= 1 for e in events)


async def _stored_about(object_id: str) -> list[WebhookEvent]:
    everything = await WebhookEvent.find_all().to_list()
    return [e for e in everything if json.loads(e.payload)["data"]["object"]["id"] == object_id]


# --- processing, retries, dead letters ------------------------------------------------


async def _receive(services: Services, flaky: Flaky, body: bytes) -> None:
    await receive(services, body, signature(body, webhook_secret(services)), flaky.table)


async def test_concurrent_deliveries_run_the_handler_once(runtime: Runtime) -> None:
    flaky = Flaky(ready=True)
    services = services_with(runtime)
    body = stripe_event(FLAKY)
    await asyncio.gather(*(_receive(services, flaky, body) for _ in range(10)))
    assert flaky.calls == 1 and flaky.handled == [event_id_of(body)]
    event = await stored(event_id_of(body))
    assert event.status is WebhookStatus.PROCESSED and event.attempts == 1


async def test_a_failing_event_is_retried_with_backoff_until_it_succeeds(
    runtime: Runtime,
) -> None:
    flaky = Flaky()
    services = services_with(runtime)
    body = stripe_event(FLAKY)
    event_id = event_id_of(body)

    before = utcnow()
    await _receive(services, flaky, body)
    event = await stored(event_id)
    assert event.status is WebhookStatus.FAILED and event.attempts == 1
    assert event.last_error == "NotReady: the payment it follows is not recorded"
    assert before + BASE <= event.next_attempt_at <= utcnow() + BASE
    assert event.processed_at is None

    # Not due yet: the retry job leaves it alone.
    assert await retry_due(services, handlers=flaky.table) == 0
    assert (await stored(event_id)).attempts == 1

    await until_due(event_id)
    before = utcnow()
    assert await retry_due(services, handlers=flaky.table) == 1
    event = await stored(event_id)
    assert event.status is WebhookStatus.FAILED and event.attempts == 2
    assert before + 2 * BASE <= event.next_attempt_at <= utcnow() + 2 * BASE  # doubled

    flaky.ready = True
    await until_due(event_id)
    assert await retry_due(services, handlers=flaky.table) == 1
    event = await stored(event_id)
    assert event.status is WebhookStatus.PROCESSED and event.attempts == 3
    assert event.last_error is None and event.processed_at is not None
    assert flaky.handled == [event_id]
    assert await retry_due(services, handlers=flaky.table) == 0  # done for good


async def test_an_event_that_keeps_failing_is_parked_dead_until_revived(
    runtime: Runtime,
) -> None:
    flaky = Flaky(RuntimeError("the database said no"))
    services = services_with(runtime, max_attempts=2)
    body = stripe_event(FLAKY)
    event_id = event_id_of(body)

    await _receive(services, flaky, body)
    await until_due(event_id)
    assert await retry_due(services, handlers=flaky.table) == 1
    event = await stored(event_id)
    assert event.status is WebhookStatus.DEAD and event.attempts == 2
    assert event.last_error == "RuntimeError: the database said no"

    # Dead events are not retried, however long one waits.
    await until_due(event_id)
    assert await retry_due(services, handlers=flaky.table) == 0
    assert flaky.calls == 2

    # A redelivery by the gateway does not wake it either: only an admin does.
    await _receive(services, flaky, body)
    assert flaky.calls == 2 and (await stored(event_id)).status is WebhookStatus.DEAD

    flaky.ready = True
    revived = await revive(event_id)
    assert revived is not None
    assert revived.status is WebhookStatus.FAILED and revived.attempts == 0
    assert await revive(event_id) is None  # only a dead event can be revived
    assert await retry_due(services, handlers=flaky.table) == 1
    event = await stored(event_id)
    assert event.status is WebhookStatus.PROCESSED and event.attempts == 1
    assert flaky.handled == [event_id]


async def test_receive_refuses_forgeries_and_non_events_before_storing(runtime: Runtime) -> None:
    services = runtime.services
    body = stripe_event()
    with pytest.raises(WebhookSignatureError):
        await receive(services, body, signature(body, "whsec_wrong"))
    # A non-event signed with the wrong secret is a forgery first.
    with pytest.raises(WebhookSignatureError):
        await receive(services, b"[]", signature(b"[]", "whsec_wrong"))
    with pytest.raises(NotAnEvent):
        await receive(services, b"[]", signature(b"[]", webhook_secret(runtime.services)))
    assert await stored_count() == 0
