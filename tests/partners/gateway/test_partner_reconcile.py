"""`gigql reconcile` and `gigql ledger verify` over partner money: after credits paid,
declined and refunded, and withdrawals paid and returned, nothing is reported; a record
changed behind the ledger's back is."""

from __future__ import annotations

from documents.partners.transactions import PartnerTransaction
from documents.partners.wallets import WalletEntry, WalletStatus
from resolvers.payments.ledger_check import Check, verify
from resolvers.payments.reconcile.against_gateway import reconcile
from resolvers.payments.reconcile.report import Kind, Mismatch
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient
from tests.support.partners.money import (
    credit,
    funded,
    pay_credit,
    set_wallet_status,
    stored_transaction,
    with_payouts,
    withdraw,
)
from tests.support.partners.partners import approved_partner, wallet_document
from tests.support.payments.escrow import sandbox
from tests.support.payments.reconcile import next_second, until_now


async def test_partner_money_reconciles_and_verifies_clean(
    client: GraphQLClient, runtime: Runtime
) -> None:
    start = await next_second()
    partner = await approved_partner(withdrawal_bp=100, endpoint=True)
    await with_payouts(runtime, partner)
    wallet = await wallet_document(partner)
    frozen = await wallet_document(partner)
    gateway = sandbox(runtime)

    await funded(client, partner, wallet, 20_000)
    declined = await credit(client, partner, wallet, 1_500)
    await pay_credit(client, partner, declined["transaction"]["id"], "DECLINED")
    refunded = await credit(client, partner, frozen, 2_500)
    await set_wallet_status(frozen, WalletStatus.FROZEN)
    await pay_credit(client, partner, refunded["transaction"]["id"])
    paid = await withdraw(client, partner, wallet, 5_000)
    returned = await withdraw(client, partner, wallet, 3_000)
    await gateway.pay_out(paid["transaction"]["payoutId"])
    await gateway.fail_payout(returned["transaction"]["payoutId"], "account_closed")
    await gateway.drain()
    assert (await stored_transaction(returned["transaction"]["id"])).failure_code == (
        "account_closed"
    )

    report = await reconcile(gateway, start, until_now())

    assert report.findings == []
    assert report.compared[Kind.PAYMENT] == 3
    assert report.compared[Kind.REFUND] == 1
    assert report.compared[Kind.TRANSFER] == 2
    assert report.compared[Kind.PAYOUT] == 2
    verified = await verify()
    assert verified.ok, verified

    # Behind the ledger's back: a credit's amount, and a statement line.
    completed = await PartnerTransaction.find_one({"status": "completed", "kind": "credit"})
    assert completed is not None
    await PartnerTransaction.get_pymongo_collection().update_one(
        {"_id": completed.id}, {"$set": {"amount": 20_001}}
    )
    line = await WalletEntry.find_one({"wallet_id": wallet.id})
    assert line is not None
    await line.delete()

    report = await reconcile(gateway, start, until_now())
    found = {(f.check, f.kind) for f in report.findings}
    assert found == {(Mismatch.AMOUNT, Kind.PAYMENT), (Mismatch.NOT_POSTED, Kind.PAYMENT)}
    verified = await verify()
    assert [f.check for f in verified.findings] == [Check.STATEMENT_MISMATCH]
