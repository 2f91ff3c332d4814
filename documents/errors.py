"""Expected failures of the domain, with codes that clients may rely on.

A `DomainError` is what every layer raises when a request cannot be carried out for a
reason the caller can act on (bad input, wrong state, not allowed). The GraphQL layer
turns it into payload errors on mutations and into coded GraphQL errors elsewhere.
Codes are part of the public API: add new ones, never rename or reuse one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ErrorCode(Enum):
    # Input
    INVALID_INPUT = "INVALID_INPUT"
    INVALID_EMAIL = "INVALID_EMAIL"
    EMAIL_TAKEN = "EMAIL_TAKEN"
    """No longer returned: signUp answers alike whether or not the address has an account."""
    WEAK_PASSWORD = "WEAK_PASSWORD"
    INVALID_ID = "INVALID_ID"
    INVALID_CURSOR = "INVALID_CURSOR"
    # Identity
    UNAUTHENTICATED = "UNAUTHENTICATED"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    ACCOUNT_LOCKED = "ACCOUNT_LOCKED"
    TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS"
    ONE_PASSWORD_PER_REQUEST = "ONE_PASSWORD_PER_REQUEST"
    """Another field of the same request (batch, websocket operation) checked or set a
    password already; this one did nothing."""
    ACCOUNT_SUSPENDED = "ACCOUNT_SUSPENDED"
    INVALID_TOKEN = "INVALID_TOKEN"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    TOKEN_REUSED = "TOKEN_REUSED"
    SESSION_REVOKED = "SESSION_REVOKED"
    INVALID_CODE = "INVALID_CODE"
    """The one-time code sent by SMS is not the one waiting (or none is): the number stays
    unconfirmed."""
    CODE_EXPIRED = "CODE_EXPIRED"
    """The one-time code sent by SMS has run out; ask for a new one."""
    # Access and state
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    INVALID_STATE = "INVALID_STATE"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    UNAVAILABLE = "UNAVAILABLE"
    """The time asked for is not free (outside the schedule, or taken)."""
    TOO_EARLY = "TOO_EARLY"
    """The move's time has not come: a booking started long before its start time, or
    finished before it."""
    OFFER_CHANGED = "OFFER_CHANGED"
    """The offer (or price) differs from the one the client showed: nothing was agreed."""
    TOO_MANY_PENDING = "TOO_MANY_PENDING"
    """The customer has as many booking requests waiting for an answer as one may
    (GIGQL_MAX_PENDING_BOOKINGS): nothing was booked."""
    NOTIFICATION_REQUIRED = "NOTIFICATION_REQUIRED"
    """The notification cannot be turned off on its default channels (security messages,
    payment receipts); nothing was changed."""
    # Money
    PAYMENT_REQUIRED = "PAYMENT_REQUIRED"
    """The deal's payment has not been received: work does not start, get handed in or
    get accepted before it is."""
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    """The account does not hold enough for the movement (a withdrawal, a release)."""
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    """A partner's idempotency key sent again with a different request."""
    INVALID_API_KEY = "INVALID_API_KEY"
    """A partner API key that is unknown, revoked, expired, or of a partner not approved."""
    WALLET_FROZEN = "WALLET_FROZEN"
    """A partner wallet that is frozen or closed neither sends nor receives."""
    """The idempotency key was already used for a different movement."""
    SANDBOX_ONLY = "SANDBOX_ONLY"
    """A development control of the sandbox gateway; pay through Stripe's own UI instead."""
    PAYOUTS_NOT_ENABLED = "PAYOUTS_NOT_ENABLED"
    """The provider has no payout account yet, or the gateway has not enabled payouts."""
    GATEWAY_UNAVAILABLE = "GATEWAY_UNAVAILABLE"
    """The payment gateway did not answer; the same request may be sent again later."""
    # Messages
    SMS_UNAVAILABLE = "SMS_UNAVAILABLE"
    """The SMS provider did not take the message; the same request may be sent again later."""
    # Accounts
    DEALS_IN_PROGRESS = "DEALS_IN_PROGRESS"
    """The account takes part in a deal in progress, or money is still due to it: it is
    not deleted until each (one problem apiece) is finished, cancelled or paid out."""


@dataclass(frozen=True, slots=True)
class Problem:
    code: ErrorCode
    message: str
    field: str | None = None


class DomainError(Exception):
    """One or more problems that stop a use case before it changes anything."""

    def __init__(
        self, code: ErrorCode, message: str, field: str | None = None, *more: Problem
    ) -> None:
        super().__init__(message)
        self.problems: tuple[Problem, ...] = (Problem(code, message, field), *more)

    @classmethod
    def of(cls, problems: list[Problem]) -> DomainError:
        first, *rest = problems
        return cls(first.code, first.message, first.field, *rest)

    @property
    def code(self) -> ErrorCode:
        return self.problems[0].code
