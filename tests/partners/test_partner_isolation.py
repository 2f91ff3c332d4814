"""One partner reads nothing of another's, through every root query of the partner graph
and `node`: each field is called with every id, external id and filter value of the
other partner's objects (wallets, transactions, statement lines, endpoints, deliveries),
and nothing of theirs comes back. A root query added later without a way to be tried
here fails the test, so the guarantee grows with the graph."""

from __future__ import annotations

import itertools
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLType,
    get_named_type,
)

from documents.partners.api_keys import ApiScope
from schema.partners.schema import build_partner_schema
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient
from tests.support.partners.money import funded, wallet_gid, with_payouts, withdraw
from tests.support.partners.partners import PartnerKey, approved_partner, wallet_document
from tests.support.partners.wallets import debit, transfer_money
from tests.support.payments.escrow import sandbox

ALL_SCOPES = tuple(ApiScope)
GRAPH = build_partner_schema()._schema
THEIR_EXTERNAL_IDS = ("theirs-savings", "theirs-spending")

# The ids of everything a partner can list, found by listing it as that partner.
EVERYTHING = """{
  wallets(first: 5) { edges { node { id
    entries(first: 10) { edges { node { id } } }
    transactions(first: 10) { edges { node { id } } } } } }
  transactions(first: 20) { edges { node { id } } }
  webhookEndpoints { id }
  webhookDeliveries(first: 20) { edges { node { id } } }
}"""


def _ids_in(value: Any) -> set[str]:
    """Every `id` anywhere in a result."""
    if isinstance(value, dict):
        found = {value["id"]} if isinstance(value.get("id"), str) else set()
        return found.union(*(_ids_in(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_ids_in(v) for v in value))
    return set()


def _selection(output: GraphQLType) -> str:
    """What to ask of a field's result: its ids, through a connection's edges."""
    named = get_named_type(output)
    if not isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
        return ""  # a scalar
    if "edges" in named.fields:
        node_type = get_named_type(named.fields["edges"].type)
        assert isinstance(node_type, GraphQLObjectType)
        return f"{{ edges {{ node {_selection(node_type.fields['node'].type)} }} }}"
    picked = [name for name in ("id", "name", "externalWalletId") if name in named.fields]
    return "{ " + " ".join(picked or ["__typename"]) + " }"


def _argument_values(name: str, kind: GraphQLType, ids: list[str]) -> list[Any] | None:
    """The values of theirs to try for an argument (None: the test knows no way)."""
    named = get_named_type(kind)
    required = isinstance(kind, GraphQLNonNull)
    inner = kind.of_type if isinstance(kind, GraphQLNonNull) else kind
    if named.name == "ID":
        # A list of ids (`nodes`) gets all of them at once; an id, each in turn.
        return [list(ids)] if isinstance(inner, GraphQLList) else list(ids)
    if name == "externalWalletId":
        return list(THEIR_EXTERNAL_IDS)
    if isinstance(named, GraphQLInputObjectType):
        # A filter: each of its id fields set to each of their ids, one at a time.
        tried: list[Any] = [
            {field: value}
            for field, spec in named.fields.items()
            if get_named_type(spec.type).name == "ID"
            for value in ids
        ]
        return (tried or [None]) if not required else tried or None
    if not required:
        return [None]
    return None


def _calls(field_name: str, field: GraphQLField, ids: list[str]) -> list[dict[str, Any]]:
    """Every combination of their values for the field's arguments."""
    choices = {}
    for name, argument in field.args.items():
        values = _argument_values(name, argument.type, ids)
        assert values is not None, (
            f"Query.{field_name}({name}:) takes a value this test cannot make up: teach it "
            "how to try another partner's objects through it"
        )
        choices[name] = values
    names = list(choices)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*choices.values())]


def _query(
    field_name: str, field: GraphQLField, call: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    declared = ", ".join(
        f"${name}: {field.args[name].type}" for name, value in call.items() if value is not None
    )
    passed = ", ".join(f"{name}: ${name}" for name, value in call.items() if value is not None)
    variables = {name: value for name, value in call.items() if value is not None}
    head = f"query({declared})" if declared else "query"
    args = f"({passed})" if passed else ""
    return f"{head} {{ {field_name}{args} {_selection(field.type)} }}", variables


async def _their_world(client: GraphQLClient, runtime: Runtime) -> tuple[PartnerKey, list[str]]:
    """A partner with money moved every way: credits, a transfer, a debit, a withdrawal,
    and webhook deliveries of each; every id it can list."""
    theirs = await approved_partner("RoSaBank", scopes=ALL_SCOPES, endpoint=True)
    await with_payouts(runtime, theirs)
    savings = await wallet_document(theirs, THEIR_EXTERNAL_IDS[0])
    spending = await wallet_document(theirs, THEIR_EXTERNAL_IDS[1])
    await funded(client, theirs, savings, 10_000)
    moved = await transfer_money(
        client, theirs.key, wallet_gid(savings), wallet_gid(spending), 1_000, "t-1"
    )
    assert moved["errors"] == [], moved
    paid = await debit(client, theirs.key, wallet_gid(savings), 500, "d-1")
    assert paid["errors"] == [], paid
    sent = await withdraw(client, theirs, spending, 400)
    assert sent["errors"] == [], sent
    await sandbox(runtime).drain()
    listed = await client.data(EVERYTHING, token=theirs.key)
    ids = sorted(_ids_in(listed))
    # Wallets (and the clearing one), credit, transfer, debit, withdrawal, statement
    # lines, one endpoint, its deliveries: enough of each kind to try.
    assert len(ids) >= 15, listed
    return theirs, ids


async def test_no_root_query_and_no_node_reveals_another_partners_objects(
    client: GraphQLClient, runtime: Runtime
) -> None:
    theirs, their_ids = await _their_world(client, runtime)
    mine = await approved_partner("SavingsCircle", scopes=ALL_SCOPES, endpoint=True)
    my_wallet = await wallet_document(mine, "mine")
    await funded(client, mine, my_wallet, 2_000)

    query_type = GRAPH.query_type
    assert query_type is not None
    tried = 0
    for field_name, field in query_type.fields.items():
        for call in _calls(field_name, field, their_ids):
            query, variables = _query(field_name, field, call)
            result = await client.execute(query, variables, token=mine.key)
            leaked = _ids_in(result.get("data")) & set(their_ids)
            assert not leaked, (query, variables, result)
            text = repr(result)
            assert not any(external in text for external in THEIR_EXTERNAL_IDS), (query, result)
            for error in result.get("errors") or []:
                code = error.get("extensions", {}).get("code")
                assert code in ("NOT_FOUND", "INVALID_ID"), (query, variables, error)
            tried += 1
    assert tried > len(their_ids) * 5

    # And their own key still sees every one of them: the ids tried were real.
    for node_id in their_ids:
        seen = await client.data(
            "query($id: ID!) { node(id: $id) { id } }", {"id": node_id}, token=theirs.key
        )
        assert seen == {"node": {"id": node_id}}
