"""What the app puts in front of its routes for metrics and traces (server/app.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route, WebSocketRoute

from documents.settings import Settings
from schema.schema import GigqlSchema
from server.observability.http_metrics import HttpRoutes
from server.observability.metrics_port import MetricsPortOnly

if TYPE_CHECKING:
    from server.observability.tracing import Tracing


def start_tracing(settings: Settings, *schemas: GigqlSchema) -> Tracing | None:
    """Tracing, if OpenTelemetry's variables ask for it; only then is it imported."""
    if not settings.tracing_enabled:
        return None
    from server.observability.tracing import Tracing

    tracing = Tracing(settings)
    tracing.name_requests(*schemas)
    return tracing


def edge_middleware(settings: Settings, tracing: Tracing | None) -> list[Middleware]:
    """Outermost first: the metrics port's gate, the request's span. The requests' counting
    is done by the app's edge layer (server/middleware.py), through `http_routes`."""
    middleware = []
    if settings.metrics_port is not None:
        middleware.append(Middleware(MetricsPortOnly, port=settings.metrics_port))
    if tracing is not None:
        middleware.append(tracing.middleware())
    return middleware


def http_routes(settings: Settings, routes: list[BaseRoute]) -> HttpRoutes | None:
    """What counts requests by route, None with the metrics off."""
    if not settings.metrics:
        return None
    return HttpRoutes(
        sorted({route.path for route in routes if isinstance(route, Route | WebSocketRoute)})
    )
