"""Money that comes back to a wallet the partner may have closed meanwhile.

A payout the bank returns after `payout.paid`, or a chargeback won after the wallet was
emptied by it, puts money back into a wallet that may be CLOSED by then; a closed
wallet never holds money. So it is reopened, FROZEN (the PARTNER_WALLET lifecycle's
SYSTEM move "reopen"), in the transaction that posts the money, with an alert logged:
the partner sees the money, and can unfreeze the wallet and withdraw it.
"""

from __future__ import annotations

import logging

from documents.lifecycles import PARTNER_WALLET, Party
from documents.partners.transactions import PartnerTransaction
from documents.partners.wallets import PartnerWallet, WalletStatus
from resolvers.common.services import Services
from resolvers.common.transitions import transition
from resolvers.common.unit_of_work import UnitOfWork
from resolvers.partners.wallets import WALLET_SUBJECT

log = logging.getLogger(__name__)


async def open_for_money_back(
    unit: UnitOfWork,
    services: Services,
    wallet: PartnerWallet,
    transaction: PartnerTransaction,
    alert: str,
) -> PartnerWallet:
    """`wallet`, reopened FROZEN if it is closed (with `alert` logged), ready for the
    money `transaction` brings back to it."""
    if wallet.status is not WalletStatus.CLOSED:
        return wallet
    reopened = await transition(
        unit,
        services,
        PARTNER_WALLET,
        "reopen",
        wallet,
        Party.SYSTEM,
        WALLET_SUBJECT,
        note=f"money back from transaction {transaction.id}",
    )
    log.error(
        "money came back to a closed partner wallet: reopened frozen",
        extra={
            "alert": alert,
            "partner_id": str(wallet.partner_id),
            "wallet_id": str(wallet.id),
            "transaction_id": str(transaction.id),
        },
    )
    return reopened
