"""Trusted documents over real HTTP and websockets: a front end's manifest (as
@graphql-codegen's client preset and Relay write it) run by id, `only` mode refusing any
other text but an admin's, over HTTP and websocket alike, and the partner graph exempt."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.runtime import Runtime
from tests.conftest import serve
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import logged_in_admin, make_offer, post_task, poster, tasker
from tests.support.partners.partners import approved_partner
from tests.support.ws_client import LEGACY_WS, ws

SETTINGS = "query Settings { marketplaceSettings { categories } }"
EVENTS = "subscription Mine { myEvents { kind } }"
RELAY_TEXT = "query RelaySettings { marketplaceSettings { fees { customerFeeBp } } }"
RELAY_ID = "9b8f1c2de3a4b5c6d7e8f90a1b2c3d4e"  # Relay's ids are its own (an MD5 by default)
OTHER = "{ marketplaceSettings { categories } }"
ACCEPT = {"Accept": "application/graphql-response+json, application/json"}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def manifests(tmp_path: Path) -> list[Path]:
    codegen = tmp_path / "persisted-documents.json"
    codegen.write_text(json.dumps({sha256(SETTINGS): SETTINGS, sha256(EVENTS): EVENTS}))
    relay = tmp_path / "persisted_queries.json"
    relay.write_text(json.dumps({RELAY_ID: RELAY_TEXT}))
    return [codegen, relay]


@pytest.fixture
async def only(runtime: Runtime, manifests: list[Path]) -> AsyncIterator[str]:
    async with serve(runtime, trusted_documents=manifests, trusted_documents_mode="only") as url:
        yield url


def code(response: httpx.Response) -> str:
    errors = response.json()["errors"]
    assert len(errors) == 1, errors
    found: str = errors[0]["extensions"]["code"]
    return found


async def test_manifest_documents_run_by_id_in_both_formats(only: str) -> None:
    apq = {"persistedQuery": {"version": 1, "sha256Hash": sha256(SETTINGS)}}
    async with httpx.AsyncClient(base_url=only) as http:
        for body in (
            {"documentId": sha256(SETTINGS)},
            {"documentId": f"sha256:{sha256(SETTINGS)}"},
            {"extensions": apq},
            {"documentId": RELAY_ID, "operationName": "RelaySettings"},
        ):
            response = await http.post("/graphql", json=body)
            assert response.status_code == 200 and "errors" not in response.json(), (
                body,
                response.text,
            )
            assert "marketplaceSettings" in response.json()["data"]
        by_get = await http.get(
            "/graphql", params={"documentId": f"sha256:{sha256(SETTINGS)}"}, headers=ACCEPT
        )
        assert "marketplaceSettings" in by_get.json()["data"], by_get.text
        unknown = await http.post("/graphql", json={"documentId": "not-in-any-manifest"})
        assert unknown.status_code == 200 and code(unknown) == "PERSISTED_QUERY_NOT_FOUND"


async def test_only_mode_refuses_any_other_text(only: str, client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")  # signed up where any text runs
    async with httpx.AsyncClient(base_url=only) as http:
        for headers in ({}, {"Authorization": f"Bearer {ann.access}"}):
            refused = await http.post("/graphql", json={"query": OTHER}, headers=headers)
            assert refused.status_code == 400 and code(refused) == "PERSISTED_QUERY_ONLY"
        # Registering a text under its hash is sending it: refused too, and not kept.
        apq = {"persistedQuery": {"version": 1, "sha256Hash": sha256(OTHER)}}
        registering = await http.post("/graphql", json={"query": OTHER, "extensions": apq})
        assert code(registering) == "PERSISTED_QUERY_ONLY"
        assert code(await http.post("/graphql", json={"extensions": apq})) in (
            "PERSISTED_QUERY_NOT_FOUND",
            "PERSISTED_QUERY_ONLY",
        )
        batch = await http.post("/graphql", json=[{"documentId": RELAY_ID}, {"query": OTHER}])
        assert batch.status_code == 400 and code(batch) == "PERSISTED_QUERY_ONLY"
        # A manifest document's own text is trusted however it comes.
        verbatim = await http.post("/graphql", json={"query": SETTINGS})
        assert "marketplaceSettings" in verbatim.json()["data"], verbatim.text


async def test_an_admins_token_may_send_any_text(
    runtime: Runtime, manifests: list[Path], client: GraphQLClient
) -> None:
    admin = await logged_in_admin(client, runtime)  # where any text runs
    for exempt in (True, False):
        async with (
            serve(
                runtime,
                trusted_documents=manifests,
                trusted_documents_mode="only",
                trusted_documents_exempt_admins=exempt,
            ) as url,
            httpx.AsyncClient(base_url=url) as http,
        ):
            audit = "{ auditEvents(first: 1) { edges { node { kind } } } }"
            response = await http.post(
                "/graphql",
                json={"query": audit},
                headers={"Authorization": f"Bearer {admin.access}"},
            )
            if exempt:
                assert "auditEvents" in response.json()["data"], response.text
            else:
                assert response.status_code == 400 and code(response) == "PERSISTED_QUERY_ONLY"


async def test_allow_mode_runs_manifest_ids_and_any_text(
    runtime: Runtime, manifests: list[Path]
) -> None:
    async with (
        serve(runtime, trusted_documents=manifests) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        for body in ({"documentId": RELAY_ID}, {"query": OTHER}):
            response = await http.post("/graphql", json=body)
            assert "marketplaceSettings" in response.json()["data"], response.text


async def test_subscriptions_by_id_over_websockets_in_only_mode(
    only: str, client: GraphQLClient
) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    task = await post_task(client, ann)
    async with ws(only) as socket, ws(only, LEGACY_WS) as legacy:
        await socket.init(ann.access)
        await legacy.init(ann.access)
        await socket.send(
            {"id": "by-id", "type": "subscribe", "payload": {"documentId": sha256(EVENTS)}}
        )
        await socket.send({"id": "text", "type": "subscribe", "payload": {"query": OTHER}})
        refused = await _answer(socket)
        assert refused["id"] == "text" and refused["type"] == "error", refused
        assert refused["payload"][0]["extensions"]["code"] == "PERSISTED_QUERY_ONLY"
        await legacy.send({"id": "text", "type": "start", "payload": {"query": OTHER}})
        refused = await _answer(legacy)
        assert refused["type"] == "error", refused
        assert refused["payload"]["extensions"]["code"] == "PERSISTED_QUERY_ONLY"
        await asyncio.sleep(0.2)  # let the subscription start
        await make_offer(client, tom, task["id"])
        # The refusal left the socket, and its subscription by id, running.
        assert (await socket.next_data("by-id"))["myEvents"]["kind"] == "OFFER_RECEIVED"


async def test_the_partner_graph_is_exempt(only: str) -> None:
    partner = await approved_partner()
    async with httpx.AsyncClient(base_url=only) as http:
        response = await http.post(
            "/graphql",
            json={"query": "{ partner { name } }"},
            headers={"Authorization": f"Bearer {partner.key}"},
        )
        assert response.json() == {"data": {"partner": {"name": "RoSaBank"}}}, response.text


async def _answer(socket: Any) -> dict[str, Any]:
    while (message := await socket.receive())["type"] == "ka":
        pass
    answer: dict[str, Any] = message
    return answer


def test_only_mode_needs_a_manifest() -> None:
    from pydantic import ValidationError

    from documents.settings import Settings

    with pytest.raises(ValidationError, match="GIGQL_TRUSTED_DOCUMENTS"):
        Settings(_env_file=None, trusted_documents_mode="only")
    assert Settings(_env_file=None, trusted_documents="a.json,b.json").trusted_documents == [
        Path("a.json"),
        Path("b.json"),
    ]
