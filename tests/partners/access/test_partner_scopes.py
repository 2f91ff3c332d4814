"""A key reads wallet data only with READ_WALLETS, whatever path it takes: a key that may
only move money, or only manage webhooks, calls every mutation and root query of the
partner graph asking for every field of what it returns (wallets, transactions,
statement lines, deliveries and their payloads, through `node` too), and nothing of a
wallet's data comes back. A mutation added later whose payload reaches wallet data
without being tried here fails the test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from graphql import (
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLType,
    get_named_type,
)

from documents.money import Money
from documents.partners.api_keys import ApiScope
from documents.partners.webhooks import DeliveryStatus, PartnerWebhookDelivery
from schema.partners.schema import build_partner_schema
from server.runtime import Runtime
from tests.conftest import serve
from tests.support.graphql_client import GraphQLClient
from tests.support.partners.partners import approved_partner, key_of
from tests.support.partners.wallets import create_wallet, fund, transfer_money

GRAPH = build_partner_schema()._schema
WALLET_DATA_TYPES = {"PartnerWallet", "PartnerTransaction", "PartnerWalletEntry"}
"""Types whose fields (but ids and statuses) are wallet data; deliveries carry it in
their payload."""
CARRIERS = WALLET_DATA_TYPES | {"PartnerWebhookDelivery"}
MARK = "leak"
"""In every external id, name, metadata value and description of the wallets here."""
AMOUNTS = {987_654, 987_654 - 12_345, 12_345}
"""The balances and amounts of the wallets here."""
DEPTH = 4
ROOMY = {
    "max_aliases": 100_000,
    "max_query_cost": 10_000_000,
    "max_tokens": 1_000_000,
    "max_query_length": 10_000_000,
    "rate_limit_ip_cost": 0,
    "rate_limit_account_cost": 0,
}
NODES = ("PartnerWallet", "PartnerTransaction", "PartnerWalletEntry", "PartnerWebhookDelivery")


def _named(name: str) -> GraphQLType:
    found = GRAPH.get_type(name)
    assert found is not None, name
    return found


def _paths(output: GraphQLType, depth: int = DEPTH) -> list[str]:
    """Selections of a result that each ask for one field only, down to `depth` objects
    (connections' first two; of a node, of each implementation). Each is asked under an
    alias of its own, so that a field refused on one path does not hide (by nulling its
    parent) what another path shows."""
    named = get_named_type(output)
    if isinstance(named, GraphQLInterfaceType):
        return [f"... on {on} {{ {path} }}" for on in NODES for path in _paths(_named(on), depth)]
    if not isinstance(named, GraphQLObjectType):
        return [""]
    if depth == 0:
        return ["__typename"]
    paths = []
    for name, field in named.fields.items():
        if any(isinstance(arg.type, GraphQLNonNull) for arg in field.args.values()):
            continue
        arguments = "(first: 2)" if "first" in field.args else ""
        for path in _paths(field.type, depth - 1):
            paths.append(f"{name}{arguments} {{ {path} }}" if path else name)
    return paths


def _aliased(field: str, paths: list[str]) -> str:
    """`field` asked once per path, each time under its own alias."""
    return " ".join(
        f"p{n}: {field} {{ {path} }}" if path else f"p{n}: {field}" for n, path in enumerate(paths)
    )


def _reaches_wallet_data(output: GraphQLType, depth: int = DEPTH) -> bool:
    named = get_named_type(output)
    if named.name in CARRIERS:
        return True
    if depth == 0 or not isinstance(named, GraphQLObjectType):
        return False
    return any(_reaches_wallet_data(f.type, depth - 1) for f in named.fields.values())


def _aliased_fields(paths: list[str]) -> str:
    """Each path under an alias of its own first field."""
    return " ".join(f"p{n}: {path}" for n, path in enumerate(paths))


def _query(name: str, field: GraphQLField, variables: dict[str, Any]) -> str:
    """`name` with `variables` as its arguments, once per path of its result."""
    declared = ", ".join(f"${a}: {field.args[a].type}" for a in variables)
    passed = ", ".join(f"{a}: ${a}" for a in variables)
    called = f"{name}({passed})" if passed else name
    return (
        f"query{f'({declared})' if declared else ''} {{ {_aliased(called, _paths(field.type))} }}"
    )


def _leaked(value: Any) -> list[Any]:
    """Wallet data in a result: a marked string (a payload's too) or a known amount."""
    if isinstance(value, dict):
        return [found for v in value.values() for found in _leaked(v)]
    if isinstance(value, list):
        return [found for v in value for found in _leaked(v)]
    if isinstance(value, str) and MARK in value:
        return [value]
    if isinstance(value, int) and not isinstance(value, bool) and value in AMOUNTS:
        return [value]
    return []


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[GraphQLClient]:
    """The API with room for documents asking for every path at once."""
    async with (
        serve(runtime, **ROOMY) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as http,
    ):
        yield GraphQLClient(http)


async def test_wallet_data_needs_read_wallets_on_every_path(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner("Scoped", scopes=tuple(ApiScope), endpoint=True)
    full = partner.key
    marked = {"externalUserId": f"{MARK}-user", "name": f"{MARK}-name"}
    source = await create_wallet(client, full, f"{MARK}-source", metadata={"note": f"{MARK}-meta"})
    target = await create_wallet(client, full, f"{MARK}-target")
    empty = await create_wallet(client, full, f"{MARK}-empty")
    await fund(runtime.services, partner, source["id"], Money(amount=987_654, currency="USD"))
    moved = await transfer_money(
        client,
        full,
        source["id"],
        target["id"],
        12_345,
        f"{MARK}-key",
        description=f"{MARK}-description",
    )
    assert moved["errors"] == [], moved
    transaction_id = moved["transaction"]["id"]
    pending = await client.mutate(
        "creditWallet",
        {
            "walletId": source["id"],
            "amount": {"amount": 700, "currency": "USD"},
            "idempotencyKey": f"{MARK}-pending",
        },
        "transaction { id }",
        token=full,
    )
    assert pending["errors"] == [], pending
    listed = await client.data(
        "query($id: ID!) { wallet(id: $id) { entries(first: 1) { edges { node { id } } } } "
        "webhookDeliveries(first: 1) { edges { node { id } } } }",
        {"id": source["id"]},
        token=full,
    )
    entry_id = listed["wallet"]["entries"]["edges"][0]["node"]["id"]
    delivery_id = listed["webhookDeliveries"]["edges"][0]["node"]["id"]
    # One delivery over, so that it can be redelivered.
    await PartnerWebhookDelivery.get_pymongo_collection().update_many(
        {}, {"$set": {"status": DeliveryStatus.DEAD.value}}
    )
    # The full key reads it all: what the others must not see is there to be seen.
    assert GRAPH.query_type is not None
    queries = GRAPH.query_type.fields
    full_view = await client.data(
        _query("node", queries["node"], {"id": ""}), {"id": source["id"]}, token=full
    )
    assert _leaked(full_view)

    def money(amount: int) -> dict[str, Any]:
        return {"amount": amount, "currency": "USD"}

    mutations: dict[str, dict[str, Any]] = {
        "createWallet": {
            **marked,
            "externalWalletId": f"{MARK}-new",
            "currency": "USD",
            "metadata": {"note": f"{MARK}-meta"},
        },
        "updateWallet": {"walletId": source["id"]},
        "freezeWallet": {"walletId": target["id"]},
        "unfreezeWallet": {"walletId": target["id"]},
        "closeWallet": {"walletId": empty["id"]},
        "debitWallet": {"walletId": source["id"], "amount": money(1), "idempotencyKey": "d"},
        "transferBetweenWallets": {
            "fromWalletId": source["id"],
            "toWalletId": target["id"],
            "amount": money(1),
            "idempotencyKey": "t",
        },
        "creditWallet": {"walletId": source["id"], "amount": money(500), "idempotencyKey": "c"},
        "sandboxPayCredit": {"transactionId": transaction_id, "outcome": "SUCCEEDED"},
        "withdrawFromWallet": {"walletId": source["id"], "amount": money(1), "idempotencyKey": "w"},
        "cancelCredit": {"transactionId": pending["transaction"]["id"]},
        "redeliverWebhook": {"deliveryId": delivery_id},
    }
    mutation_type = GRAPH.mutation_type
    assert mutation_type is not None
    untried = {
        name
        for name, field in mutation_type.fields.items()
        if _reaches_wallet_data(field.type) and name not in mutations
    }
    assert untried == set(), f"try these mutations here too: {untried}"
    ids = [source["id"], transaction_id, entry_id, delivery_id]
    arguments: dict[str, list[dict[str, Any]]] = {
        "node": [{"id": i} for i in ids],
        "nodes": [{"ids": ids}],
        "wallet": [{"id": source["id"]}],
        "walletByExternalId": [{"externalWalletId": f"{MARK}-source"}],
        "transaction": [{"id": transaction_id}],
    }

    for scopes in ((ApiScope.MOVE_MONEY,), (ApiScope.MANAGE_WEBHOOKS,)):
        key = await key_of(partner, scopes)
        for name, given in mutations.items():
            field = mutation_type.fields[name]
            called = f"{name}(input: $input)"
            payload = _paths(field.type)
            document = f"mutation($input: {field.args['input'].type}) {{ {called} {{ {_aliased_fields(payload)} }} }}"
            result = await client.execute(document, {"input": given}, token=key)
            assert _leaked(result) == [], (scopes, name, result)
        for name, field in queries.items():
            for variables in arguments.get(name, [{}]):
                result = await client.execute(_query(name, field, variables), variables, token=key)
                assert _leaked(result) == [], (scopes, name, result)
    # The webhook key still sees its deliveries, only without their payload.
    hooks = await key_of(partner, (ApiScope.MANAGE_WEBHOOKS,))
    seen = await client.data(
        "{ webhookDeliveries(first: 5) { edges { node { id walletId payload } } } }", token=hooks
    )
    nodes = [e["node"] for e in seen["webhookDeliveries"]["edges"]]
    assert nodes and all(n["payload"] is None for n in nodes)
    # And a mover's payload shows the ids and statuses it needs.
    mover = await key_of(partner, (ApiScope.MOVE_MONEY,))
    debited = await client.mutate(
        "debitWallet",
        {"walletId": source["id"], "amount": money(2), "idempotencyKey": "mover-debit"},
        "transaction { id status } wallet { id status }",
        token=mover,
    )
    assert debited["errors"] == [], debited
    assert debited["transaction"]["status"] == "COMPLETED"
    assert debited["wallet"] == {"id": source["id"], "status": "ACTIVE"}
