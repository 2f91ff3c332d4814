"""Guessing passwords: one per request, counted, locked and audited wherever it is checked."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from documents.accounts.audit import AuditEvent, AuditKind
from documents.accounts.users import User
from server.runtime import Runtime
from tests.conftest import serve
from tests.support.graphql_client import STRONG_PASSWORD, GraphQLClient, Tokens, error_codes
from tests.support.ws_client import TRANSPORT_WS, WsClient, ws

ONE_PER_REQUEST = "ONE_PASSWORD_PER_REQUEST"
WRONG = "Not-The-Password-1"


def export_fields(passwords: list[str]) -> str:
    return " ".join(
        f'e{n}: exportMyData(input: {{password: "{password}"}}) {{ errors {{ code }} data }}'
        for n, password in enumerate(passwords)
    )


def payloads(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [data[f"e{n}"] for n in range(len(data))]


async def test_a_batch_of_aliased_exports_checks_one_password(client: GraphQLClient) -> None:
    """300 guesses in one POST (10 operations of 30 aliases): one is checked."""
    member = await client.member("pia@example.com")
    guesses = [f"Guess-{n:03d}-Xy!" for n in range(300)]
    guesses[257] = STRONG_PASSWORD
    batch = [
        {"query": f"mutation {{ {export_fields(guesses[n : n + 30])} }}"} for n in range(0, 300, 30)
    ]
    response = await client.http.post(
        "/graphql", json=batch, headers={"Authorization": f"Bearer {member.access}"}
    )
    assert response.status_code == 200, response.text
    results = [payload for result in response.json() for payload in payloads(result["data"])]

    checked = [p for p in results if error_codes(p) != [ONE_PER_REQUEST]]
    assert len(results) == 300 and len(checked) == 1, checked
    assert all(p["data"] is None for p in results if p not in checked)
    tried = await AuditEvent.find(
        {"kind": {"$in": [AuditKind.PASSWORD_CHECK_FAILED, AuditKind.DATA_EXPORTED]}}
    ).count()
    assert tried == 1


async def test_two_new_passwords_in_one_request_hash_one(client: GraphQLClient) -> None:
    sign_ups = " ".join(
        f'{alias}: signUp(input: {{name: "N", email: "{alias}@example.com", '
        f'password: "{STRONG_PASSWORD}", roles: [POSTER]}}) {{ errors {{ code field }} }}'
        for alias in ("one", "two")
    )
    data = await client.data(f"mutation {{ {sign_ups} }}")
    assert data["one"]["errors"] == []
    assert data["two"]["errors"] == [{"code": ONE_PER_REQUEST, "field": "password"}]
    assert await User.count() == 1


CONFIRMATIONS = {
    "exportMyData": {"password": WRONG},
    "deleteMyAccount": {"password": WRONG},
    "changePassword": {"currentPassword": WRONG, "newPassword": "Brand-New-Secret-77"},
}


@pytest.mark.parametrize("mutation", sorted(CONFIRMATIONS))
async def test_wrong_confirmations_count_and_lock_with_failed_logins(
    client: GraphQLClient, mutation: str
) -> None:
    member = await client.member("quin@example.com")
    wrong_input = CONFIRMATIONS[mutation]
    for _ in range(2):
        failed = await client.mutate("login", {"email": "quin@example.com", "password": WRONG})
        assert error_codes(failed) == ["INVALID_CREDENTIALS"]
    for _ in range(2):
        failed = await client.mutate(mutation, wrong_input, token=member.access)
        assert error_codes(failed) == ["INVALID_CREDENTIALS"]
    # The fifth wrong password in a row, wherever it was given, locks the account.
    locked = await client.mutate(mutation, wrong_input, token=member.access)
    assert error_codes(locked) == ["ACCOUNT_LOCKED"]

    right = await client.mutate("login", {"email": "quin@example.com", "password": STRONG_PASSWORD})
    assert error_codes(right) == ["ACCOUNT_LOCKED"]
    right_input = {key: STRONG_PASSWORD for key in wrong_input if key != "newPassword"}
    refused = await client.mutate(mutation, {**wrong_input, **right_input}, token=member.access)
    assert error_codes(refused) == ["ACCOUNT_LOCKED"]
    assert await User.find_one(User.email == "quin@example.com") is not None  # not deleted

    audited = await AuditEvent.find(AuditEvent.kind == AuditKind.PASSWORD_CHECK_FAILED).to_list()
    assert sorted(e.details["reason"] for e in audited) == ["locked"] + ["wrong_password"] * 3
    assert await AuditEvent.find(AuditEvent.kind == AuditKind.ACCOUNT_LOCKED).count() == 1


async def test_confirmations_share_the_per_ip_limit(runtime: Runtime) -> None:
    async with serve(runtime, login_ip_max_failures=2) as url:
        client = GraphQLClient(httpx.AsyncClient(base_url=url))
        async with client.http:
            member = await client.member("rex@example.com")
            for address in ("nobody@example.com", "noone@example.com"):
                failed = await client.mutate("login", {"email": address, "password": WRONG})
                assert error_codes(failed) == ["INVALID_CREDENTIALS"]
            refused = await client.mutate(
                "exportMyData", {"password": STRONG_PASSWORD}, "data", token=member.access
            )
    assert error_codes(refused) == ["TOO_MANY_ATTEMPTS"] and refused["data"] is None
    refusal = await AuditEvent.find_one(AuditEvent.kind == AuditKind.PASSWORD_CHECK_FAILED)
    assert refusal is not None and refusal.details["reason"] == "ip_throttled"


async def test_a_burst_of_guesses_gets_no_more_checks_than_the_lock_allows(
    client: GraphQLClient,
) -> None:
    """Checks are counted before they are made: concurrent guesses cannot all slip past
    the count while the first ones are still being hashed."""
    await client.sign_up("sal@example.com")
    results = await asyncio.gather(
        *(
            client.mutate("login", {"email": "sal@example.com", "password": f"Guess-{n}-Xy!"})
            for n in range(20)
        )
    )
    assert {code for result in results for code in error_codes(result)} <= {
        "INVALID_CREDENTIALS",
        "ACCOUNT_LOCKED",
    }
    checked = await AuditEvent.find(
        AuditEvent.kind == AuditKind.LOGIN_FAILED, {"details.reason": "wrong_password"}
    ).count()
    assert 1 <= checked <= 5


# --- websockets: one password per operation ----------------------------------------


async def _operation(socket: WsClient, operation_id: str, query: str) -> dict[str, Any]:
    await socket.subscribe(operation_id, query)
    while True:
        message = await socket.receive()
        if message.get("type") in ("ka", "ping", "pong", "complete"):
            continue
        assert message.get("id") == operation_id and message["type"] in ("next", "data"), message
        data: dict[str, Any] = message["payload"]["data"]
        return data


async def _connected(socket: WsClient, member: Tokens) -> None:
    assert (await socket.init(member.access))["type"] == "connection_ack"


async def test_a_websocket_operation_checks_one_password(
    client: GraphQLClient, base_url: str
) -> None:
    member = await client.member("tia@example.com")
    async with ws(base_url, TRANSPORT_WS) as socket:
        await _connected(socket, member)
        two = await _operation(socket, "1", f"mutation {{ {export_fields([WRONG, WRONG])} }}")
        assert [error_codes(p) for p in payloads(two)] == [
            ["INVALID_CREDENTIALS"],
            [ONE_PER_REQUEST],
        ]
        # The next operation on the same socket is a request of its own.
        right = await _operation(socket, "2", f"mutation {{ {export_fields([STRONG_PASSWORD])} }}")
        assert right["e0"]["errors"] == [] and right["e0"]["data"]["account"]
