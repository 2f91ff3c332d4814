"""The few failures of a payment gateway that callers treat differently.

Both gateways raise these, never an SDK exception: a declined card is the payer's to fix,
an invalid request is our bug or a wrong state, an idempotency conflict means one of our
keys was reused for a different request, and `retryable` failures may be sent again with
the same idempotency key.
"""

from __future__ import annotations


class GatewayError(Exception):
    """A request the gateway refused or could not answer."""

    retryable = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class CardDeclined(GatewayError):
    def __init__(
        self, message: str, *, code: str | None = None, decline_code: str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.decline_code = decline_code


class InvalidRequest(GatewayError):
    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message, code=code)
        self.param = param


class IdempotencyConflict(GatewayError):
    """The key was first used with other parameters (or another endpoint)."""


class GatewayUnavailable(GatewayError):
    """Network trouble, rate limiting or a server error: try again with the same key."""

    retryable = True


class WebhookSignatureError(Exception):
    """A webhook whose `Stripe-Signature` is missing, wrong or too old."""
