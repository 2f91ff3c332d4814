"""What the use cases need from the running server, passed in explicitly."""

from __future__ import annotations

from dataclasses import dataclass

from documents.settings import Settings
from integrations.mail import Postman
from integrations.payments.gateway import PaymentGateway
from realtime.broker import Broker
from resolvers.accounts.auth.passwords import Passwords
from resolvers.accounts.auth.tokens import AccessTokens
from resolvers.common.cursors import CursorKey


@dataclass(frozen=True)
class Services:
    settings: Settings
    passwords: Passwords
    tokens: AccessTokens
    postman: Postman
    broker: Broker
    payments: PaymentGateway
    cursors: CursorKey


@dataclass(frozen=True, slots=True)
class RequestMeta:
    """Where a request came from, for the audit log and per-client limits."""

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
