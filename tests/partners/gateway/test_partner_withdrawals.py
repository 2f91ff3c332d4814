"""Withdrawals from partner wallets to the partner's connected account and bank: over
HTTP with a partner key, in the sandbox gateway, whose payout events (its bank paying
or returning them) go through the real webhook inbox."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from documents.partners.transactions import (
    PartnerGatewayObject,
    PartnerTransaction,
    TransactionStatus,
)
from documents.partners.wallets import PartnerWallet, WalletStatus
from documents.payments.ledger_accounts import (
    partner_paid_out,
    partner_payout_in_flight,
    platform_revenue,
)
from documents.payments.webhooks import WebhookEvent
from resolvers.partners.gateway.withdrawals import retry_unsent_withdrawals
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient, error_codes
from tests.support.partners.money import (
    balance,
    events_of,
    funded,
    set_wallet_status,
    stored_transaction,
    wallet_gid,
    with_payouts,
    withdraw,
)
from tests.support.partners.partners import PartnerKey, approved_partner, wallet_document
from tests.support.payments.escrow import assert_ledger_clean, sandbox
from tests.support.payments.escrow import balance as account_balance
from tests.support.payments.ledger import ledger_counts
from tests.support.payments.sandbox import until
from tests.support.payments.webhooks import delivered, differing


async def _transfers(runtime: Runtime, transaction: PartnerTransaction) -> list[tuple[int, int]]:
    """(amount, amount reversed) of each sandbox transfer of the transaction's group."""
    now = datetime.now(UTC)
    listed = sandbox(runtime).list_transfers(
        now - timedelta(minutes=5),
        now + timedelta(minutes=5),
        transfer_group=f"partner_txn:{transaction.id}",
    )
    return [(t.amount, t.amount_reversed) async for t in listed]


async def _ready(
    client: GraphQLClient, runtime: Runtime, withdrawal_bp: int = 100
) -> tuple[PartnerKey, str]:
    partner = await approved_partner(credit_bp=290, withdrawal_bp=withdrawal_bp, endpoint=True)
    return partner, await with_payouts(runtime, partner)


async def test_a_withdrawal_is_paid_to_the_partners_bank(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner, account_id = await _ready(client, runtime)
    wallet = await wallet_document(partner)
    await funded(client, partner, wallet, 10_000)  # 9,710 after the 2.9 % fee

    made = await withdraw(client, partner, wallet, 5_000, description="Payout week 3")

    assert made["errors"] == []
    sent = made["transaction"]
    assert (sent["kind"], sent["status"]) == ("WITHDRAWAL", "PROCESSING")
    assert sent["fee"]["amount"] == 50
    assert await balance(wallet) == 9_710 - 5_000 - 50
    assert await account_balance(partner_payout_in_flight(partner.id), "USD") == 5_000
    transaction = await stored_transaction(sent["id"])
    assert transaction.destination_account_id == account_id
    assert await _transfers(runtime, transaction) == [(5_000, 0)]

    gateway = sandbox(runtime)
    await gateway.pay_out(sent["payoutId"])
    await gateway.drain()

    paid = await stored_transaction(sent["id"])
    assert paid.status is TransactionStatus.COMPLETED and paid.completed_at is not None
    assert await balance(wallet) == 4_660
    assert await account_balance(partner_payout_in_flight(partner.id), "USD") == 0
    assert await account_balance(partner_paid_out(partner.id), "USD") == 5_000
    assert await account_balance(platform_revenue(), "USD") == 290 + 50
    assert await events_of(wallet) == [
        "wallet.funds_added",
        "transaction.completed",
        "payout.processed",
        "transaction.completed",
    ]
    kept = {
        k.object: k for k in await PartnerGatewayObject.find({"transaction_id": paid.id}).to_list()
    }
    assert set(kept) == {"transfer", "payout"}
    assert kept["payout"].id == sent["payoutId"]
    assert kept["payout"].last_event_type == "payout.paid"
    assert kept["payout"].payload["status"] == "paid"
    assert kept["transfer"].id == paid.transfer_id
    await assert_ledger_clean()


async def test_a_payout_the_bank_returns_puts_the_money_back_and_reverses_the_transfer(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner, _ = await _ready(client, runtime)
    wallet = await wallet_document(partner)
    await funded(client, partner, wallet, 10_000)

    # The sandbox's bank returns amounts ending in 1116 (no_account) after its delay.
    made = await withdraw(client, partner, wallet, 1_116)
    assert made["transaction"]["status"] == "PROCESSING"
    await set_wallet_status(wallet, WalletStatus.FROZEN)  # money still comes back to it

    gateway = sandbox(runtime)

    async def failed() -> PartnerTransaction | None:
        # The sandbox's background job: its bank answers payouts that are due.
        await gateway.run_due()
        await gateway.drain()
        found = await stored_transaction(made["transaction"]["id"])
        return found if found.status is TransactionStatus.FAILED else None

    transaction = await until(failed)

    assert transaction.failure_code == "no_account"
    fee = 11  # 1 % of 11.16, kept: the withdrawal was made
    assert await balance(wallet) == 9_710 - fee
    assert await account_balance(partner_payout_in_flight(partner.id), "USD") == 0
    assert await account_balance(partner_paid_out(partner.id), "USD") == 0
    assert await _transfers(runtime, transaction) == [(1_116, 1_116)]
    assert (await events_of(wallet))[-2:] == ["payout.failed", "transaction.failed"]
    objects = await PartnerGatewayObject.find({"transaction_id": transaction.id}).to_list()
    assert sorted(k.object for k in objects) == ["payout", "transfer", "transfer_reversal"]
    await assert_ledger_clean()


async def test_a_payout_returned_after_the_wallet_closed_reopens_it_frozen(
    client: GraphQLClient, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """Everything withdrawn, paid, the wallet closed; then the bank returns the payout. A
    closed wallet never holds money: it is reopened frozen, with an alert, and the partner
    can unfreeze it and take the money out again."""
    partner, _ = await _ready(client, runtime, withdrawal_bp=0)
    wallet = await wallet_document(partner)
    await funded(client, partner, wallet, 10_000)
    made = await withdraw(client, partner, wallet, 9_710)
    gateway = sandbox(runtime)
    await gateway.pay_out(made["transaction"]["payoutId"])
    await gateway.drain()
    closed = await client.mutate(
        "closeWallet", {"walletId": wallet_gid(wallet)}, "wallet { status }", token=partner.key
    )
    assert closed["wallet"] == {"status": "CLOSED"}, closed

    (paid,) = await WebhookEvent.find({"type": "payout.paid"}).to_list()
    sent = json.loads(paid.payload)
    returned_payout = {**sent["data"]["object"], "status": "failed"}
    returned_payout["failure_code"] = "account_closed"

    with caplog.at_level(logging.ERROR):
        await delivered(
            client, runtime.services, "payout.failed", returned_payout, account=sent["account"]
        )

    returned = await stored_transaction(made["transaction"]["id"])
    assert (returned.status, returned.failure_code) == (TransactionStatus.FAILED, "account_closed")
    reopened = await PartnerWallet.get(wallet.id)
    assert reopened is not None and reopened.status is WalletStatus.FROZEN
    assert [(h.status, h.move) for h in reopened.history][-1] == ("frozen", "reopen")
    assert await balance(wallet) == 9_710
    assert await account_balance(partner_paid_out(partner.id), "USD") == 0
    assert (await events_of(wallet))[-2:] == ["payout.failed", "transaction.failed"]
    alerts = [getattr(r, "alert", None) for r in caplog.records]
    assert "partner_payout_returned_to_closed_wallet" in alerts
    unfrozen = await client.mutate(
        "unfreezeWallet", {"walletId": wallet_gid(wallet)}, "wallet { status }", token=partner.key
    )
    assert unfrozen["wallet"] == {"status": "ACTIVE"}, unfrozen
    again = await withdraw(client, partner, wallet, 9_710)
    assert again["transaction"]["status"] == "PROCESSING", again
    await assert_ledger_clean()


async def test_what_cannot_be_withdrawn_changes_nothing(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner = await approved_partner(withdrawal_bp=100, endpoint=True)
    wallet = await wallet_document(partner)
    await funded(client, partner, wallet, 10_000)
    counts = await ledger_counts()

    no_account = await withdraw(client, partner, wallet, 1_000)
    assert error_codes(no_account) == ["PAYOUTS_NOT_ENABLED"]

    await with_payouts(runtime, partner)
    too_much = await withdraw(client, partner, wallet, 9_711)
    assert error_codes(too_much) == ["INSUFFICIENT_FUNDS"]
    # Within the balance, but not with the fee on top.
    with_fee = await withdraw(client, partner, wallet, 9_700)
    assert error_codes(with_fee) == ["INSUFFICIENT_FUNDS"]
    await set_wallet_status(wallet, WalletStatus.FROZEN)
    frozen = await withdraw(client, partner, wallet, 1_000)
    assert error_codes(frozen) == ["WALLET_FROZEN"]

    assert await ledger_counts() == counts
    assert await PartnerTransaction.find({"kind": "withdrawal"}).count() == 0
    assert await balance(wallet) == 9_710


async def test_withdrawal_input_follows_the_rules_of_debits(
    client: GraphQLClient, runtime: Runtime
) -> None:
    """The metadata and description rules of debits and transfers, one rule for all
    (resolvers/partners/requests.py); then Stripe's limit on one metadata value."""
    partner, _ = await _ready(client, runtime)
    wallet = await wallet_document(partner)
    await funded(client, partner, wallet, 10_000)
    counts = await ledger_counts()
    cases: dict[str, tuple[dict[str, Any], list[tuple[str, str]]]] = {
        "nested metadata": ({"metadata": {"week": [3]}}, [("metadata.week", "INVALID_INPUT")]),
        "path key": ({"metadata": {"a.b": 1}}, [("metadata", "INVALID_INPUT")]),
        "control characters": ({"description": "Payout\x00"}, [("description", "INVALID_INPUT")]),
        "long metadata": (
            {"metadata": {"a": "x" * 300, "b": "y" * 300}},
            [("metadata", "INVALID_INPUT")],
        ),
    }
    for name, (more, expected) in cases.items():
        refused = await withdraw(client, partner, wallet, 1_000, **more)
        assert [(e["field"], e["code"]) for e in refused["errors"]] == expected, name

    assert await ledger_counts() == counts
    assert await PartnerTransaction.find({"kind": "withdrawal"}).count() == 0
    made = await withdraw(client, partner, wallet, 1_000, description="  Week 3  ")
    assert made["errors"] == [], made
    assert (await stored_transaction(made["transaction"]["id"])).description == "Week 3"


async def test_a_payout_event_of_another_account_is_rejected(
    client: GraphQLClient, runtime: Runtime
) -> None:
    partner, _ = await _ready(client, runtime)
    wallet = await wallet_document(partner)
    await funded(client, partner, wallet, 10_000)
    made = await withdraw(client, partner, wallet, 2_000)
    gateway = sandbox(runtime)
    await gateway.drain()
    (created,) = await WebhookEvent.find({"type": "payout.created"}).to_list()
    payout = {**json.loads(created.payload)["data"]["object"], "status": "paid"}

    elsewhere = await delivered(
        client, runtime.services, "payout.paid", payout, account="acct_elsewhere"
    )
    more = await delivered(
        client,
        runtime.services,
        "payout.paid",
        {**payout, "amount": 20_000},
        account=json.loads(created.payload)["account"],
    )

    assert await differing(elsewhere) == ["account"]
    assert await differing(more) == ["amount"]
    transaction = await stored_transaction(made["transaction"]["id"])
    assert transaction.status is TransactionStatus.PROCESSING
    assert await account_balance(partner_paid_out(partner.id), "USD") == 0


async def test_steps_left_unsent_are_made_again_with_the_same_keys(
    client: GraphQLClient, runtime: Runtime
) -> None:
    """As if the process died after the transaction committed: the job makes the
    transfer and payout again, and the gateway gives back the same ones."""
    partner, _ = await _ready(client, runtime)
    wallet = await wallet_document(partner)
    await funded(client, partner, wallet, 10_000)
    made = await withdraw(client, partner, wallet, 3_000)
    first = await stored_transaction(made["transaction"]["id"])
    await PartnerTransaction.get_pymongo_collection().update_one(
        {"_id": first.id},
        {"$set": {"status": "pending", "transfer_id": None, "payout_id": None}},
    )

    tried = await retry_unsent_withdrawals(runtime.services, older_than=timedelta(0))

    assert tried == 1
    again = await stored_transaction(made["transaction"]["id"])
    assert again.status is TransactionStatus.PROCESSING
    assert (again.transfer_id, again.payout_id) == (first.transfer_id, first.payout_id)
    assert await _transfers(runtime, again) == [(3_000, 0)]
