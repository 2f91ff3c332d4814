"""Debits and transfers over real HTTP: exact amounts, fees on their own postings, the
statement, frozen wallets, idempotency, and no overdraw under any concurrency."""

from __future__ import annotations

import asyncio
from typing import Any

from documents.money import Money
from documents.partners.transactions import PartnerTransaction
from documents.partners.wallets import WalletEntry
from documents.partners.webhooks import PartnerWebhookEvent
from documents.payments.ledger import LedgerTransaction
from documents.payments.ledger_accounts import platform_revenue
from resolvers.payments import ledger
from resolvers.payments.ledger_check import verify
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import object_id
from tests.support.partners.partners import approved_partner
from tests.support.partners.wallets import (
    balance,
    codes,
    create_wallet,
    debit,
    fund,
    transfer_money,
)

USD = "USD"
ENTRIES = """query($id: ID!) { wallet(id: $id) { entries { edges { node {
  kind amount { amount } balanceAfter { amount } transaction { id } } } } } }"""


async def _revenue() -> int:
    return (await ledger.balance(platform_revenue(), USD)).amount


async def _events(wallet_gid: str) -> list[tuple[str, int]]:
    found = PartnerWebhookEvent.find({"wallet_id": object_id(wallet_gid)}).sort("sequence")
    return [(e.type.value, e.data["wallet"]["balance"]) async for e in found]


async def _entries(client: GraphQLClient, key: str, wallet_gid: str) -> list[dict[str, Any]]:
    data = await client.data(ENTRIES, {"id": wallet_gid}, token=key)
    return [e["node"] for e in data["wallet"]["entries"]["edges"]]


async def test_a_debit_pays_the_clearing_wallet_and_its_fee_the_platform(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner(debit_bp=100)
    key = partner.key
    wallet = await create_wallet(client, key, "w")
    await fund(runtime.services, partner, wallet["id"], Money(amount=10_000, currency=USD))

    paid = await debit(
        client, key, wallet["id"], 2_000, "debit-1", description="Rent", metadata={"ref": "r1"}
    )
    assert paid["errors"] == []
    transaction = paid["transaction"]
    assert transaction["kind"] == "DEBIT" and transaction["status"] == "COMPLETED"
    assert transaction["amount"] == {"amount": 2_000, "currency": USD}
    assert transaction["fee"] == {"amount": 20, "currency": USD}
    assert transaction["description"] == "Rent" and transaction["metadata"] == {"ref": "r1"}
    clearing = paid["clearingWallet"]
    assert clearing["externalWalletId"] == "clearing-usd" and clearing["clearing"] is True
    assert transaction["fromWallet"] == {"id": wallet["id"]}
    assert transaction["toWallet"] == {"id": clearing["id"]}
    assert paid["wallet"]["balance"] == {"amount": 7_980}
    assert clearing["balance"] == {"amount": 2_000}
    assert await _revenue() == 20

    # The statement, newest first: the fee is a line of its own.
    lines = await _entries(client, key, wallet["id"])
    assert [(e["kind"], e["amount"]["amount"], e["balanceAfter"]["amount"]) for e in lines] == [
        ("partner_fee", -20, 7_980),
        ("partner_debit", -2_000, 8_000),
        ("partner_credit", 10_000, 10_000),
    ]
    assert lines[0]["transaction"] == {"id": transaction["id"]}
    # A second debit reuses the clearing wallet.
    again = await debit(client, key, wallet["id"], 1_000, "debit-2")
    assert again["clearingWallet"]["id"] == clearing["id"]
    assert again["clearingWallet"]["balance"] == {"amount": 3_000}
    assert await balance(wallet["id"]) == 7_980 - 1_010

    completed = "transaction.completed"
    assert await _events(wallet["id"]) == [(completed, 7_980), (completed, 6_970)]
    assert await _events(clearing["id"]) == [(completed, 2_000), (completed, 3_000)]
    assert (await verify()).ok


async def test_a_transfer_moves_exactly_the_amount_and_its_fee(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner(transfer_bp=50)
    key = partner.key
    sender = await create_wallet(client, key, "a")
    receiver = await create_wallet(client, key, "b", user="user-2")
    await fund(runtime.services, partner, sender["id"], Money(amount=5_000, currency=USD))

    sent = await transfer_money(client, key, sender["id"], receiver["id"], 3_000, "t-1")
    assert sent["errors"] == []
    assert sent["transaction"]["kind"] == "TRANSFER"
    assert sent["transaction"]["fee"] == {"amount": 15, "currency": USD}
    assert sent["fromWallet"] == {"id": sender["id"], "balance": {"amount": 1_985}}
    assert sent["toWallet"] == {"id": receiver["id"], "balance": {"amount": 3_000}}
    assert await _revenue() == 15

    assert await _events(sender["id"]) == [("transaction.completed", 1_985)]
    assert await _events(receiver["id"]) == [
        ("wallet.funds_added", 3_000),
        ("transaction.completed", 3_000),
    ]
    lines = await _entries(client, key, receiver["id"])
    assert [(e["kind"], e["amount"]["amount"], e["balanceAfter"]["amount"]) for e in lines] == [
        ("partner_transfer", 3_000, 3_000)
    ]
    # The wallet's transactions, and the partner's filtered.
    listed = await client.data(
        """query($id: ID!, $w: ID!) {
             wallet(id: $id) { transactions { edges { node { id kind } } } }
             transfers: transactions(filter: {walletId: $w, kind: TRANSFER}) {
               edges { node { id } } }
             credits: transactions(filter: {kind: CREDIT}) { edges { node { id } } }
             later: transactions(filter: {createdFrom: "2199-01-01T00:00:00+00:00"}) {
               edges { node { id } } } }""",
        {"id": receiver["id"], "w": receiver["id"]},
        token=key,
    )
    assert listed["wallet"]["transactions"]["edges"] == [
        {"node": {"id": sent["transaction"]["id"], "kind": "TRANSFER"}}
    ]
    assert listed["transfers"]["edges"] == [{"node": {"id": sent["transaction"]["id"]}}]
    assert len(listed["credits"]["edges"]) == 1
    assert listed["later"]["edges"] == []
    assert (await verify()).ok


async def test_a_transfer_needs_two_wallets_of_one_currency(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner()
    key = partner.key
    usd = await create_wallet(client, key, "usd")
    eur = await create_wallet(client, key, "eur", currency="EUR")
    await fund(runtime.services, partner, usd["id"], Money(amount=5_000, currency=USD))
    to_itself = await transfer_money(client, key, usd["id"], usd["id"], 100, "k")
    assert codes(to_itself) == [("toWalletId", "INVALID_INPUT")]
    across = await transfer_money(client, key, usd["id"], eur["id"], 100, "k")
    assert codes(across) == [("toWalletId", "INVALID_INPUT")]
    in_eur = await transfer_money(client, key, usd["id"], eur["id"], 100, "k", currency="EUR")
    assert codes(in_eur) == [("amount", "INVALID_INPUT")]
    negative = await debit(client, key, usd["id"], -5, "k")
    assert codes(negative) == [("amount", "INVALID_INPUT")]
    blank_key = await debit(client, key, usd["id"], 5, " ")
    assert codes(blank_key) == [("idempotencyKey", "INVALID_INPUT")]
    assert await PartnerTransaction.find({"kind": {"$ne": "credit"}}).count() == 0
    assert await balance(usd["id"]) == 5_000


async def test_a_refused_move_stores_nothing_and_its_key_may_be_retried(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner(debit_bp=100)
    key = partner.key
    wallet = await create_wallet(client, key, "w")
    await fund(runtime.services, partner, wallet["id"], Money(amount=1_000, currency=USD))
    # 1,000 covers the amount but not its fee of 10.
    short = await debit(client, key, wallet["id"], 1_000, "retry-me")
    assert [code for _, code in codes(short)] == ["INSUFFICIENT_FUNDS"]
    assert short["transaction"] is None
    assert await PartnerTransaction.find({"idempotency_key": "retry-me"}).count() == 0
    assert await LedgerTransaction.find({"kind": "partner_debit"}).count() == 0
    assert await balance(wallet["id"]) == 1_000
    await fund(runtime.services, partner, wallet["id"], Money(amount=10, currency=USD))
    retried = await debit(client, key, wallet["id"], 1_000, "retry-me")
    assert retried["errors"] == [] and retried["replayed"] is False
    assert await balance(wallet["id"]) == 0


async def test_a_frozen_wallet_neither_sends_nor_receives(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner()
    key = partner.key
    frozen = await create_wallet(client, key, "frozen")
    other = await create_wallet(client, key, "other")
    for wallet in (frozen, other):
        await fund(runtime.services, partner, wallet["id"], Money(amount=1_000, currency=USD))
    await client.mutate("freezeWallet", {"walletId": frozen["id"]}, token=key)

    assert codes(await transfer_money(client, key, frozen["id"], other["id"], 100, "k1")) == [
        ("fromWalletId", "WALLET_FROZEN")
    ]
    assert codes(await transfer_money(client, key, other["id"], frozen["id"], 100, "k2")) == [
        ("toWalletId", "WALLET_FROZEN")
    ]
    assert codes(await debit(client, key, frozen["id"], 100, "k3")) == [
        ("walletId", "WALLET_FROZEN")
    ]
    assert await balance(frozen["id"]) == 1_000 and await balance(other["id"]) == 1_000
    assert await PartnerTransaction.find({"kind": {"$ne": "credit"}}).count() == 0
    assert await _events(frozen["id"]) == []

    await client.mutate("unfreezeWallet", {"walletId": frozen["id"]}, token=key)
    received = await transfer_money(client, key, other["id"], frozen["id"], 100, "k2")
    assert received["errors"] == []
    assert await balance(frozen["id"]) == 1_100


async def test_the_same_key_returns_the_first_transaction(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner()
    key = partner.key
    wallet = await create_wallet(client, key, "w")
    await fund(runtime.services, partner, wallet["id"], Money(amount=1_000, currency=USD))
    first = await debit(client, key, wallet["id"], 300, "same", description="x")
    again = await debit(client, key, wallet["id"], 300, "same", description="x")
    assert again["errors"] == [] and again["replayed"] is True
    assert again["transaction"]["id"] == first["transaction"]["id"]
    assert await balance(wallet["id"]) == 700
    other_amount = await debit(client, key, wallet["id"], 301, "same", description="x")
    assert codes(other_amount) == [("idempotencyKey", "IDEMPOTENCY_KEY_REUSED")]
    other_kind = await transfer_money(
        client, key, wallet["id"], first["clearingWallet"]["id"], 300, "same"
    )
    assert codes(other_kind) == [("idempotencyKey", "IDEMPOTENCY_KEY_REUSED")]
    assert await balance(wallet["id"]) == 700


async def test_fifty_concurrent_debits_never_overdraw(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner()
    key = partner.key
    wallet = await create_wallet(client, key, "w")
    funding, amount = 1_000, 70
    await fund(runtime.services, partner, wallet["id"], Money(amount=funding, currency=USD))

    results = await asyncio.gather(
        *(debit(client, key, wallet["id"], amount, f"concurrent-{i}") for i in range(50))
    )
    succeeded = [r for r in results if not r["errors"]]
    refused = [r for r in results if r["errors"]]
    assert len(succeeded) * amount <= funding
    assert len(succeeded) == funding // amount  # every debit that fits went through
    assert all([code for _, code in codes(r)] == ["INSUFFICIENT_FUNDS"] for r in refused)
    assert await balance(wallet["id"]) == funding - len(succeeded) * amount
    assert len({r["transaction"]["id"] for r in succeeded}) == len(succeeded)
    assert await PartnerTransaction.find({"kind": "debit"}).count() == len(succeeded)
    clearing = succeeded[0]["clearingWallet"]["id"]
    assert await balance(clearing) == len(succeeded) * amount
    # The statement, oldest line first, runs from 0 to the balance with every step
    # adding up, however the debits raced.
    lines = await WalletEntry.find({"wallet_id": object_id(wallet["id"])}).sort("line").to_list()
    assert [line.line for line in lines] == list(range(1, len(lines) + 1))
    running = 0
    for line in lines:
        running += line.amount
        assert line.balance_after == running, line
    assert running == funding - len(succeeded) * amount
    report = await verify()
    assert report.ok, report


async def test_one_key_sent_twenty_times_at_once_makes_one_transaction(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner()
    key = partner.key
    sender = await create_wallet(client, key, "a")
    receiver = await create_wallet(client, key, "b")
    await fund(runtime.services, partner, sender["id"], Money(amount=1_000, currency=USD))

    results = await asyncio.gather(
        *(
            transfer_money(client, key, sender["id"], receiver["id"], 250, "once-only")
            for _ in range(20)
        )
    )
    assert all(r["errors"] == [] for r in results), [r["errors"] for r in results]
    ids = {r["transaction"]["id"] for r in results}
    assert len(ids) == 1
    assert sum(1 for r in results if r["replayed"] is False) == 1
    [transaction_id] = ids
    assert await PartnerTransaction.find({"idempotency_key": "once-only"}).count() == 1
    postings = LedgerTransaction.find({"refs.partner_transaction": str(object_id(transaction_id))})
    assert await postings.count() == 1
    assert await balance(sender["id"]) == 750 and await balance(receiver["id"]) == 250
    report = await verify()
    assert report.ok, report
