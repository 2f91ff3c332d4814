"""Refresh tokens and mailed tokens: wrong ones are counted per client IP and audited."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from documents.audit import AuditEvent, AuditKind
from integrations.mail import MemoryMailer
from server.runtime import Runtime
from tests.conftest import serve
from tests.graphql_client import GraphQLClient, error_codes
from tests.mail_links import mailed_token

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
