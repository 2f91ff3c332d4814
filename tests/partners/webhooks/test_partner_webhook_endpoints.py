"""Partners' webhook endpoints: made, changed and deleted through the partner graph,
secrets shown once and rotated with an overlap, and no webhook into a private network
(neither at creation nor when a public name resolves to a private address)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from documents.accounts.audit import AuditEvent, AuditKind
from documents.partners.webhooks import (
    DeliveryStatus,
    PartnerWebhookDelivery,
    PartnerWebhookEndpoint,
)
from integrations.partner_webhooks import WebhookPoster
from resolvers.common.services import Services
from resolvers.partners.webhooks.sender import send_due
from server.runtime import Runtime
from tests.conftest import serve, with_settings
from tests.support.graphql_client import GraphQLClient
from tests.support.partners import webhooks as support
from tests.support.partners.partners import approved_partner, wallet_document
from tests.support.partners.receiver import Receiver, receiving, verify

FAST = {
    "partner_webhook_allow_private_hosts": True,
    "partner_webhook_retry_base": timedelta(seconds=0.2),
    "partner_webhook_send_interval": timedelta(seconds=0.1),
}
ENDPOINT = "endpoint { id url enabled previousSecretExpiresAt }"


@pytest.fixture
def services(runtime: Runtime) -> Services:
    return with_settings(runtime, **FAST).services


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[GraphQLClient]:
    """The API in development with private hosts allowed, as the sender."""
    async with serve(runtime, **FAST) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        yield GraphQLClient(http)


async def test_endpoints_are_made_changed_and_deleted_and_the_secret_is_shown_once(
    services: Services, api: GraphQLClient
) -> None:
    made = await approved_partner(scopes=support.WEBHOOK_SCOPES)
    created = await api.mutate(
        "createWebhookEndpoint",
        {"url": "http://127.0.0.1:9/a"},
        f"secret {ENDPOINT}",
        token=made.key,
    )
    assert created["errors"] == []
    assert created["secret"].startswith("whsec_")
    endpoint = created["endpoint"]
    assert endpoint["enabled"] is True and endpoint["previousSecretExpiresAt"] is None
    stored = await PartnerWebhookEndpoint.find_one({})
    assert stored is not None and stored.secrets[0].secret == created["secret"]
    # The secret is nowhere to be read again.
    shown = await api.post("{ webhookEndpoints { secret } }", token=made.key)
    assert "Cannot query field 'secret'" in shown.json()["errors"][0]["message"]

    # Disabling ends the pending deliveries; new events make none for it.
    wallet = await wallet_document(made, "w-1")
    await support.money_moved(services, wallet, 100, 100)
    changed = await api.mutate(
        "updateWebhookEndpoint",
        {"endpointId": endpoint["id"], "url": "http://127.0.0.1:9/b", "enabled": False},
        ENDPOINT,
        token=made.key,
    )
    assert changed["errors"] == []
    assert changed["endpoint"]["url"] == "http://127.0.0.1:9/b"
    assert changed["endpoint"]["enabled"] is False
    [ended] = await PartnerWebhookDelivery.find_all().to_list()
    assert ended.status is DeliveryStatus.DEAD
    await support.money_moved(services, wallet, 100, 200)
    assert await PartnerWebhookDelivery.find_all().count() == 1

    bad = await api.mutate(
        "updateWebhookEndpoint",
        {"endpointId": endpoint["id"], "url": "ftp://127.0.0.1/x"},
        ENDPOINT,
        token=made.key,
    )
    assert [(e["code"], e["field"]) for e in bad["errors"]] == [("INVALID_INPUT", "url")]
    assert bad["endpoint"] is None

    deleted = await api.mutate(
        "deleteWebhookEndpoint", {"endpointId": endpoint["id"]}, "deletedEndpointId", token=made.key
    )
    assert deleted == {"errors": [], "deletedEndpointId": endpoint["id"]}
    listed = await api.data("{ webhookEndpoints { id } }", token=made.key)
    assert listed == {"webhookEndpoints": []}
    again = await api.mutate(
        "deleteWebhookEndpoint", {"endpointId": endpoint["id"]}, token=made.key
    )
    assert [e["code"] for e in again["errors"]] == ["NOT_FOUND"]


async def test_a_partner_has_at_most_five_endpoints_however_many_are_asked_for_at_once(
    api: GraphQLClient,
) -> None:
    made = await approved_partner(scopes=support.WEBHOOK_SCOPES)
    asked = await asyncio.gather(
        *(
            api.mutate(
                "createWebhookEndpoint",
                {"url": f"http://127.0.0.1:9/{n}"},
                "secret",
                token=made.key,
            )
            for n in range(8)
        )
    )
    made_ones = [p for p in asked if not p["errors"]]
    refused = [p for p in asked if p["errors"]]
    assert len(made_ones) == 5
    assert {e["code"] for p in refused for e in p["errors"]} == {"INVALID_STATE"}
    assert await PartnerWebhookEndpoint.find_all().count() == 5


async def test_a_key_without_the_webhook_scope_is_refused(api: GraphQLClient) -> None:
    from bson import ObjectId

    from documents.partners.api_keys import ApiScope, KeyMode
    from resolvers.partners.keys import make_key

    made = await approved_partner(scopes=support.WEBHOOK_SCOPES)
    narrow = make_key(
        made.id,
        mode=KeyMode.TEST,
        name="reader",
        scopes=[ApiScope.READ_WALLETS],
        expires_at=None,
        created_by=ObjectId(),
    )
    await narrow.key.insert()
    payload = await api.mutate(
        "createWebhookEndpoint", {"url": "http://127.0.0.1:9/a"}, "secret", token=narrow.secret
    )
    assert [e["code"] for e in payload["errors"]] == ["FORBIDDEN"]
    assert await PartnerWebhookEndpoint.find_all().count() == 0
    listed = await api.post("{ webhookEndpoints { id } }", token=narrow.secret)
    assert listed.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_rotation_signs_with_both_secrets_during_the_overlap_then_only_the_new(
    services: Services, api: GraphQLClient
) -> None:
    made = await approved_partner(scopes=support.WEBHOOK_SCOPES)
    receiver = Receiver()
    async with receiving(receiver) as url:
        created = await api.mutate(
            "createWebhookEndpoint", {"url": url}, f"secret {ENDPOINT}", token=made.key
        )
        old = receiver.secret = created["secret"]
        endpoint_id = created["endpoint"]["id"]
        wallet = await wallet_document(made, "w-1")
        await support.money_moved(services, wallet, 100, 100)
        await support.send_until(services, lambda: len(receiver.accepted) == 1)
        assert receiver.posts[0].signature.count("v1=") == 1

        too_long = await api.mutate(
            "rotateWebhookSecret",
            {"endpointId": endpoint_id, "overlapSeconds": 8 * 86400},
            "secret",
            token=made.key,
        )
        assert [(e["code"], e["field"]) for e in too_long["errors"]] == [
            ("INVALID_INPUT", "overlapSeconds")
        ]
        rotated = await api.mutate(
            "rotateWebhookSecret",
            {"endpointId": endpoint_id, "overlapSeconds": 1},
            f"secret {ENDPOINT}",
            token=made.key,
        )
        assert rotated["errors"] == []
        new = rotated["secret"]
        assert new.startswith("whsec_") and new != old
        assert rotated["endpoint"]["previousSecretExpiresAt"] is not None

        # During the overlap a receiver that still has the old secret verifies, as does
        # one that has the new one already.
        await support.money_moved(services, wallet, 100, 200)
        await support.send_until(services, lambda: len(receiver.accepted) == 2)
        during = receiver.posts[-1]
        assert during.signature.count("v1=") == 2
        assert verify(during.body, during.signature, new)

        # After it, only the new one signs.
        await asyncio.sleep(1.1)
        receiver.secret = new
        await support.money_moved(services, wallet, 100, 300)
        await support.send_until(services, lambda: len(receiver.accepted) == 3)
        after = receiver.posts[-1]
        assert after.signature.count("v1=") == 1
        assert not verify(after.body, after.signature, old)
    assert receiver.unverified == []
    stored = await PartnerWebhookEndpoint.find_one({})
    assert stored is not None and [s.secret for s in stored.secrets] == [new]
    [audited] = await AuditEvent.find({"kind": AuditKind.PARTNER_WEBHOOK_SECRET_ROTATED}).to_list()
    assert audited.details["partner_id"] == str(made.id)
    assert new not in str(audited.details) and old not in str(audited.details)


async def test_a_private_or_loopback_url_is_refused_without_the_development_setting(
    client: GraphQLClient,
) -> None:
    made = await approved_partner(scopes=support.WEBHOOK_SCOPES)
    for url in (
        "http://127.0.0.1:8080/hooks",
        "https://127.0.0.1/hooks",
        "https://localhost/hooks",
        "https://10.1.2.3/hooks",
        "https://[::1]/hooks",
        "http://hooks.rosabank.com/hooks",
        "https://user:pass@hooks.rosabank.com/hooks",
    ):
        payload = await client.mutate(
            "createWebhookEndpoint", {"url": url}, "secret", token=made.key
        )
        assert [(e["code"], e["field"]) for e in payload["errors"]] == [("INVALID_INPUT", "url")]
        assert payload["secret"] is None
    assert await PartnerWebhookEndpoint.find_all().count() == 0
    fine = await client.mutate(
        "createWebhookEndpoint",
        {"url": "https://hooks.rosabank.com/gigql"},
        "secret",
        token=made.key,
    )
    assert fine["errors"] == [] and fine["secret"]


class _Pretend(AbstractResolver):
    """DNS as an attacker would have it: every name is the receiver's loopback address."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        return None


async def test_the_sender_connects_to_no_private_address_without_the_development_setting(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    made = await approved_partner(scopes=support.WEBHOOK_SCOPES)
    receiver = Receiver()
    async with receiving(receiver) as url:
        port = urlsplit(url).port
        # A public name (checked when it was stored) that now resolves to a private
        # address, and an address in the URL itself.
        receiver.secret = await support.endpoint_secret(
            made, f"http://hooks.rosabank.com:{port}/hooks"
        )
        await support.endpoint_secret(made, url)
        wallet = await wallet_document(made, "w-1")
        await support.money_moved(services, wallet, 100, 100)
        production = WebhookPoster(
            timeout=timedelta(seconds=5), allow_private=False, resolver=_Pretend
        )
        with caplog.at_level(logging.INFO, logger="integrations.partner_webhooks"):
            assert await send_due(services, production) == 2
        assert receiver.posts == [] and receiver.unverified == []
        stored = await PartnerWebhookDelivery.find_all().to_list()
        assert [d.status for d in stored] == [DeliveryStatus.PENDING] * 2
        assert [d.attempts[0].status_code for d in stored] == [None, None]
        # The partner learns nothing of what our resolver knows; the log has the cause.
        assert [d.attempts[0].response_body for d in stored] == ["could not connect"] * 2
        logged = caplog.text
        assert "127.0.0.1 is not a public address" in logged, logged
        assert "hooks.rosabank.com resolves to no public address" in logged

        # The same sender in development reaches both: the refusal above was the check's.
        development = WebhookPoster(
            timeout=timedelta(seconds=5), allow_private=True, resolver=_Pretend
        )
        await PartnerWebhookDelivery.get_pymongo_collection().update_many(
            {}, {"$set": {"next_attempt_at": stored[0].created_at}}
        )
        assert await send_due(services, development) == 2
    # Both arrived (the endpoint by address signs with a secret of its own).
    assert len(receiver.posts) == 1 and len(receiver.unverified) == 1
