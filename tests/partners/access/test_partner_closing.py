"""Closing a partner: only when none of its money is left or on its way.

The wallets and their money are made here directly, through the same postings the
wallet API uses (resolvers/partners/postings.py), inside a transaction."""

from __future__ import annotations

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.accounts.audit import AuditKind
from documents.money import Money
from documents.partners.partners import Partner, PartnerStatus
from documents.partners.transactions import (
    PartnerTransaction,
    TransactionKind,
    TransactionStatus,
)
from documents.partners.wallets import PartnerWallet
from documents.payments.ledger import MovementKind, transfer
from documents.payments.ledger_accounts import partner_funding, partner_wallet
from documents.transactions import run_in_transaction
from resolvers.partners import postings
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient, error_codes
from tests.support.partners.steps import approved_partner, audited, decide


async def _wallet(partner_id: ObjectId, external_id: str) -> PartnerWallet:
    wallet = PartnerWallet(
        partner_id=partner_id,
        external_user_id="user-1",
        external_wallet_id=external_id,
        name="Main",
        currency="AUD",
    )
    await wallet.insert()
    return wallet


async def _move(
    partner_id: ObjectId,
    key: str,
    source: str,
    target: str,
    amount: int,
    kind: TransactionKind = TransactionKind.CREDIT,
) -> None:
    """A completed partner transaction moving `amount` AUD from `source` to `target`."""

    async def work(session: AsyncClientSession) -> None:
        record = PartnerTransaction(
            partner_id=partner_id,
            idempotency_key=key,
            request_hash=key,
            kind=kind,
            status=TransactionStatus.COMPLETED,
            amount=amount,
            currency="AUD",
        )
        await record.insert(session=session)
        await postings.post(
            session,
            key=f"partner_txn:{record.id}:{kind.value}",
            kind=MovementKind.PARTNER_CREDIT
            if kind is TransactionKind.CREDIT
            else MovementKind.PARTNER_DEBIT,
            entries=transfer(source, target, Money(amount=amount, currency="AUD")),
            partner_id=partner_id,
            transaction=record,
        )

    await run_in_transaction(work)


async def test_a_partner_whose_wallet_holds_money_is_not_closed(
    client: GraphQLClient, runtime: Runtime
) -> None:
    setup = await approved_partner(client, runtime)
    funding = partner_funding(setup.oid)
    empty = await _wallet(setup.oid, "alice-spare")
    holding = await _wallet(setup.oid, "alice-main")
    assert holding.id is not None and empty.id is not None
    await _move(setup.oid, "fund-1", funding, partner_wallet(holding.id), 2_500)

    refused = await decide(client, setup.admin, "closePartner", setup.partner_id)
    assert error_codes(refused) == ["INVALID_STATE"] and refused["partner"] is None
    message = refused["errors"][0]["message"]
    assert "1 of the partner's wallets still hold money" in message
    assert "alice-main holds" in message and "alice-spare" not in message
    partner = await Partner.get(setup.oid)
    assert partner is not None and partner.status is PartnerStatus.APPROVED
    assert [c.details["move"] for c in await audited(AuditKind.PARTNER_STATUS_CHANGED)] == [
        "approve"
    ]

    # Emptied, the wallet lets the partner close.
    await _move(
        setup.oid,
        "debit-1",
        partner_wallet(holding.id),
        funding,
        2_500,
        TransactionKind.DEBIT,
    )
    closed = await decide(client, setup.admin, "closePartner", setup.partner_id, note="wound up")
    assert closed["errors"] == [] and closed["partner"]["status"] == "CLOSED"


async def test_a_partner_with_a_credit_under_way_is_not_closed(
    client: GraphQLClient, runtime: Runtime
) -> None:
    setup = await approved_partner(client, runtime)
    wallet = await _wallet(setup.oid, "bob-main")
    pending = PartnerTransaction(
        partner_id=setup.oid,
        idempotency_key="credit-1",
        request_hash="credit-1",
        kind=TransactionKind.CREDIT,
        status=TransactionStatus.PENDING,
        amount=1_000,
        currency="AUD",
        to_wallet_id=wallet.id,
    )
    await pending.insert()

    refused = await decide(client, setup.admin, "closePartner", setup.partner_id)
    assert error_codes(refused) == ["INVALID_STATE"]
    assert "credit under way" in refused["errors"][0]["message"]

    await PartnerTransaction.get_pymongo_collection().update_one(
        {"_id": pending.id}, {"$set": {"status": TransactionStatus.FAILED.value}}
    )
    closed = await decide(client, setup.admin, "closePartner", setup.partner_id)
    assert closed["errors"] == [] and closed["partner"]["status"] == "CLOSED"
