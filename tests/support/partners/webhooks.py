"""Partners, wallets and webhook events made directly as documents (the money API is
tested on its own): what the webhook tests start from."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from bson import ObjectId

from documents.partners.api_keys import ApiScope, KeyMode
from documents.partners.partners import Partner, PartnerFees, PartnerStatus
from documents.partners.transactions import PartnerTransaction, TransactionKind, TransactionStatus
from documents.partners.wallets import PartnerWallet
from documents.partners.webhooks import PartnerEventType, PartnerWebhookEvent
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.partners.keys import make_key
from resolvers.partners.webhooks.endpoints import add_endpoint
from resolvers.partners.webhooks.outbox import record_event
from resolvers.partners.webhooks.sender import send_due, webhook_poster


@dataclass(frozen=True)
class Made:
    partner: Partner
    key: str
    """The API key (MANAGE_WEBHOOKS and READ_WALLETS)."""

    @property
    def id(self) -> ObjectId:
        assert self.partner.id is not None
        return self.partner.id


async def partner(name: str = "RoSaBank") -> Made:
    made = Partner(
        owner_id=ObjectId(),
        name=name,
        company_name=f"{name} Inc",
        contact_name="Jane Smith",
        contact_email="api@partner.example",
        business_type="Financial Services",
        webhook_url="https://api.partner.example/webhooks",
        status=PartnerStatus.APPROVED,
        fees=PartnerFees(credit_bp=290),
    )
    await made.insert()
    assert made.id is not None
    key = make_key(
        made.id,
        mode=KeyMode.TEST,
        name="server",
        scopes=[ApiScope.MANAGE_WEBHOOKS, ApiScope.READ_WALLETS],
        expires_at=None,
        created_by=made.owner_id,
    )
    await key.key.insert()
    return Made(made, key.secret)


async def endpoint_secret(made: Made, url: str) -> str:
    """An endpoint made directly; its signing secret."""
    endpoint = await add_endpoint(None, made.id, url)
    return endpoint.secrets[0].secret


async def wallet(made: Made, external_id: str) -> PartnerWallet:
    created = PartnerWallet(
        partner_id=made.id,
        external_user_id=f"user-{external_id}",
        external_wallet_id=external_id,
        name=f"Wallet {external_id}",
        currency="usd",
    )
    await created.insert()
    return created


async def money_moved(
    services: Services, wallet: PartnerWallet, amount: int, balance: int
) -> PartnerWebhookEvent:
    """A completed credit of `amount` and its event, in one transaction, as the money
    code records them."""

    async def work(unit: UnitOfWork) -> PartnerWebhookEvent:
        transaction = PartnerTransaction(
            partner_id=wallet.partner_id,
            idempotency_key=str(ObjectId()),
            request_hash="-",
            kind=TransactionKind.CREDIT,
            status=TransactionStatus.COMPLETED,
            amount=amount,
            currency=wallet.currency,
            to_wallet_id=wallet.id,
        )
        await transaction.insert(session=unit.session)
        return await record_event(
            unit.session,
            wallet,
            PartnerEventType.TRANSACTION_COMPLETED,
            transaction=transaction,
            balance=balance,
        )

    return await transact(services, work)


async def send_until(services: Services, done: Callable[[], bool], timeout: float = 20) -> None:
    """Run the sender as the background job does, every send interval, until `done`."""
    poster = webhook_poster(services.settings)
    interval = services.settings.partner_webhook_send_interval.total_seconds()
    async with asyncio.timeout(timeout):
        while not done():
            await send_due(services, poster)
            await asyncio.sleep(interval)
