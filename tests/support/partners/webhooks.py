"""Endpoints and webhook events made directly as documents (the money API is tested on
its own), and the sender run as its job runs it: what the webhook tests start from."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from documents.money import Money
from documents.partners.api_keys import ApiScope
from documents.partners.wallets import PartnerWallet
from documents.partners.webhooks import PartnerEventType, PartnerWebhookEvent
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.partners.webhooks.endpoints import add_endpoint
from resolvers.partners.webhooks.outbox import record_event
from resolvers.partners.webhooks.sender import send_due, webhook_poster
from tests.support.partners.partners import PartnerKey, completed_credit

WEBHOOK_SCOPES = (ApiScope.MANAGE_WEBHOOKS, ApiScope.READ_WALLETS)


async def endpoint_secret(made: PartnerKey, url: str) -> str:
    """An endpoint made directly; its signing secret."""
    endpoint = await add_endpoint(None, made.id, url)
    return endpoint.secrets[0].secret


async def money_moved(
    services: Services, wallet: PartnerWallet, amount: int, balance: int
) -> PartnerWebhookEvent:
    """A completed credit of `amount` and its event, in one transaction, as the money
    code records them."""

    async def work(unit: UnitOfWork) -> PartnerWebhookEvent:
        assert wallet.id is not None
        money = Money(amount=amount, currency=wallet.currency)
        transaction = completed_credit(wallet.partner_id, wallet.id, money)
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
