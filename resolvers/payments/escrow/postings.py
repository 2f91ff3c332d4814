"""The ledger postings of an escrow, each under a key derived from the escrow's id.

    payment   escrow:<id>:payment        funding(payer) -charged, escrow +price,
                                         platform_revenue +customer_fee
    staged    escrow:<id>:commission     escrow -> platform_revenue commission_on_hold
    release   escrow:<id>:release[:<r>]  escrow -> wallet(provider) and the commission
                                         -> platform_revenue
    refund    escrow:<id>:refund:<n>     escrow and platform_revenue -> funding(payer)
    reversal  escrow:<id>:reversal[:<r>]:<t>  wallet(provider) -> escrow (t: reversed so
                                         far of release r's transfer)

Whichever path records a step (our own call or the gateway's webhook) posts the same
content under the same key, so the movement is in the ledger once.
"""

from __future__ import annotations

from pymongo.asynchronous.client_session import AsyncClientSession

from documents.money import Money
from documents.payments import ledger_accounts
from documents.payments.escrow import Escrow, EscrowRefund, ReleasePlan
from documents.payments.ledger import Entry, MovementKind, Ref, transfer
from resolvers.payments import ledger


def _entries(currency: str, amounts: dict[str, int]) -> list[Entry]:
    """One entry per account, leaving out accounts that do not move."""
    return [
        Entry(account=account, currency=currency, amount=amount)
        for account, amount in amounts.items()
        if amount
    ]


def release_key(escrow: Escrow, plan: ReleasePlan) -> str:
    suffix = "" if plan.round == 1 else f":{plan.round}"
    return f"{escrow.gateway_group}:release{suffix}"


async def post_payment(session: AsyncClientSession, escrow: Escrow) -> None:
    fees = escrow.fees
    assert escrow.id is not None and escrow.payment_intent_id is not None
    await ledger.post(
        session,
        key=f"{escrow.gateway_group}:payment",
        kind=MovementKind.PAYMENT_RECEIVED,
        entries=_entries(
            fees.price.currency,
            {
                ledger_accounts.funding(escrow.payer_id): -fees.charged.amount,
                ledger_accounts.escrow(escrow.id): fees.price.amount,
                ledger_accounts.platform_revenue(): fees.customer_fee.amount,
            },
        ),
        refs={Ref.ESCROW: escrow.id, Ref.GATEWAY: escrow.payment_intent_id},
        memo="payment held in escrow",
    )
    if fees.commission_on_hold.amount:
        await ledger.post(
            session,
            key=f"{escrow.gateway_group}:commission",
            kind=MovementKind.COMMISSION,
            entries=transfer(
                ledger_accounts.escrow(escrow.id),
                ledger_accounts.platform_revenue(),
                fees.commission_on_hold,
            ),
            refs={Ref.ESCROW: escrow.id},
            memo="commission kept when the payment is held",
        )


async def post_release(
    session: AsyncClientSession, escrow: Escrow, plan: ReleasePlan, transfer_id: str | None
) -> None:
    assert escrow.id is not None
    refs: dict[Ref, str] = {Ref.ESCROW: str(escrow.id)}
    if transfer_id:
        refs[Ref.GATEWAY] = transfer_id
    await ledger.post(
        session,
        key=release_key(escrow, plan),
        kind=MovementKind.ESCROW_RELEASED,
        entries=_entries(
            plan.to_provider.currency,
            {
                ledger_accounts.escrow(escrow.id): -(plan.to_provider + plan.commission).amount,
                ledger_accounts.wallet(escrow.provider_id): plan.to_provider.amount,
                ledger_accounts.platform_revenue(): plan.commission.amount,
            },
        ),
        refs=refs,
        memo="released to the provider",
    )


async def post_refund(session: AsyncClientSession, escrow: Escrow, refund: EscrowRefund) -> None:
    assert escrow.id is not None
    await ledger.post(
        session,
        key=f"{escrow.gateway_group}:refund:{refund.number}",
        kind=MovementKind.REFUND,
        entries=_entries(
            refund.amount.currency,
            {
                ledger_accounts.funding(escrow.payer_id): refund.amount.amount,
                ledger_accounts.escrow(escrow.id): -refund.from_escrow.amount,
                ledger_accounts.platform_revenue(): -refund.from_platform.amount,
            },
        ),
        refs={Ref.ESCROW: escrow.id},
        memo="refunded to the payer",
    )


async def post_reversal(
    session: AsyncClientSession, escrow: Escrow, amount: Money, reversed_so_far: int
) -> None:
    """A transfer reversal takes the money back from the provider's connected account to
    the platform: back from their wallet into this escrow, for an admin to decide on.
    `reversed_so_far`: of the transfer of the escrow's current release."""
    assert escrow.id is not None and escrow.transfer_id is not None
    assert escrow.release is not None
    round = "" if escrow.release.round == 1 else f":{escrow.release.round}"
    await ledger.post(
        session,
        key=f"{escrow.gateway_group}:reversal{round}:{reversed_so_far}",
        kind=MovementKind.ADJUSTMENT,
        entries=transfer(
            ledger_accounts.wallet(escrow.provider_id), ledger_accounts.escrow(escrow.id), amount
        ),
        refs={Ref.ESCROW: escrow.id, Ref.GATEWAY: escrow.transfer_id},
        memo="transfer reversed by the gateway",
    )
