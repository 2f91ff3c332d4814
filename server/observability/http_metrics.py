"""Counting every HTTP request and websocket by route, for the app's edge layer
(server/middleware.py `EdgeMiddleware`), which calls it without a layer of its own.

Routes are the app's own paths, anything else `other`, so a scan of made-up paths adds no
series. Label children are bound once per route and status; a request costs two dict
lookups, a counter increment and a histogram observation (bench/README.md, "Metrics").
"""

from __future__ import annotations

from prometheus_client.metrics import Counter, Histogram

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
    duration, bodies refused for their size, and open websockets."""

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
