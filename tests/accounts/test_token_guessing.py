"""Refresh tokens and mailed tokens: wrong ones are counted per client IP and audited."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from documents.accounts.audit import AuditEvent, AuditKind
from integrations.mail import MemoryMailer
from server.runtime import Runtime
from tests.conftest import serve
from tests.support.graphql_client import GraphQLClient, error_codes
from tests.support.mail_links import mailed_token

WRONG_TOKENS: dict[str, Callable[[str], dict[str, str]]] = {
    "refreshToken": lambda token: {"refreshToken": token},
    "verifyEmail": lambda token: {"token": token},
    "resetPassword": lambda token: {"token": token, "newPassword": "Brand-New-Secret-77"},
}


@pytest.mark.parametrize("mutation", sorted(WRONG_TOKENS))
async def test_wrong_tokens_count_against_the_client_and_are_audited(
    runtime: Runtime, outbox: MemoryMailer, mutation: str
) -> None:
    make_input = WRONG_TOKENS[mutation]
    async with serve(runtime, login_ip_max_failures=2) as url:
        client = GraphQLClient(httpx.AsyncClient(base_url=url))
        async with client.http:
            member = await client.member("una@example.com")
            await client.mutate("requestPasswordReset", {"email": "una@example.com"})
            assert member.refresh is not None
            right = {
                "refreshToken": member.refresh,
                "verifyEmail": await mailed_token(outbox, "una@example.com", "Confirm"),
                "resetPassword": await mailed_token(outbox, "una@example.com", "Reset"),
            }[mutation]
            for guess in ("not-a-token-1", "not-a-token-2"):
                wrong = await client.mutate(mutation, make_input(guess))
                assert error_codes(wrong) == ["INVALID_TOKEN"]
            # The client has had its share: even the right token is not looked at now.
            refused = await client.mutate(mutation, make_input(right))
    assert error_codes(refused) == ["TOO_MANY_ATTEMPTS"]
    rejected = await AuditEvent.find(AuditEvent.kind == AuditKind.TOKEN_REJECTED).to_list()
    assert sorted(e.details["reason"] for e in rejected) == ["invalid", "invalid", "ip_throttled"]


async def test_right_answers_mixed_in_buy_no_more_wrong_ones(runtime: Runtime) -> None:
    """Each right check (one's own refresh token, one's own password) is no credit
    against the wrong ones: the client still gets only its share of failures."""
    async with serve(runtime, login_ip_max_failures=3) as url:
        client = GraphQLClient(httpx.AsyncClient(base_url=url))
        async with client.http:
            own = await client.member("own@example.com")
            await client.sign_up("victim@example.com")
            refresh = own.refresh
            answers = []
            for guess in ("Wrong-Guess-001", "Wrong-Guess-002", "Wrong-Guess-003"):
                # A right one first: it must not take a wrong one back.
                renewed = await client.mutate(
                    "refreshToken", {"refreshToken": refresh}, "tokens { refreshToken }"
                )
                assert renewed["errors"] == [], renewed
                refresh = renewed["tokens"]["refreshToken"]
                wrong = await client.mutate(
                    "login", {"email": "victim@example.com", "password": guess}
                )
                answers.append(error_codes(wrong))
            assert answers == [["INVALID_CREDENTIALS"]] * 3
            refused = await client.mutate(
                "login", {"email": "victim@example.com", "password": "Wrong-Guess-004"}
            )
    assert error_codes(refused) == ["TOO_MANY_ATTEMPTS"]


async def test_an_ipv6_block_counts_as_one_client(runtime: Runtime) -> None:
    """A subscriber rotates freely through its /64: the addresses in it share one count,
    as they share one rate limit."""
    async with serve(runtime, login_ip_max_failures=2) as url:
        client = GraphQLClient(httpx.AsyncClient(base_url=url))
        async with client.http:
            await client.sign_up("victim@example.com")
            answers = []
            for host in range(1, 4):
                response = await client.http.post(
                    "/graphql",
                    json={
                        "query": LOGIN,
                        "variables": {"email": "victim@example.com", "password": f"Guess-{host}x"},
                    },
                    # The test servers trust 127.0.0.1 as a proxy, as gigql does by default.
                    headers={"X-Forwarded-For": f"2001:db8:7:7::{host}"},
                )
                answers.append(error_codes(response.json()["data"]["login"]))
    assert answers == [["INVALID_CREDENTIALS"], ["INVALID_CREDENTIALS"], ["TOO_MANY_ATTEMPTS"]]


LOGIN = (
    "mutation($email: String!, $password: String!) "
    "{ login(input: {email: $email, password: $password}) { errors { code } } }"
)
