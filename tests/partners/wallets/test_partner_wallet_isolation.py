"""One partner reaches nothing of another's wallets and transactions: every id of theirs
is NOT_FOUND, as an unknown id is, and `node` is null."""

from __future__ import annotations

from typing import Any

from documents.money import Money
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient
from tests.support.partners.partners import approved_partner, key_of
from tests.support.partners.wallets import (
    balance,
    codes,
    create_wallet,
    debit,
    fund,
    transfer_money,
)


async def _error_code(client: GraphQLClient, key: str, query: str, **variables: Any) -> str:
    result = await client.execute(query, variables, token=key)
    assert result["data"] is None or all(v is None for v in result["data"].values()), result
    code: str = result["errors"][0]["extensions"]["code"]
    return code


async def test_a_partner_reaches_nothing_of_another(
    client: GraphQLClient, runtime: Runtime
) -> None:
    owner = await approved_partner("RoSaBank")
    owner_key = owner.key
    wallet = await create_wallet(client, owner_key, "theirs")
    await fund(runtime.services, owner, wallet["id"], Money(amount=1_000, currency="USD"))
    paid = await debit(client, owner_key, wallet["id"], 100, "d")
    transaction_id = paid["transaction"]["id"]
    entries = await client.data(
        "query($id: ID!) { wallet(id: $id) { entries { edges { node { id } } } } }",
        {"id": wallet["id"]},
        token=owner_key,
    )
    entry_id = entries["wallet"]["entries"]["edges"][0]["node"]["id"]

    other = await key_of(await approved_partner("SavingsCircle"))
    mine = await create_wallet(client, other, "mine")

    wallet_query = "query($id: ID!) { wallet(id: $id) { id } }"
    assert await _error_code(client, other, wallet_query, id=wallet["id"]) == "NOT_FOUND"
    by_external = '{ walletByExternalId(externalWalletId: "theirs") { id } }'
    assert await _error_code(client, other, by_external) == "NOT_FOUND"
    transaction_query = "query($id: ID!) { transaction(id: $id) { id } }"
    assert await _error_code(client, other, transaction_query, id=transaction_id) == "NOT_FOUND"
    for node_id in (wallet["id"], transaction_id, entry_id, paid["clearingWallet"]["id"]):
        found = await client.data(
            "query($id: ID!) { node(id: $id) { id } }", {"id": node_id}, token=other
        )
        assert found == {"node": None}
    listed = await client.data(
        """query($w: ID!) { wallets { edges { node { externalWalletId } } }
             transactions { edges { node { id } } }
             theirs: transactions(filter: {walletId: $w}) { edges { node { id } } } }""",
        {"w": wallet["id"]},
        token=other,
    )
    assert listed["wallets"]["edges"] == [{"node": {"externalWalletId": "mine"}}]
    assert listed["transactions"]["edges"] == []
    assert listed["theirs"]["edges"] == []

    # Nor moves or changes anything of theirs.
    assert codes(await debit(client, other, wallet["id"], 100, "x")) == [("walletId", "NOT_FOUND")]
    assert codes(await transfer_money(client, other, wallet["id"], mine["id"], 100, "y")) == [
        ("fromWalletId", "NOT_FOUND")
    ]
    assert codes(await transfer_money(client, other, mine["id"], wallet["id"], 100, "z")) == [
        ("toWalletId", "NOT_FOUND")
    ]
    for move in ("freezeWallet", "unfreezeWallet", "closeWallet"):
        payload = await client.mutate(
            move, {"walletId": wallet["id"]}, "wallet { id }", token=other
        )
        assert codes(payload) == [("walletId", "NOT_FOUND")]
    renamed = await client.mutate(
        "updateWallet", {"walletId": wallet["id"], "name": "mine now"}, "wallet { id }", token=other
    )
    assert codes(renamed) == [("walletId", "NOT_FOUND")]
    assert await balance(wallet["id"]) == 900

    # The owner still sees it all.
    seen = await client.data(
        "query($id: ID!) { node(id: $id) { id } }", {"id": wallet["id"]}, token=owner_key
    )
    assert seen == {"node": {"id": wallet["id"]}}
