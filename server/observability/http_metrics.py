"""Counting every HTTP request and websocket by route, as pure ASGI middleware.

Routes are the app's own paths, anything else `other`, so a scan of made-up paths adds no
series. Label children are bound once per route and status; a request costs two dict
lookups, a counter increment and a histogram observation (bench/README.md, "Metrics").
"""

from __future__ import annotations

import time

from prometheus_client.metrics import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from documents.metrics import (
    HTTP_REQUEST_DURATION,
    HTTP_REQUESTS,
    LIMIT_REFUSALS,
    WEBSOCKETS_OPEN,
)

OTHER_ROUTE = "other"
PAYLOAD_TOO_LARGE = 413


class _Route:
    __slots__ = ("duration", "label", "statuses")

    def __init__(self, label: str) -> None:
        self.label = label
        self.duration: Histogram = HTTP_REQUEST_DURATION.labels(label)
        self.statuses: dict[int, Counter] = {}

    def count(self, status: int, seconds: float) -> None:
        counter = self.statuses.get(status)
        if counter is None:
            counter = self.statuses[status] = HTTP_REQUESTS.labels(self.label, str(status))
        counter.inc()
        self.duration.observe(seconds)


class HttpRoutes:
    """The counting itself, apart from any layer: requests by route and status with their
    duration, bodies refused for their size, and open websockets. HttpMetricsMiddleware
    counts through it, and so does the app's one edge layer (server/middleware.py)."""

    def __init__(self, routes: list[str]) -> None:
        self._routes = {path: _Route(path) for path in routes}
        self._other = _Route(OTHER_ROUTE)

    def count(self, path: str, status: int, seconds: float) -> None:
        self._routes.get(path, self._other).count(status, seconds)
        if status == PAYLOAD_TOO_LARGE:
            LIMIT_REFUSALS.labels("body_size").inc()

    @staticmethod
    def socket_opened() -> None:
        WEBSOCKETS_OPEN.inc()

    @staticmethod
    def socket_closed() -> None:
        WEBSOCKETS_OPEN.dec()


class HttpMetricsMiddleware:
    """Requests by route and status with their duration, open websockets, and bodies
    refused for their size (a limit like the others), as a layer of its own."""

    def __init__(self, app: ASGIApp, routes: list[str]) -> None:
        self.app = app
        self.routes = HttpRoutes(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: what the server answers for an escape

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            self.routes.count(scope["path"], status, time.perf_counter() - started)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        accepted = False

        async def observed_send(message: Message) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept" and not accepted:
                accepted = True
                self.routes.socket_opened()
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            if accepted:
                self.routes.socket_closed()
