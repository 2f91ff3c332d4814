"""Refresh-token rotation, reuse detection, cookies, and managing one's sessions."""

from __future__ import annotations

import asyncio

import httpx

from documents.accounts.audit import AuditEvent, AuditKind
from documents.accounts.sessions import RevokeReason, Session
from tests.support.graphql_client import ME, GraphQLClient, error_codes, graphql_error_codes

TOKENS = "tokens { accessToken refreshToken refreshTokenExpiresAt }"
SESSIONS = """{ me { sessions(first: 10) { edges { cursor node {
    id device userAgent ip createdAt lastUsedAt expiresAt current } } } } }"""


async def _refresh(client: GraphQLClient, token: str | None) -> dict[str, object]:
    return await client.mutate("refreshToken", {"refreshToken": token}, TOKENS)


async def test_refresh_rotates_the_token(client: GraphQLClient) -> None:
    tokens = await client.member("mo@example.com")
    first = await _refresh(client, tokens.refresh)
    assert first["errors"] == []
    rotated = first["tokens"]
    assert isinstance(rotated, dict)
    assert rotated["refreshToken"] != tokens.refresh
    assert (await client.data(ME, token=rotated["accessToken"]))["me"]["id"] == tokens.user_id
    second = await _refresh(client, rotated["refreshToken"])
    assert second["errors"] == []


async def test_reusing_a_refresh_token_ends_the_whole_session(client: GraphQLClient) -> None:
    tokens = await client.member("ned@example.com")
    rotated = (await _refresh(client, tokens.refresh))["tokens"]
    assert isinstance(rotated, dict)

    # The old token is presented again: someone copied it.
    reused = await _refresh(client, tokens.refresh)
    assert error_codes(reused) == ["TOKEN_REUSED"]
    assert reused["tokens"] is None

    # The whole family is gone: the newest refresh token and the access tokens too.
    assert error_codes(await _refresh(client, rotated["refreshToken"])) == ["SESSION_REVOKED"]
    result = await client.execute(ME, token=rotated["accessToken"])
    assert graphql_error_codes(result) == ["SESSION_REVOKED"]
    session = await Session.find_one()
    assert session is not None and session.revoke_reason is RevokeReason.TOKEN_REUSE
    assert await AuditEvent.find(AuditEvent.kind == AuditKind.REFRESH_TOKEN_REUSED).count() == 1


async def test_concurrent_refreshes_of_one_token_have_one_winner(client: GraphQLClient) -> None:
    tokens = await client.member("ola@example.com")
    results = await asyncio.gather(*(_refresh(client, tokens.refresh) for _ in range(5)))
    winners = [r for r in results if not r["errors"]]
    assert len(winners) == 1
    assert all(
        error_codes(r)[0] in {"TOKEN_REUSED", "SESSION_REVOKED"} for r in results if r["errors"]
    )


async def test_unknown_and_missing_refresh_tokens_are_invalid(client: GraphQLClient) -> None:
    assert error_codes(await _refresh(client, "no-such-token")) == ["INVALID_TOKEN"]
    assert error_codes(await _refresh(client, None)) == ["INVALID_TOKEN"]


async def test_browsers_can_keep_the_refresh_token_in_an_http_only_cookie(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        client = GraphQLClient(http)
        await client.sign_up("pam@example.com")
        response = await client.post(
            "mutation($i: LoginInput!) { login(input: $i) { errors { code } tokens { accessToken refreshToken } } }",
            {
                "i": {
                    "email": "pam@example.com",
                    "password": "Correct-Horse-42",
                    "refreshTokenInCookie": True,
                }
            },
        )
        login = response.json()["data"]["login"]
        assert login["tokens"]["refreshToken"] is None
        cookie = response.headers["set-cookie"]
        for attribute in (
            "gigql_refresh=",
            "HttpOnly",
            "Secure",
            "SameSite=strict",
            "Path=/graphql",
        ):
            assert attribute.lower() in cookie.lower(), attribute
        token = cookie.split("gigql_refresh=", 1)[1].split(";", 1)[0]

        # httpx will not send a Secure cookie over plain http, so send it the way a browser would.
        refreshed = await client.http.post(
            "/graphql",
            json={
                "query": "mutation { refreshToken(input: {}) { errors { code } tokens { refreshToken } } }"
            },
            headers={"Cookie": f"gigql_refresh={token}"},
        )
        payload = refreshed.json()["data"]["refreshToken"]
        assert payload["errors"] == [] and payload["tokens"]["refreshToken"] is None
        next_token = refreshed.headers["set-cookie"].split("gigql_refresh=", 1)[1].split(";", 1)[0]
        assert next_token and next_token != token

        logout = await client.http.post(
            "/graphql",
            json={"query": "mutation { logout(input: {}) { errors { code } } }"},
            headers={"Cookie": f"gigql_refresh={next_token}"},
        )
        assert logout.json()["data"]["logout"]["errors"] == []
        assert (
            'gigql_refresh=""' in logout.headers["set-cookie"]
            or "max-age=0" in logout.headers["set-cookie"].lower()
        )
        assert await Session.find(Session.revoked_at == None).count() == 0  # noqa: E711


async def test_users_list_and_end_their_sessions(client: GraphQLClient) -> None:
    await client.sign_up("quin@example.com")
    phone = await client.login("quin@example.com", deviceName="Quin's phone")
    laptop = await client.login("quin@example.com")

    edges = (await client.data(SESSIONS, token=laptop.access))["me"]["sessions"]["edges"]
    assert len(edges) == 2
    by_device = {e["node"]["device"]: e["node"] for e in edges}
    assert by_device["Quin's phone"]["current"] is False
    current = [n for n in by_device.values() if n["current"]]
    assert (
        len(current) == 1
        and current[0]["ip"] == "127.0.0.1"
        and "python-httpx" in current[0]["userAgent"]
    )
    assert all(n["createdAt"] and n["lastUsedAt"] and n["expiresAt"] for n in by_device.values())

    revoked = await client.mutate(
        "revokeSession",
        {"sessionId": by_device["Quin's phone"]["id"]},
        "sessionId",
        token=laptop.access,
    )
    assert revoked["errors"] == []
    assert graphql_error_codes(await client.execute(ME, token=phone.access)) == ["SESSION_REVOKED"]
    edges = (await client.data(SESSIONS, token=laptop.access))["me"]["sessions"]["edges"]
    assert len(edges) == 1

    # Another user's session id is simply not found.
    other = await client.member("rae@example.com")
    foreign = await client.mutate(
        "revokeSession", {"sessionId": current[0]["id"]}, token=other.access
    )
    assert error_codes(foreign) == ["NOT_FOUND"]
    await client.data(ME, token=laptop.access)


async def test_logout_everywhere(client: GraphQLClient) -> None:
    await client.sign_up("sal@example.com")
    sessions = [await client.login("sal@example.com") for _ in range(3)]
    payload = await client.mutate(
        "logoutEverywhere",
        {"keepCurrentSession": True},
        "revokedSessions",
        token=sessions[0].access,
    )
    assert payload["revokedSessions"] == 2
    await client.data(ME, token=sessions[0].access)
    for other in sessions[1:]:
        assert graphql_error_codes(await client.execute(ME, token=other.access)) == [
            "SESSION_REVOKED"
        ]
    payload = await client.mutate(
        "logoutEverywhere", {}, "revokedSessions", token=sessions[0].access
    )
    assert payload["revokedSessions"] == 1
    assert graphql_error_codes(await client.execute(ME, token=sessions[0].access)) == [
        "SESSION_REVOKED"
    ]
