"""The partner graph's wallet and transaction types, shared with admins' views of them.

Each is wallet data: a key reads its fields only with READ_WALLETS, however it reached
the object (a MOVE_MONEY key's mutation payload has wallets and transactions too), but
for the ids and statuses a payload must show (`scoped`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from documents.money import Money
from documents.partners.api_keys import ApiScope
from documents.partners.transactions import (
    DisputeStatus,
    PartnerDispute,
    PartnerTransaction,
    TransactionKind,
    TransactionStatus,
)
from documents.partners.wallets import PartnerWallet, WalletEntry, WalletStatus
from documents.payments.ledger_accounts import partner_wallet
from resolvers.partners import statements
from resolvers.partners.ids import TRANSACTION_TYPE, WALLET_TYPE
from resolvers.payments import ledger
from schema.common.context import Info
from schema.common.copying import copied
from schema.common.relay import requested_page, to_connection
from schema.common.values import MoneyType
from schema.partners.scoping import scoped, visible_documents

WalletStatusType = strawberry.enum(
    WalletStatus,
    name="PartnerWalletStatus",
    description="ACTIVE; FROZEN: neither sends nor receives; CLOSED: emptied and closed, final.",
)
TransactionKindType = strawberry.enum(TransactionKind, name="PartnerTransactionKind")
DisputeStatusType = strawberry.enum(
    DisputeStatus,
    name="PartnerDisputeStatus",
    description="OPEN: the bank has the money back; WON: it came back; LOST: it is gone.",
)
TransactionStatusType = strawberry.enum(
    TransactionStatus,
    name="PartnerTransactionStatus",
    description="PENDING: a card credit awaiting its payment, or a withdrawal being sent; "
    "PROCESSING: a withdrawal's payout on its way to the bank; COMPLETED; FAILED.",
)


@scoped(ApiScope.READ_WALLETS, public=("id", "status"))
@strawberry.type(name=WALLET_TYPE, description="Money a partner keeps for one of its users.")
class PartnerWalletNode(relay.Node):
    id: relay.NodeID[str]
    external_user_id: str
    external_wallet_id: str
    name: str
    currency: str
    metadata: JSON
    status: WalletStatus
    clearing: bool = strawberry.field(
        description="The partner's clearing wallet in this currency, which debits pay into."
    )
    created_at: datetime
    updated_at: datetime
    doc: strawberry.Private[PartnerWallet]

    @classmethod
    def of(cls, wallet: PartnerWallet) -> PartnerWalletNode:
        return copied(cls, wallet, id=str(wallet.id), doc=wallet)

    @strawberry.field(description="What the wallet holds, from the ledger.")
    async def balance(self) -> MoneyType:
        assert self.doc.id is not None
        return MoneyType.of(await ledger.balance(partner_wallet(self.doc.id), self.currency))

    @strawberry.field(description="The wallet's statement, newest first.")
    async def entries(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> PartnerWalletEntryConnection:
        page = await statements.entries_of(self.doc, requested_page(info, first, after))
        return to_connection(PartnerWalletEntryConnection, page, PartnerWalletEntryType.of)

    @strawberry.field(description="Transactions money left or reached the wallet by, newest first.")
    async def transactions(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> PartnerTransactionConnection:
        page = await statements.list_transactions(
            self.doc.partner_id,
            statements.TransactionFilter(wallet_id=self.doc.id),
            requested_page(info, first, after),
        )
        return to_connection(PartnerTransactionConnection, page, PartnerTransactionNode.of)

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[PartnerWalletNode | None]:
        found = await visible_documents(info, node_ids, PartnerWallet, ApiScope.READ_WALLETS)
        return [cls.of(w) if w else None for w in found]


@strawberry.type
class PartnerWalletConnection(relay.Connection[PartnerWalletNode]):
    pass


@scoped(ApiScope.READ_WALLETS, public=())
@strawberry.type(
    name="PartnerDispute",
    description="A chargeback: the payer's bank took a card credit's payment back.",
)
class PartnerDisputeType:
    id: str = strawberry.field(description="The gateway's dispute (`dp_...`).")
    amount: MoneyType = strawberry.field(description="What the bank took back.")
    held: MoneyType = strawberry.field(
        description="What the wallet still held of it, taken back from the wallet when it "
        "opened; a won chargeback returns it."
    )
    status: DisputeStatus
    opened_at: datetime
    closed_at: datetime | None

    @classmethod
    def of(cls, dispute: PartnerDispute, currency: str) -> PartnerDisputeType:
        return copied(
            cls,
            dispute,
            amount=MoneyType.of(Money(amount=dispute.amount, currency=currency)),
            held=MoneyType.of(Money(amount=dispute.held, currency=currency)),
        )


@scoped(ApiScope.READ_WALLETS, public=("id", "status"))
@strawberry.type(name=TRANSACTION_TYPE, description="One money operation a partner asked for.")
class PartnerTransactionNode(relay.Node):
    id: relay.NodeID[str]
    idempotency_key: str
    kind: TransactionKind
    status: TransactionStatus
    amount: MoneyType
    fee: MoneyType = strawberry.field(
        description="The partner's fee on it, posted on its own to the platform."
    )
    description: str
    metadata: JSON
    payment_intent_id: str | None = strawberry.field(
        description="A card credit's Stripe PaymentIntent."
    )
    payout_id: str | None = strawberry.field(description="A withdrawal's Stripe payout.")
    failure_code: str | None
    failure_message: str | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    dispute: PartnerDisputeType | None = strawberry.field(
        description="A card credit's chargeback, if its payment was disputed."
    )
    doc: strawberry.Private[PartnerTransaction]

    @classmethod
    def of(cls, transaction: PartnerTransaction) -> PartnerTransactionNode:
        currency = transaction.currency
        return copied(
            cls,
            transaction,
            id=str(transaction.id),
            amount=MoneyType.of(Money(amount=transaction.amount, currency=currency)),
            fee=MoneyType.of(Money(amount=transaction.fee, currency=currency)),
            dispute=PartnerDisputeType.of(transaction.dispute, currency)
            if transaction.dispute is not None
            else None,
            doc=transaction,
        )

    @strawberry.field(description="The wallet money left, if any.")
    async def from_wallet(self, info: Info) -> PartnerWalletNode | None:
        return await _wallet(info, self.doc.from_wallet_id)

    @strawberry.field(description="The wallet money went to, if any.")
    async def to_wallet(self, info: Info) -> PartnerWalletNode | None:
        return await _wallet(info, self.doc.to_wallet_id)

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[PartnerTransactionNode | None]:
        found = await visible_documents(info, node_ids, PartnerTransaction, ApiScope.READ_WALLETS)
        return [cls.of(t) if t else None for t in found]


async def _wallet(info: Info, wallet_id: object) -> PartnerWalletNode | None:
    if wallet_id is None:
        return None
    [found] = await visible_documents(info, [str(wallet_id)], PartnerWallet, ApiScope.READ_WALLETS)
    return PartnerWalletNode.of(found) if found else None


@strawberry.type
class PartnerTransactionConnection(relay.Connection[PartnerTransactionNode]):
    pass


@scoped(ApiScope.READ_WALLETS, public=("id",))
@strawberry.type(
    name="PartnerWalletEntry",
    description="One movement of a wallet's money, with the balance right after it.",
)
class PartnerWalletEntryType(relay.Node):
    id: relay.NodeID[str]
    kind: str = strawberry.field(
        description="partner_credit, partner_fee, partner_debit, partner_transfer, "
        "partner_withdrawal, partner_payout_failed."
    )
    amount: MoneyType = strawberry.field(description="Into the wallet; negative: out of it.")
    balance_after: MoneyType
    created_at: datetime
    transaction_id: strawberry.Private[object]

    @classmethod
    def of(cls, entry: WalletEntry) -> PartnerWalletEntryType:
        return cls(
            id=str(entry.id),
            kind=entry.kind,
            amount=MoneyType.of(Money(amount=entry.amount, currency=entry.currency)),
            balance_after=MoneyType.of(Money(amount=entry.balance_after, currency=entry.currency)),
            created_at=entry.created_at,
            transaction_id=entry.transaction_id,
        )

    @strawberry.field(description="The partner transaction it belongs to.")
    async def transaction(self, info: Info) -> PartnerTransactionNode | None:
        if self.transaction_id is None:
            return None
        nodes = await PartnerTransactionNode.resolve_nodes(
            info=info, node_ids=[str(self.transaction_id)]
        )
        return nodes[0]

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[PartnerWalletEntryType | None]:
        found = await visible_documents(info, node_ids, WalletEntry, ApiScope.READ_WALLETS)
        return [cls.of(e) if e else None for e in found]


@strawberry.type
class PartnerWalletEntryConnection(relay.Connection[PartnerWalletEntryType]):
    pass
