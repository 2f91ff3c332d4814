"""What the use cases need from the running server, passed in explicitly."""

from __future__ import annotations

from dataclasses import dataclass

from documents.settings import Settings
from integrations.mail import Postman
from integrations.payments.gateway import PaymentGateway
from integrations.push import PushSender
from integrations.sms import SmsSender
from realtime.broker import Broker
from resolvers.accounts.auth.passwords import Passwords
from resolvers.accounts.auth.tokens import AccessTokens
from resolvers.common.cursors import CursorKey
from resolvers.common.validation import PriceRules
from resolvers.marketplace.deal_terms import DealTerms
from resolvers.notifications.unsubscribe import UnsubscribeLinks
from resolvers.payments.fees import FeePolicy


@dataclass(frozen=True)
class Services:
    settings: Settings
    """Every setting, for the values the three groups below leave out: sign-in, links,
    chat, retries, categories, page sizes."""
    terms: DealTerms
    fees: FeePolicy
    price_rules: PriceRules
    passwords: Passwords
    tokens: AccessTokens
    postman: Postman
    sms: SmsSender
    push: PushSender
    broker: Broker
    payments: PaymentGateway
    cursors: CursorKey
    unsubscribe_links: UnsubscribeLinks


@dataclass(frozen=True, slots=True)
class RequestMeta:
    """Where a request came from, for the audit log and per-client limits."""

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
