"""Web push, end to end: a browser registers its subscription over GraphQL, an event
reaches it through the outbox, and its push service (tests/notifications/channels/push_service.py)
checks the VAPID signature and decrypts the message, as a real one and the browser do."""

from __future__ import annotations

import dataclasses
import ssl
import stat
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from documents.clock import utcnow
from documents.notifications.catalogue import Channel, NotificationKind
from documents.notifications.deliveries import Delivery, DeliveryStatus
from documents.notifications.preferences import NotificationPreferences
from documents.notifications.push_keys import b64url_decode, b64url_encode
from integrations.push import VapidPush
from resolvers.common.services import Services
from resolvers.notifications.push_subscriptions import MAX_PUSH_SUBSCRIPTIONS
from resolvers.notifications.sending import send_due
from server.runtime import VAPID_KEY_FILE, Runtime, vapid_keys
from tests.conftest import serve, serve_asgi
from tests.notifications.channels.push_service import (
    ORIGIN,
    Browser,
    PushService,
    app,
    certificates,
)
from tests.support.graphql_client import GraphQLClient, Tokens, graphql_error_codes
from tests.support.marketplace import make_offer, object_id, post_task, poster, tasker

SUBSCRIPTION_FIELDS = "subscription { endpoint addedAt }"
PUBLIC_KEY = "{ pushPublicKey }"


@pytest.fixture
async def push_service(tmp_path: Path) -> AsyncIterator[PushService]:
    made = certificates(tmp_path)
    service = PushService(port=0, authority=_trusting(made.authority))
    async with serve_asgi(
        app(service), ssl_certfile=str(made.certificate), ssl_keyfile=str(made.key)
    ) as url:
        service.port = int(url.rsplit(":", 1)[1])
        yield service


@pytest.fixture
def services(runtime: Runtime, push_service: PushService) -> Services:
    """The runtime's services, sending web push as configured, through the test's push
    service's connector."""
    settings = runtime.services.settings
    push = VapidPush(
        vapid_keys(settings),
        settings.push_contact,
        ttl=settings.push_ttl,
        connect=push_service.connect,
    )
    return dataclasses.replace(runtime.services, push=push)


def _trusting(authority: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(authority))


async def register(
    client: GraphQLClient, who: Tokens, subscription: dict[str, Any]
) -> dict[str, Any]:
    return await client.mutate(
        "registerPushSubscription", subscription, SUBSCRIPTION_FIELDS, token=who.access
    )


async def endpoints(who: Tokens) -> list[str]:
    found = await NotificationPreferences.find_one(
        NotificationPreferences.user_id == object_id(who.user_id)
    )
    return [s.endpoint for s in found.push_subscriptions] if found else []


async def push_deliveries(who: Tokens) -> list[Delivery]:
    return await Delivery.find(
        Delivery.user_id == object_id(who.user_id), Delivery.channel == Channel.PUSH
    ).to_list()


async def offer_received(client: GraphQLClient) -> tuple[Tokens, Tokens, dict[str, Any]]:
    """A poster with a task, and a tasker's offer on it (OFFER_RECEIVED: e-mail and push)."""
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    task = await post_task(client, ann)
    return ann, tom, task


# --- the key browsers subscribe with ----------------------------------------------------


async def test_the_public_key_is_the_key_messages_are_signed_with(
    client: GraphQLClient, runtime: Runtime
) -> None:
    key = (await client.data(PUBLIC_KEY))["pushPublicKey"]  # signed out: it is public
    raw = b64url_decode(key)
    assert raw is not None and len(raw) == 65 and raw[0] == 4
    assert key == runtime.services.push.application_server_key
    # Development made the pair once, into the data folder, for the owner's eyes only.
    kept = Path(runtime.services.settings.data_dir) / VAPID_KEY_FILE
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert vapid_keys(runtime.services.settings).public_key == key


async def test_the_log_backend_gives_browsers_no_key(runtime: Runtime) -> None:
    async with serve(runtime, push_backend="log") as url, httpx.AsyncClient(base_url=url) as http:
        answer = await http.post("/graphql", json={"query": PUBLIC_KEY})
    assert answer.json() == {"data": {"pushPublicKey": None}}


# --- messages ---------------------------------------------------------------------------


async def test_an_offer_reaches_the_posters_browser_signed_and_encrypted(
    client: GraphQLClient, services: Services, push_service: PushService
) -> None:
    ann, tom, task = await offer_received(client)
    browser = push_service.browser()
    registered = await register(client, ann, browser.subscription())
    assert registered["errors"] == [], registered
    assert registered["subscription"]["endpoint"] == browser.endpoint

    await make_offer(client, tom, task["id"])
    assert await send_due(services) >= 2  # the e-mail and the push message

    assert push_service.refused == []
    [received] = push_service.received
    notifications = await client.data(
        "{ myNotifications { edges { node { title } } } }", token=ann.access
    )
    title = notifications["myNotifications"]["edges"][0]["node"]["title"]
    settings = services.settings
    assert received.message == {
        "title": settings.marketplace_name,
        "body": title,
        "url": f"{settings.app_url}/tasks/{object_id(task['id'])}",
        "kind": NotificationKind.OFFER_RECEIVED.value,
    }
    assert received.claims["aud"] == ORIGIN
    assert received.claims["sub"] == settings.push_contact
    assert received.signing_key == (await client.data(PUBLIC_KEY))["pushPublicKey"]
    assert received.headers["ttl"] == str(int(settings.push_ttl.total_seconds()))
    assert received.headers["urgency"] == "normal"
    [delivery] = await push_deliveries(ann)
    assert delivery.status is DeliveryStatus.SENT


async def test_a_subscription_its_push_service_says_is_gone_is_dropped(
    client: GraphQLClient, services: Services, push_service: PushService
) -> None:
    ann, tom, task = await offer_received(client)
    gone, kept = push_service.browser(), push_service.browser()
    for browser in (gone, kept):
        assert (await register(client, ann, browser.subscription()))["errors"] == []
    push_service.answers[gone.token] = 410

    await make_offer(client, tom, task["id"])
    await send_due(services)

    assert push_service.refused == []
    assert sorted(r.token for r in push_service.received) == sorted([gone.token, kept.token])
    assert await endpoints(ann) == [kept.endpoint]
    [delivery] = await push_deliveries(ann)
    assert delivery.status is DeliveryStatus.SENT


async def test_a_push_service_failure_is_retried_later(
    client: GraphQLClient, services: Services, push_service: PushService
) -> None:
    ann, tom, task = await offer_received(client)
    browser = push_service.browser()
    assert (await register(client, ann, browser.subscription()))["errors"] == []
    push_service.answers[browser.token] = 503

    await make_offer(client, tom, task["id"])
    await send_due(services)

    [delivery] = await push_deliveries(ann)
    assert delivery.status is DeliveryStatus.PENDING and delivery.attempts == 1
    assert "503" in (delivery.last_error or "")
    assert delivery.due_at > utcnow() + timedelta(seconds=20)
    assert await endpoints(ann) == [browser.endpoint]  # not gone: kept for the retry

    del push_service.answers[browser.token]
    await send_due(services, now=delivery.due_at + timedelta(seconds=1))
    [delivery] = await push_deliveries(ann)
    assert delivery.status is DeliveryStatus.SENT
    assert len(push_service.received) == 2


async def test_without_a_subscription_nothing_is_planned_for_push(
    client: GraphQLClient, services: Services, push_service: PushService
) -> None:
    ann, tom, task = await offer_received(client)
    await make_offer(client, tom, task["id"])
    await send_due(services)
    assert await push_deliveries(ann) == [] and push_service.received == []


# --- registering and removing -------------------------------------------------------------


def _with(subscription: dict[str, Any], **keys: str) -> dict[str, Any]:
    return {**subscription, "keys": {**subscription["keys"], **keys}}


def _not_on_the_curve() -> str:
    return b64url_encode(b"\x04" + b"\x00" * 63 + b"\x07")


BAD_ENDPOINTS = {
    "plain http": "http://push.example.com/push/x",
    "loopback": "https://127.0.0.1/push/x",
    "a private address": "https://10.1.2.3/push/x",
    "localhost": "https://localhost/push/x",
    "another port": "https://push.example.com:8443/push/x",
    "credentials": "https://user:pw@push.example.com/push/x",
    "not a URL": "push me",
}


async def test_bad_endpoints_and_keys_are_refused_and_change_nothing(
    client: GraphQLClient, push_service: PushService
) -> None:
    ann = await poster(client, "ann@example.com")
    good = push_service.browser().subscription()
    assert (await register(client, ann, good))["errors"] == []
    before = await NotificationPreferences.find_all().to_list()

    cases: dict[str, tuple[dict[str, Any], list[tuple[str, str]]]] = {
        **{
            what: ({**good, "endpoint": endpoint}, [("INVALID_INPUT", "endpoint")])
            for what, endpoint in BAD_ENDPOINTS.items()
        },
        "p256dh not base64url": (
            _with(good, p256dh="BOr+/x=="),
            [("INVALID_INPUT", "keys.p256dh")],
        ),
        "p256dh compressed": (
            _with(good, p256dh=b64url_encode(b"\x02" + b"\x01" * 32)),
            [("INVALID_INPUT", "keys.p256dh")],
        ),
        "p256dh off the curve": (
            _with(good, p256dh=_not_on_the_curve()),
            [("INVALID_INPUT", "keys.p256dh")],
        ),
        "auth too short": (
            _with(good, auth=b64url_encode(b"\x01" * 12)),
            [("INVALID_INPUT", "keys.auth")],
        ),
        "auth not base64url": (_with(good, auth="a b c d e f"), [("INVALID_INPUT", "keys.auth")]),
        "everything at once": (
            {"endpoint": "http://push.example.com/x", "keys": {"p256dh": "", "auth": ""}},
            [
                ("INVALID_INPUT", "endpoint"),
                ("INVALID_INPUT", "keys.p256dh"),
                ("INVALID_INPUT", "keys.auth"),
            ],
        ),
    }
    wrong = []
    for what, (subscription, expected) in cases.items():
        payload = await register(client, ann, subscription)
        errors = [(e["code"], e["field"]) for e in payload["errors"]]
        if errors != expected or payload["subscription"] is not None:
            wrong.append(f"{what}: {payload}")
    assert wrong == []
    assert await NotificationPreferences.find_all().to_list() == before


async def test_signed_out_callers_register_nothing(
    client: GraphQLClient, push_service: PushService
) -> None:
    result = await client.execute(
        "mutation($input: RegisterPushSubscriptionInput!) "
        "{ registerPushSubscription(input: $input) { errors { code } } }",
        {"input": push_service.browser().subscription()},
    )
    assert graphql_error_codes(result) == ["UNAUTHENTICATED"]
    assert await NotificationPreferences.find_all().count() == 0


async def test_the_same_endpoint_again_replaces_its_keys_and_the_oldest_of_too_many_goes(
    client: GraphQLClient, push_service: PushService
) -> None:
    ann = await poster(client, "ann@example.com")
    browsers = [push_service.browser() for _ in range(MAX_PUSH_SUBSCRIPTIONS)]
    for browser in browsers:
        assert (await register(client, ann, browser.subscription()))["errors"] == []

    # The first browser renews its keys: the same endpoint, registered anew.
    renewed = Browser.new()
    first = _with(
        browsers[0].subscription(),
        p256dh=renewed.p256dh,
        auth=b64url_encode(renewed.auth),
    )
    assert (await register(client, ann, first))["errors"] == []
    expected = [b.endpoint for b in browsers[1:]] + [browsers[0].endpoint]
    assert await endpoints(ann) == expected
    preferences = await NotificationPreferences.find_one(
        NotificationPreferences.user_id == object_id(ann.user_id)
    )
    assert preferences is not None
    assert preferences.push_subscriptions[-1].p256dh == renewed.p256dh

    newest = push_service.browser()
    assert (await register(client, ann, newest.subscription()))["errors"] == []
    assert await endpoints(ann) == [*expected[1:], newest.endpoint]  # the oldest dropped


async def test_an_endpoint_belongs_to_whoever_registered_it_last(
    client: GraphQLClient, push_service: PushService
) -> None:
    ann = await poster(client, "ann@example.com")
    bob = await poster(client, "bob@example.com")
    shared = push_service.browser()
    assert (await register(client, ann, shared.subscription()))["errors"] == []
    assert (await register(client, bob, shared.subscription()))["errors"] == []
    assert await endpoints(ann) == []
    assert await endpoints(bob) == [shared.endpoint]


async def test_remove_push_subscription_removes_only_the_callers_own(
    client: GraphQLClient, push_service: PushService
) -> None:
    ann = await poster(client, "ann@example.com")
    bob = await poster(client, "bob@example.com")
    hers, his = push_service.browser(), push_service.browser()
    assert (await register(client, ann, hers.subscription()))["errors"] == []
    assert (await register(client, bob, his.subscription()))["errors"] == []

    async def remove(who: Tokens, endpoint: str) -> dict[str, Any]:
        return await client.mutate(
            "removePushSubscription", {"endpoint": endpoint}, "removed", token=who.access
        )

    assert await remove(ann, his.endpoint) == {"errors": [], "removed": False}
    assert await endpoints(bob) == [his.endpoint]
    assert await remove(ann, hers.endpoint) == {"errors": [], "removed": True}
    assert await endpoints(ann) == []
    assert await remove(ann, hers.endpoint) == {"errors": [], "removed": False}
