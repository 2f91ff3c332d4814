"""A provider's wallet and withdrawals."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import strawberry
from bson import ObjectId
from strawberry import relay

from documents.payments.ledger import LedgerTransaction, MovementKind
from documents.payments.payouts import Withdrawal, WithdrawalStatus
from resolvers.payments import wallets, withdrawals
from schema.common.context import Info
from schema.common.copying import copied
from schema.common.payloads import Payload, mutation_payload
from schema.common.permissions import IsAuthenticated, allow
from schema.common.relay import object_ids, owned_documents, requested_page, to_connection
from schema.common.values import MoneyInputType, MoneyType

MovementKindType = strawberry.enum(
    MovementKind, name="MovementKind", description="Why money moved in the ledger."
)
WithdrawalStatusType = strawberry.enum(
    WithdrawalStatus,
    name="WithdrawalStatus",
    description="REQUESTED: taken from the wallet, the payout being made; IN_TRANSIT: on its "
    "way to the bank; PAID; FAILED: the money is back in the wallet.",
)


@strawberry.type(name="Withdrawal", description="A payout of wallet money to my bank.")
class WithdrawalNode(relay.Node):
    id: relay.NodeID[str]
    amount: MoneyType
    status: WithdrawalStatus
    failure_code: str | None = strawberry.field(description="The bank's or gateway's reason.")
    requested_at: datetime
    updated_at: datetime
    doc: strawberry.Private[Withdrawal]

    @classmethod
    def of(cls, withdrawal: Withdrawal) -> WithdrawalNode:
        return copied(
            cls,
            withdrawal,
            id=str(withdrawal.id),
            amount=MoneyType.of(withdrawal.amount),
            doc=withdrawal,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[WithdrawalNode | None]:
        withdrawals = await owned_documents(info, node_ids, Withdrawal, "provider_id")
        return [cls.of(w) if w else None for w in withdrawals]


@strawberry.type
class WithdrawalConnection(relay.Connection[WithdrawalNode]):
    pass


@strawberry.type(description="One movement of money into or out of my wallet.")
class WalletTransaction(relay.Node):
    id: relay.NodeID[str]
    kind: MovementKind
    amount: MoneyType = strawberry.field(description="Into the wallet; negative: out of it.")
    memo: str
    created_at: datetime

    @classmethod
    def of(cls, transaction: LedgerTransaction, provider_id: ObjectId) -> WalletTransaction:
        return copied(
            cls,
            transaction,
            id=str(transaction.id),
            amount=MoneyType.of(wallets.wallet_amount(transaction, provider_id)),
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[WalletTransaction | None]:
        """Only the viewer's own wallet movements."""
        viewer = await info.context.viewer()
        ids = object_ids(node_ids)
        if viewer is None:
            return [None for _ in ids]
        found = await wallets.wallet_transactions(viewer.user_id, [i for i in ids if i])
        return [cls.of(found[i], viewer.user_id) if i in found else None for i in ids]


@strawberry.type
class WalletTransactionConnection(relay.Connection[WalletTransaction]):
    pass


@strawberry.type(description="My money in one currency.")
class WalletBalance:
    currency: str
    balance: MoneyType = strawberry.field(
        description="What the wallet holds: released earnings not withdrawn (= available)."
    )
    available: MoneyType = strawberry.field(description="What I can withdraw now.")
    pending: MoneyType = strawberry.field(
        description="My share of deals paid for and not yet released to me."
    )
    in_flight: MoneyType = strawberry.field(description="Withdrawn, on its way to my bank.")
    paid_out: MoneyType = strawberry.field(description="Everything paid to my bank so far.")

    @classmethod
    def of(cls, figures: wallets.WalletBalance) -> WalletBalance:
        return copied(
            cls,
            figures,
            balance=MoneyType.of(figures.available),
            available=MoneyType.of(figures.available),
            pending=MoneyType.of(figures.pending),
            in_flight=MoneyType.of(figures.in_flight),
            paid_out=MoneyType.of(figures.paid_out),
        )


@strawberry.type(description="A provider's earnings, in integer minor units per currency.")
class Wallet:
    balances: list[WalletBalance] = strawberry.field(description="One per currency.")
    owner_id: strawberry.Private[ObjectId]

    @strawberry.field(description="Movements of my wallet, newest first.")
    async def transactions(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> WalletTransactionConnection:
        page = await wallets.wallet_history(self.owner_id, requested_page(info, first, after))
        return to_connection(
            WalletTransactionConnection, page, lambda t: WalletTransaction.of(t, self.owner_id)
        )


@strawberry.type
class WalletQuery:
    @strawberry.field(extensions=allow(IsAuthenticated()), description="Taskers: my wallet.")
    async def my_wallet(self, info: Info) -> Wallet:
        viewer = await info.context.require_viewer()
        figures = await wallets.wallet_of(viewer)
        return Wallet(balances=[WalletBalance.of(f) for f in figures], owner_id=viewer.user_id)

    @strawberry.field(
        extensions=allow(IsAuthenticated()), description="Taskers: my withdrawals, newest first."
    )
    async def my_withdrawals(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> WithdrawalConnection:
        viewer = await info.context.require_viewer()
        page = await withdrawals.withdrawals_of(viewer.user_id, requested_page(info, first, after))
        return to_connection(WithdrawalConnection, page, WithdrawalNode.of)


@strawberry.input
class RequestWithdrawalInput:
    amount: MoneyInputType = strawberry.field(
        description="In a currency my wallet holds; at most what is available."
    )


@strawberry.type
class RequestWithdrawalPayload(Payload):
    withdrawal: WithdrawalNode | None = None


@strawberry.type
class WalletMutation:
    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Taskers: pay part of my wallet out to my bank (PAYOUTS_NOT_ENABLED until "
        "my payout account is set up; INSUFFICIENT_FUNDS beyond what is available).",
    )
    @mutation_payload
    async def request_withdrawal(
        self, info: Info, input: RequestWithdrawalInput
    ) -> RequestWithdrawalPayload:
        viewer = await info.context.require_viewer()
        withdrawal = await withdrawals.request_withdrawal(
            info.context.services, viewer, input.amount.value()
        )
        return RequestWithdrawalPayload(withdrawal=WithdrawalNode.of(withdrawal))
