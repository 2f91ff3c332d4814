"""Admins see each partner's wallets, transactions, webhook deliveries and the fees earned
on them per period; nobody else does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from documents.money import Money
from resolvers.partners.ids import PARTNER_TYPE, global_id
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient, graphql_error_codes
from tests.support.marketplace import logged_in_admin
from tests.support.partners.partners import approved_partner
from tests.support.partners.wallets import create_wallet, debit, fund

VIEWS = """query($p: ID!) {
  partnerWallets(partnerId: $p) { edges { node { id externalWalletId balance { amount } } } }
  partnerTransactions(partnerId: $p, filter: {kind: DEBIT}) {
    edges { node { id kind amount { amount } fee { amount } } } }
  partnerWebhookDeliveries(partnerId: $p) { edges { node { eventType status attempts { at } } } }
}"""
EARNINGS = """query($p: ID!, $from: DateTime!, $until: DateTime!) {
  commissionEarnings(period: DAY, from: $from, until: $until, partnerId: $p) {
    currency net { amount }
  }
}"""


async def test_admins_see_a_partners_wallets_transactions_deliveries_and_fees(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner("RoSaBank", debit_bp=100, endpoint=True)
    other = await approved_partner("SavingsCircle", debit_bp=100, endpoint=True)
    wallets = {}
    for who in (partner, other):
        made = await create_wallet(client, who.key, f"{who.partner.name}-wallet")
        await fund(runtime.services, who, made["id"], Money(amount=10_000, currency="USD"))
        paid = await debit(client, who.key, made["id"], 2_000, "debit-1")
        assert paid["errors"] == [], paid
        wallets[who.partner.name] = made["id"]
    admin = await logged_in_admin(client, runtime)
    partner_id = global_id(PARTNER_TYPE, partner.id)

    seen = await client.data(VIEWS, {"p": partner_id}, token=admin.access)
    listed = {e["node"]["externalWalletId"]: e["node"] for e in seen["partnerWallets"]["edges"]}
    assert listed["RoSaBank-wallet"]["id"] == wallets["RoSaBank"]
    assert listed["RoSaBank-wallet"]["balance"] == {"amount": 10_000 - 2_000 - 20}
    assert "SavingsCircle-wallet" not in listed  # only the partner asked for
    [debited] = [e["node"] for e in seen["partnerTransactions"]["edges"]]
    assert (debited["kind"], debited["amount"], debited["fee"]) == (
        "DEBIT",
        {"amount": 2_000},
        {"amount": 20},
    )
    deliveries = [e["node"] for e in seen["partnerWebhookDeliveries"]["edges"]]
    assert deliveries and all(d["status"] == "PENDING" for d in deliveries)
    assert {d["eventType"] for d in deliveries} >= {"TRANSACTION_COMPLETED"}

    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    window = {"from": today.isoformat(), "until": (today + timedelta(days=1)).isoformat()}
    earned = await client.data(EARNINGS, {"p": partner_id, **window}, token=admin.access)
    assert earned["commissionEarnings"] == [{"currency": "USD", "net": {"amount": 20}}]

    # Not for anyone but admins.
    member = await client.member("curious@example.com")
    for query, variables in ((VIEWS, {"p": partner_id}), (EARNINGS, {"p": partner_id, **window})):
        refused = await client.execute(query, variables, token=member.access)
        assert set(graphql_error_codes(refused)) == {"FORBIDDEN"}, refused
