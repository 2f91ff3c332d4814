"""Partner wallets over real HTTP: creating, reading, listing, changing, freezing and
closing them, each only by the partner that owns them."""

from __future__ import annotations

import asyncio
from typing import Any

from documents.money import Money
from documents.partners.api_keys import ApiScope
from documents.partners.wallets import PartnerWallet
from resolvers.payments.ledger_check import verify
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient
from tests.support.partners.partners import approved_partner, key_of
from tests.support.partners.wallets import (
    WALLET_FIELDS,
    balance,
    codes,
    create_wallet,
    debit,
    fund,
    transfer_money,
)

WALLETS = """query($filter: PartnerWalletFilter, $first: Int, $after: String) {
  wallets(filter: $filter, first: $first, after: $after) {
    edges { node { externalWalletId } } pageInfo { hasNextPage endCursor } } }"""


async def _listed(client: GraphQLClient, key: str, **variables: object) -> list[str]:
    data = await client.data(WALLETS, dict(variables), token=key)
    return [e["node"]["externalWalletId"] for e in data["wallets"]["edges"]]


async def test_a_wallet_is_created_read_and_listed(client: GraphQLClient) -> None:
    key = (await approved_partner()).key
    made = await create_wallet(client, key, "w-1", user="alice", metadata={"tier": "gold", "n": 3})
    assert made["externalUserId"] == "alice"
    assert made["status"] == "ACTIVE" and made["clearing"] is False
    assert made["metadata"] == {"tier": "gold", "n": 3}
    assert made["balance"] == {"amount": 0, "currency": "USD"}
    await create_wallet(client, key, "w-2", user="alice", currency="eur")
    await create_wallet(client, key, "w-3", user="bob")

    by_id = await client.data(
        "query($id: ID!) { wallet(id: $id) { externalWalletId currency } }",
        {"id": made["id"]},
        token=key,
    )
    assert by_id["wallet"] == {"externalWalletId": "w-1", "currency": "USD"}
    by_external = await client.data(
        '{ walletByExternalId(externalWalletId: "w-2") { currency name } }', token=key
    )
    assert by_external["walletByExternalId"] == {"currency": "EUR", "name": "Wallet w-2"}

    assert await _listed(client, key) == ["w-3", "w-2", "w-1"]
    assert await _listed(client, key, filter={"externalUserId": "alice"}) == ["w-2", "w-1"]
    assert await _listed(client, key, filter={"currency": "EUR"}) == ["w-2"]
    assert await _listed(client, key, filter={"status": "FROZEN"}) == []
    first = await client.data(WALLETS, {"first": 2}, token=key)
    assert first["wallets"]["pageInfo"]["hasNextPage"] is True
    after = first["wallets"]["pageInfo"]["endCursor"]
    assert await _listed(client, key, first=2, after=after) == ["w-1"]


async def test_an_external_wallet_id_is_taken_once_even_under_a_race(
    client: GraphQLClient,
) -> None:
    key = (await approved_partner()).key
    await create_wallet(client, key, "taken")
    again = await client.mutate(
        "createWallet",
        {"externalUserId": "u", "externalWalletId": "taken", "name": "n", "currency": "USD"},
        "wallet { id }",
        token=key,
    )
    assert codes(again) == [("externalWalletId", "ALREADY_EXISTS")]
    assert again["wallet"] is None

    racing = await asyncio.gather(
        *(
            client.mutate(
                "createWallet",
                {
                    "externalUserId": "u",
                    "externalWalletId": "raced",
                    "name": "n",
                    "currency": "USD",
                },
                "wallet { id }",
                token=key,
            )
            for _ in range(8)
        )
    )
    made = [p for p in racing if not p["errors"]]
    assert len(made) == 1
    assert all(codes(p) == [("externalWalletId", "ALREADY_EXISTS")] for p in racing if p["errors"])
    assert await PartnerWallet.find({"external_wallet_id": "raced"}).count() == 1


async def test_bad_input_is_refused_and_nothing_is_stored(client: GraphQLClient) -> None:
    key = (await approved_partner()).key
    good = {"externalUserId": "u", "externalWalletId": "w", "name": "n", "currency": "USD"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"metadata": {f"k{i}": i for i in range(51)}}, "metadata"),
        ({"metadata": {"nested": {"a": 1}}}, "metadata.nested"),
        ({"metadata": {"k" * 41: "v"}}, "metadata"),
        ({"metadata": {"long": "v" * 501}}, "metadata.long"),
        ({"metadata": {"a.b": "v"}}, "metadata"),
        ({"metadata": {"none": None}}, "metadata.none"),
        ({"metadata": ["not", "an", "object"]}, "metadata"),
        ({"name": "bad\u202ename"}, "name"),
        ({"name": "   "}, "name"),
        ({"externalUserId": ""}, "externalUserId"),
        ({"externalWalletId": "x" * 256}, "externalWalletId"),
        ({"externalWalletId": "clearing-usd"}, "externalWalletId"),
        ({"currency": "XYZ"}, "currency"),
    ]
    for change, field in cases:
        payload = await client.mutate(
            "createWallet", {**good, **change}, "wallet { id }", token=key
        )
        assert codes(payload) == [(field, "INVALID_INPUT")], (change, payload)
        assert payload["wallet"] is None
    assert await PartnerWallet.count() == 0


async def test_a_wallet_name_and_metadata_change(client: GraphQLClient) -> None:
    key = (await approved_partner()).key
    wallet = await create_wallet(client, key, "w", metadata={"a": "1"})
    changed = await client.mutate(
        "updateWallet",
        {"walletId": wallet["id"], "name": "Holiday savings"},
        "wallet { name metadata currency }",
        token=key,
    )
    assert changed["wallet"] == {
        "name": "Holiday savings",
        "metadata": {"a": "1"},
        "currency": "USD",
    }
    replaced = await client.mutate(
        "updateWallet",
        {"walletId": wallet["id"], "metadata": {"b": True}},
        "wallet { name metadata }",
        token=key,
    )
    assert replaced["wallet"] == {"name": "Holiday savings", "metadata": {"b": True}}
    refused = await client.mutate(
        "updateWallet",
        {"walletId": wallet["id"], "name": "ok", "metadata": {"x": [1]}},
        "wallet { name }",
        token=key,
    )
    assert codes(refused) == [("metadata.x", "INVALID_INPUT")]
    stored = await PartnerWallet.find_one({"external_wallet_id": "w"})
    assert stored is not None and stored.name == "Holiday savings"


async def _status(client: GraphQLClient, key: str, move: str, wallet_id: str) -> dict[str, object]:
    return await client.mutate(move, {"walletId": wallet_id}, "wallet { status }", token=key)


async def test_a_wallet_is_frozen_unfrozen_and_closed(client: GraphQLClient) -> None:
    key = (await approved_partner()).key
    wallet = await create_wallet(client, key, "w")
    assert (await _status(client, key, "freezeWallet", wallet["id"]))["wallet"] == {
        "status": "FROZEN"
    }
    again = await _status(client, key, "freezeWallet", wallet["id"])
    assert codes(again) == [("walletId", "INVALID_STATE")]
    assert (await _status(client, key, "unfreezeWallet", wallet["id"]))["wallet"] == {
        "status": "ACTIVE"
    }
    assert (await _status(client, key, "closeWallet", wallet["id"]))["wallet"] == {
        "status": "CLOSED"
    }
    for move in ("freezeWallet", "unfreezeWallet", "closeWallet"):
        assert codes(await _status(client, key, move, wallet["id"])) == [
            ("walletId", "INVALID_STATE")
        ]
    renamed = await client.mutate(
        "updateWallet", {"walletId": wallet["id"], "name": "x"}, "wallet { name }", token=key
    )
    assert codes(renamed) == [("walletId", "INVALID_STATE")]
    stored = await PartnerWallet.find_one({"external_wallet_id": "w"})
    assert stored is not None
    assert [change.move for change in stored.history] == ["freeze", "unfreeze", "close"]


async def test_a_wallet_holding_money_is_not_closed(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner()
    key = partner.key
    wallet = await create_wallet(client, key, "w")
    await fund(runtime.services, partner, wallet["id"], Money(amount=1_500, currency="USD"))
    refused = await _status(client, key, "closeWallet", wallet["id"])
    assert codes(refused) == [("walletId", "INVALID_STATE")]
    assert "15.00 USD" in refused["errors"][0]["message"]  # type: ignore[index]
    # The clearing wallet debits pay into is never closed.
    emptied = await debit(client, key, wallet["id"], 1_500, "empty-it")
    assert emptied["errors"] == []
    clearing = emptied["clearingWallet"]["id"]
    assert codes(await _status(client, key, "closeWallet", clearing)) == [
        ("walletId", "INVALID_STATE")
    ]
    closed = await _status(client, key, "closeWallet", wallet["id"])
    assert closed["wallet"] == {"status": "CLOSED"}


async def test_a_read_only_key_moves_nothing(client: GraphQLClient, runtime: Runtime) -> None:
    partner = await approved_partner()
    writer = partner.key
    reader = await key_of(partner, (ApiScope.READ_WALLETS,))
    wallet = await create_wallet(client, writer, "w")
    await fund(runtime.services, partner, wallet["id"], Money(amount=1_000, currency="USD"))
    made = await client.mutate(
        "createWallet",
        {"externalUserId": "u", "externalWalletId": "w2", "name": "n", "currency": "USD"},
        "wallet { id }",
        token=reader,
    )
    assert codes(made) == [(None, "FORBIDDEN")]
    moved = await debit(client, reader, wallet["id"], 100, "k")
    assert codes(moved) == [(None, "FORBIDDEN")]
    frozen = await _status(client, reader, "freezeWallet", wallet["id"])
    assert codes(frozen) == [(None, "FORBIDDEN")]
    assert await PartnerWallet.count() == 1
    # And a key that may only move money reads nothing.
    mover = await key_of(partner, (ApiScope.MOVE_MONEY,))
    result = await client.execute("{ wallets { edges { node { id } } } }", token=mover)
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # The reader reads.
    data = await client.data(
        f"query($id: ID!) {{ wallet(id: $id) {{ {WALLET_FIELDS} }} }}",
        {"id": wallet["id"]},
        token=reader,
    )
    assert data["wallet"]["balance"] == {"amount": 1_000, "currency": "USD"}


async def test_closing_races_money_arriving_with_one_winner(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner()
    key = partner.key
    source = await create_wallet(client, key, "source")
    await fund(runtime.services, partner, source["id"], Money(amount=10_000, currency="USD"))
    targets = [await create_wallet(client, key, f"t-{i}") for i in range(6)]

    async def race(target: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        sent, closed = await asyncio.gather(
            transfer_money(client, key, source["id"], target["id"], 100, f"to-{target['id']}"),
            _status(client, key, "closeWallet", target["id"]),
        )
        return sent, closed

    for target, (sent, closed) in zip(
        targets, await asyncio.gather(*(race(t) for t in targets)), strict=True
    ):
        held = await balance(target["id"])
        if closed["errors"]:
            # The money won: it arrived, and the wallet holding it stays open.
            assert codes(closed) == [("walletId", "INVALID_STATE")]
            assert sent["errors"] == [] and held == 100
        else:
            # The close won: the money was refused and the closed wallet is empty.
            assert codes(sent) == [("toWalletId", "WALLET_FROZEN")]
            assert held == 0
    assert (await verify()).ok
