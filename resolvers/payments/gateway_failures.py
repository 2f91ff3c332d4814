"""Gateway failures a provider's request can meet, as domain errors.

A gateway that does not answer is worth telling apart: the client may simply ask again
(the idempotency keys make the repeat safe). Any other refusal of these requests is a
bug of ours and stays an exception, logged and masked.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from documents.errors import DomainError, ErrorCode
from integrations.payments.errors import GatewayUnavailable

T = TypeVar("T")


async def answered(call: Awaitable[T]) -> T:
    """The gateway's answer; GATEWAY_UNAVAILABLE if it gave none."""
    try:
        return await call
    except GatewayUnavailable as error:
        raise DomainError(
            ErrorCode.GATEWAY_UNAVAILABLE,
            "The payment provider is not answering at the moment; please try again.",
        ) from error
