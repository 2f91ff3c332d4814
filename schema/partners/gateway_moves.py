"""The partner graph's money through the gateway: credit a wallet by card, withdraw to
the partner's bank, and (sandbox only) play the payer's card."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from documents.partners.api_keys import ApiScope
from resolvers.partners.gateway import cancellations, credits, withdrawals
from resolvers.partners.gateway.requests import MoveRequest
from resolvers.payments.sandbox_card import SandboxOutcome
from schema.common.payloads import Payload, mutation_payload
from schema.common.relay import decode_id
from schema.common.values import MoneyInputType
from schema.partners.context import PartnerInfo
from schema.partners.types import PartnerTransactionNode, PartnerWalletNode
from schema.payments.escrow import SandboxOutcomeType

__all__ = ["PartnerGatewayMutation", "SandboxOutcomeType"]


@strawberry.input(description="Money into or out of one of the partner's wallets.")
class WalletMoveInput:
    wallet_id: relay.GlobalID
    amount: MoneyInputType = strawberry.field(description="In the wallet's currency.")
    idempotency_key: str = strawberry.field(
        description="The partner's own key: the same key with the same request returns the "
        "first result; with another request it is IDEMPOTENCY_KEY_REUSED."
    )
    description: str = ""
    metadata: JSON = strawberry.field(
        default_factory=dict,
        description="The partner's tracking data (a JSON object, at most 500 characters as "
        "compact JSON); a credit's goes to Stripe as `partner_reference`.",
    )

    def request(self) -> MoveRequest:
        metadata: Any = self.metadata
        return MoveRequest(
            wallet_id=decode_id(self.wallet_id, PartnerWalletNode, "walletId"),
            amount=self.amount.value(),
            description=self.description,
            metadata=metadata,
            idempotency_key=self.idempotency_key,
        )


@strawberry.input
class CreditWalletInput(WalletMoveInput):
    pass


@strawberry.input
class WithdrawFromWalletInput(WalletMoveInput):
    pass


@strawberry.type
class CreditWalletPayload(Payload):
    transaction: PartnerTransactionNode | None = None
    client_secret: str | None = strawberry.field(
        default=None,
        description="While the credit awaits its payment: what the payer's app confirms the "
        "Stripe PaymentIntent with. Never stored; fetched again for a repeated request.",
    )


@strawberry.type
class WithdrawFromWalletPayload(Payload):
    transaction: PartnerTransactionNode | None = None


@strawberry.input
class SandboxPayCreditInput:
    transaction_id: relay.GlobalID
    outcome: SandboxOutcome = SandboxOutcome.SUCCEEDED


@strawberry.type
class SandboxPayCreditPayload(Payload):
    transaction: PartnerTransactionNode | None = None


@strawberry.input
class CancelCreditInput:
    transaction_id: relay.GlobalID


@strawberry.type
class CancelCreditPayload(Payload):
    transaction: PartnerTransactionNode | None = None


@strawberry.type
class PartnerGatewayMutation:
    @strawberry.mutation(
        description="MOVE_MONEY: a card credit into a wallet. Returns the PENDING transaction "
        "and the client secret of its Stripe PaymentIntent; the wallet is credited (less the "
        "partner's credit fee) when Stripe confirms the payment. WALLET_FROZEN for a frozen "
        "or closed wallet."
    )
    @mutation_payload
    async def credit_wallet(
        self, info: PartnerInfo, input: CreditWalletInput
    ) -> CreditWalletPayload:
        access = info.context.partner(ApiScope.MOVE_MONEY)
        credit = await credits.credit_wallet(info.context.services, access, input.request())
        return CreditWalletPayload(
            transaction=PartnerTransactionNode.of(credit.transaction),
            client_secret=credit.client_secret,
        )

    @strawberry.mutation(
        description="MOVE_MONEY: cancel a PENDING card credit: its Stripe PaymentIntent is "
        "cancelled and the credit FAILED (`canceled`, with `transaction.failed`). "
        "INVALID_STATE for any other transaction, or if the payment succeeded first."
    )
    @mutation_payload
    async def cancel_credit(
        self, info: PartnerInfo, input: CancelCreditInput
    ) -> CancelCreditPayload:
        access = info.context.partner(ApiScope.MOVE_MONEY)
        transaction_id = decode_id(input.transaction_id, PartnerTransactionNode, "transactionId")
        canceled = await cancellations.cancel_credit(info.context.services, access, transaction_id)
        return CancelCreditPayload(transaction=PartnerTransactionNode.of(canceled))

    @strawberry.mutation(
        description="MOVE_MONEY: pay part of a wallet (plus the partner's withdrawal fee) out to "
        "the partner's connected Stripe account and on to its bank. PAYOUTS_NOT_ENABLED until "
        "that account can be paid out; INSUFFICIENT_FUNDS beyond what the wallet holds."
    )
    @mutation_payload
    async def withdraw_from_wallet(
        self, info: PartnerInfo, input: WithdrawFromWalletInput
    ) -> WithdrawFromWalletPayload:
        access = info.context.partner(ApiScope.MOVE_MONEY)
        transaction = await withdrawals.withdraw(info.context.services, access, input.request())
        return WithdrawFromWalletPayload(transaction=PartnerTransactionNode.of(transaction))

    @strawberry.mutation(
        description="Development only (the sandbox gateway; SANDBOX_ONLY with Stripe): play "
        "the payer's card on a pending credit, as sandboxPay does for escrows."
    )
    @mutation_payload
    async def sandbox_pay_credit(
        self, info: PartnerInfo, input: SandboxPayCreditInput
    ) -> SandboxPayCreditPayload:
        access = info.context.partner(ApiScope.MOVE_MONEY)
        transaction_id = decode_id(input.transaction_id, PartnerTransactionNode, "transactionId")
        paid = await credits.sandbox_pay_credit(
            info.context.services, access, transaction_id, input.outcome
        )
        return SandboxPayCreditPayload(transaction=PartnerTransactionNode.of(paid))
