"""A partner API key reaches the partner graph and nothing else; anything else the main one."""

from __future__ import annotations

from documents.partners.api_keys import ApiScope
from tests.support.graphql_client import GraphQLClient
from tests.support.partners.partners import approved_partner


async def test_a_key_reaches_the_partner_graph_only(client: GraphQLClient) -> None:
    key = (await approved_partner(scopes=(ApiScope.READ_WALLETS,))).key
    data = await client.data("{ partner { name keyScopes } }", token=key)
    assert data == {"partner": {"name": "RoSaBank", "keyScopes": ["READ_WALLETS"]}}
    # The main graph's fields do not exist for a key.
    result = await client.post("{ me { id } }", token=key)
    assert result.status_code == 200
    assert "Cannot query field 'me'" in result.json()["errors"][0]["message"]


async def test_a_user_token_does_not_reach_the_partner_graph(client: GraphQLClient) -> None:
    member = await client.member("someone@example.com")
    result = await client.post("{ partner { name } }", token=member.access)
    assert "Cannot query field 'partner'" in result.json()["errors"][0]["message"]


async def test_an_unknown_or_altered_key_is_refused(client: GraphQLClient) -> None:
    key = (await approved_partner(scopes=(ApiScope.READ_WALLETS,))).key
    for presented in (key[:-1] + ("A" if key[-1] != "A" else "B"), "gq_test_nonsense", "gq_"):
        response = await client.post("{ partner { name } }", token=presented)
        assert response.status_code == 401, presented
        assert response.json()["errors"][0]["extensions"]["code"] == "INVALID_API_KEY"
