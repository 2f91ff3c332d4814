"""Spans around the payment gateway's calls, for tracing (server/observability/tracing.py).

Imported only when tracing is on: with it off, neither this module nor OpenTelemetry is
loaded. Every coroutine method of the gateway (a payment intent made, a transfer, a
payout, ...) gets a client span named `payments <method>`, a child of the request or job
that made the call; its attributes say which gateway, never an amount, account or id.
Listing methods (reconciliation) and `parse_event` (local work) pass straight through.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, cast

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from integrations.payments.gateway import PaymentGateway

_tracer = trace.get_tracer("gigql.payments")


class TracedGateway:
    def __init__(self, gateway: PaymentGateway) -> None:
        self._gateway = gateway
        self._system = type(gateway).__name__

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._gateway, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(attribute):
            return attribute
        return self._traced(name, attribute)

    def _traced(
        self, name: str, call: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        @wraps(call)
        async def traced(*args: Any, **kwargs: Any) -> Any:
            with _tracer.start_as_current_span(
                f"payments {name}",
                kind=SpanKind.CLIENT,
                attributes={"gigql.payments.gateway": self._system},
            ):
                return await call(*args, **kwargs)

        return traced


def traced(gateway: PaymentGateway) -> PaymentGateway:
    return cast("PaymentGateway", TracedGateway(gateway))
