"""The partner graph's money: its transactions (READ_WALLETS), and the instant operations,
debits and transfers (MOVE_MONEY), each under the partner's idempotency key."""

from __future__ import annotations

from datetime import datetime
from typing import cast

import strawberry
from bson import ObjectId
from strawberry import relay
from strawberry.scalars import JSON

from documents.partners.api_keys import ApiScope
from documents.partners.transactions import TransactionKind, TransactionStatus
from resolvers.partners import moves, statements
from resolvers.partners.moves import Moved
from schema.common.context import Info
from schema.common.payloads import Payload, mutation_payload
from schema.common.relay import decode_id, requested_page, to_connection
from schema.common.values import MoneyInputType
from schema.partners.context import PartnerInfo
from schema.partners.types import (
    PartnerTransactionConnection,
    PartnerTransactionNode,
    PartnerWalletNode,
)

_IDEMPOTENCY_KEY = (
    "My key for this operation (1 to 255 printable characters): sent again with the same "
    "request, it returns the first transaction; with another, IDEMPOTENCY_KEY_REUSED."
)


@strawberry.input(description="Transactions matching every field given.")
class PartnerTransactionFilter:
    wallet_id: relay.GlobalID | None = strawberry.field(
        default=None, description="Money left or reached this wallet."
    )
    kind: TransactionKind | None = None
    status: TransactionStatus | None = None
    created_from: datetime | None = strawberry.field(default=None, description="At or after.")
    created_until: datetime | None = strawberry.field(default=None, description="Before.")


@strawberry.type
class PartnerMoneyQuery:
    @strawberry.field(description="One of my transactions (NOT_FOUND if it is not one).")
    async def transaction(self, info: PartnerInfo, id: relay.GlobalID) -> PartnerTransactionNode:
        access = info.context.partner(ApiScope.READ_WALLETS)
        transaction_id = decode_id(id, PartnerTransactionNode, "id")
        found = await statements.get_transaction(access.partner_id, transaction_id)
        return PartnerTransactionNode.of(found)

    @strawberry.field(description="My transactions, newest first.")
    async def transactions(
        self,
        info: PartnerInfo,
        filter: PartnerTransactionFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> PartnerTransactionConnection:
        access = info.context.partner(ApiScope.READ_WALLETS)
        return await transactions_of(cast("Info", info), access.partner_id, filter, first, after)


async def transactions_of(
    info: Info,
    partner_id: ObjectId,
    filter: PartnerTransactionFilter | None,
    first: int | None,
    after: str | None,
) -> PartnerTransactionConnection:
    """A partner's transactions, newest first: for the partner's key, and for admins."""
    given = filter or PartnerTransactionFilter()
    wallet_id = given.wallet_id
    page = await statements.list_transactions(
        partner_id,
        statements.TransactionFilter(
            wallet_id=decode_id(wallet_id, PartnerWalletNode, "filter.walletId")
            if wallet_id is not None
            else None,
            kind=given.kind,
            status=given.status,
            created_from=given.created_from,
            created_until=given.created_until,
        ),
        requested_page(info, first, after),
    )
    return to_connection(PartnerTransactionConnection, page, PartnerTransactionNode.of)


@strawberry.input
class DebitWalletInput:
    wallet_id: relay.GlobalID
    amount: MoneyInputType = strawberry.field(description="In the wallet's currency.")
    description: str = ""
    metadata: JSON | None = strawberry.field(
        default=None, description="My own data, as on wallets."
    )
    idempotency_key: str = strawberry.field(description=_IDEMPOTENCY_KEY)


@strawberry.input
class TransferBetweenWalletsInput:
    from_wallet_id: relay.GlobalID
    to_wallet_id: relay.GlobalID = strawberry.field(
        description="Another of my wallets, in the same currency."
    )
    amount: MoneyInputType = strawberry.field(description="In the wallets' currency.")
    description: str = ""
    metadata: JSON | None = strawberry.field(
        default=None, description="My own data, as on wallets."
    )
    idempotency_key: str = strawberry.field(description=_IDEMPOTENCY_KEY)


@strawberry.type
class MoveMoneyPayload(Payload):
    transaction: PartnerTransactionNode | None = None
    replayed: bool | None = strawberry.field(
        default=None,
        description="True when an earlier request with this idempotency key made the "
        "transaction, and this one changed nothing.",
    )


@strawberry.type
class DebitWalletPayload(MoveMoneyPayload):
    wallet: PartnerWalletNode | None = strawberry.field(default=None, description="As debited.")
    clearing_wallet: PartnerWalletNode | None = strawberry.field(
        default=None, description="My clearing wallet in the currency, which was paid."
    )

    @classmethod
    def of(cls, moved: Moved) -> DebitWalletPayload:
        return cls(
            transaction=PartnerTransactionNode.of(moved.transaction),
            replayed=moved.replayed,
            wallet=PartnerWalletNode.of(moved.source),
            clearing_wallet=PartnerWalletNode.of(moved.target),
        )


@strawberry.type
class TransferBetweenWalletsPayload(MoveMoneyPayload):
    from_wallet: PartnerWalletNode | None = None
    to_wallet: PartnerWalletNode | None = None

    @classmethod
    def of(cls, moved: Moved) -> TransferBetweenWalletsPayload:
        return cls(
            transaction=PartnerTransactionNode.of(moved.transaction),
            replayed=moved.replayed,
            from_wallet=PartnerWalletNode.of(moved.source),
            to_wallet=PartnerWalletNode.of(moved.target),
        )


@strawberry.type
class PartnerMoneyMutation:
    @strawberry.mutation(
        description="Move money from a wallet to my clearing wallet in its currency, at once, "
        "plus my debit fee (INSUFFICIENT_FUNDS beyond what it holds; WALLET_FROZEN if it is "
        "frozen or closed)."
    )
    @mutation_payload
    async def debit_wallet(self, info: PartnerInfo, input: DebitWalletInput) -> DebitWalletPayload:
        access = info.context.partner(ApiScope.MOVE_MONEY)
        moved = await moves.debit_wallet(
            info.context.services,
            access,
            decode_id(input.wallet_id, PartnerWalletNode, "walletId"),
            amount=input.amount.value(),
            description=input.description,
            metadata=input.metadata,
            idempotency_key=input.idempotency_key,
        )
        return DebitWalletPayload.of(moved)

    @strawberry.mutation(
        description="Move money between two of my wallets in one currency, at once, plus my "
        "transfer fee (INSUFFICIENT_FUNDS beyond what the sender holds; WALLET_FROZEN if "
        "either is frozen or closed)."
    )
    @mutation_payload
    async def transfer_between_wallets(
        self, info: PartnerInfo, input: TransferBetweenWalletsInput
    ) -> TransferBetweenWalletsPayload:
        access = info.context.partner(ApiScope.MOVE_MONEY)
        moved = await moves.transfer_between_wallets(
            info.context.services,
            access,
            decode_id(input.from_wallet_id, PartnerWalletNode, "fromWalletId"),
            decode_id(input.to_wallet_id, PartnerWalletNode, "toWalletId"),
            amount=input.amount.value(),
            description=input.description,
            metadata=input.metadata,
            idempotency_key=input.idempotency_key,
        )
        return TransferBetweenWalletsPayload.of(moved)
