"""Money records are kept at least seven years and the audit log ten: nothing deletes them."""

from __future__ import annotations

import ast
from pathlib import Path

from documents.partners.partners import Partner, PartnerStatus
from documents.retention import AUDIT_LOG_YEARS, KEPT_YEARS, TRANSACTION_RECORD_YEARS
from tests.support.graphql_client import STRONG_PASSWORD, GraphQLClient, error_codes
from tests.support.marketplace import object_id
from tests.support.partners.partners import approved_partner

ROOT = Path(__file__).resolve().parents[3]
LAYERS = ("server", "schema", "resolvers", "realtime", "integrations", "documents")
REMOVING = {"delete", "delete_one", "delete_many", "find_one_and_delete", "drop", "delete_all"}


def test_the_periods_are_the_regulators() -> None:
    assert TRANSACTION_RECORD_YEARS >= 7
    assert AUDIT_LOG_YEARS >= 10
    assert {model.Settings.name for model in KEPT_YEARS} >= {
        "ledger_transactions",
        "partner_transactions",
        "audit_events",
    }


def test_no_kept_record_has_an_expiring_index() -> None:
    for model in KEPT_YEARS:
        for index in getattr(model.Settings, "indexes", []):
            document = getattr(index, "document", {})
            assert "expireAfterSeconds" not in document, (model.__name__, document)


async def test_the_database_expires_none_of_them(client: GraphQLClient) -> None:
    """As the running app made the indexes, not only as declared."""
    for model in KEPT_YEARS:
        indexes = await model.get_pymongo_collection().index_information()
        expiring = {name: spec for name, spec in indexes.items() if "expireAfterSeconds" in spec}
        assert expiring == {}, model.__name__


def _removals_of(names: set[str], source: str) -> list[str]:
    """Calls like `LedgerTransaction.get_pymongo_collection().delete_many(...)` or
    `AuditEvent.find(...).delete()`: a removal whose chain starts at a kept model."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in REMOVING:
            continue
        root: ast.expr = node.func
        while isinstance(root, ast.Attribute | ast.Call | ast.Subscript):
            root = root.func if isinstance(root, ast.Call) else root.value
        if isinstance(root, ast.Name) and root.id in names:
            found.append(f"{root.id}...{node.func.attr} (line {node.lineno})")
    return found


def test_no_code_removes_a_kept_record() -> None:
    names = {model.__name__ for model in KEPT_YEARS}
    removals = {
        str(path.relative_to(ROOT)): found
        for layer in LAYERS
        for path in sorted((ROOT / layer).rglob("*.py"))
        if (found := _removals_of(names, path.read_text()))
    }
    assert removals == {}


def test_the_scan_finds_a_removal() -> None:
    """The scan above would see one (else it could never fail)."""
    source = "async def f():\n    await AuditEvent.get_pymongo_collection().delete_many({})\n"
    assert _removals_of({"AuditEvent"}, source) == ["AuditEvent...delete_many (line 2)"]


async def test_an_owner_cannot_delete_their_account_while_their_partner_is_open(
    client: GraphQLClient,
) -> None:
    owner = await client.member("owner@rosabank.example")
    partner = await approved_partner(owner_id=object_id(owner.user_id))
    refused = await client.mutate(
        "deleteMyAccount", {"password": STRONG_PASSWORD}, token=owner.access
    )
    assert error_codes(refused) == ["DEALS_IN_PROGRESS"], refused
    assert "RoSaBank" in refused["errors"][0]["message"]
    await Partner.get_pymongo_collection().update_one(
        {"_id": partner.id}, {"$set": {"status": PartnerStatus.CLOSED.value}}
    )
    deleted = await client.mutate(
        "deleteMyAccount", {"password": STRONG_PASSWORD}, token=owner.access
    )
    assert deleted["errors"] == [], deleted
