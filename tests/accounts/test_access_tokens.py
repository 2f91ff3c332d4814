"""Access tokens: only well-formed, correctly signed, current tokens of live sessions pass."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt

from documents.accounts.users import User, UserStatus
from tests.conftest import TEST_JWT_SECRET
from tests.support.graphql_client import ME, GraphQLClient, graphql_error_codes


def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def _sign(claims: dict[str, Any], secret: str = TEST_JWT_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def _unsigned(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def _me_error(client: GraphQLClient, token: str) -> str:
    result = await client.execute(ME, token=token)
    assert result["data"] is None
    codes = graphql_error_codes(result)
    assert len(codes) == 1
    return codes[0]


async def test_a_valid_token_passes(client: GraphQLClient) -> None:
    tokens = await client.member("ivy@example.com")
    assert (await client.data(ME, token=tokens.access))["me"]["id"] == tokens.user_id


async def test_bad_tokens_are_refused_with_a_clear_code(client: GraphQLClient) -> None:
    tokens = await client.member("jo@example.com")
    claims = _claims(tokens.access)
    now = int(time.time())
    cases = {
        "forged signature": (
            _sign(claims, secret="another-secret-another-secret-another"),
            "INVALID_TOKEN",
        ),
        "alg none": (_unsigned(claims), "INVALID_TOKEN"),
        "expired": (_sign({**claims, "iat": now - 3600, "exp": now - 60}), "TOKEN_EXPIRED"),
        "wrong audience": (_sign({**claims, "aud": "another-api"}), "INVALID_TOKEN"),
        "wrong issuer": (_sign({**claims, "iss": "someone-else"}), "INVALID_TOKEN"),
        "no expiry": (_sign({k: v for k, v in claims.items() if k != "exp"}), "INVALID_TOKEN"),
        "no jti": (_sign({k: v for k, v in claims.items() if k != "jti"}), "INVALID_TOKEN"),
        "other algorithm": (_sign(claims, algorithm="HS512"), "INVALID_TOKEN"),
        "garbage": ("not-a-jwt", "INVALID_TOKEN"),
        "unknown session": (_sign({**claims, "sid": "0" * 24}), "INVALID_TOKEN"),
    }
    for name, (token, code) in cases.items():
        assert await _me_error(client, token) == code, name


async def test_a_missing_token_is_unauthenticated(client: GraphQLClient) -> None:
    assert await _me_error(client, "") == "UNAUTHENTICATED"
    response = await client.post(ME, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert graphql_error_codes(response.json()) == ["INVALID_TOKEN"]


async def test_a_suspended_user_is_refused_on_the_next_request(client: GraphQLClient) -> None:
    tokens = await client.member("kit@example.com")
    await client.data(ME, token=tokens.access)
    await User.get_pymongo_collection().update_one(
        {"email_key": "kit@example.com"}, {"$set": {"status": UserStatus.SUSPENDED.value}}
    )
    assert await _me_error(client, tokens.access) == "ACCOUNT_SUSPENDED"


async def test_a_logged_out_session_refuses_its_access_token_at_once(client: GraphQLClient) -> None:
    tokens = await client.member("lea@example.com")
    payload = await client.mutate("logout", {}, token=tokens.access)
    assert payload["errors"] == []
    assert await _me_error(client, tokens.access) == "SESSION_REVOKED"
