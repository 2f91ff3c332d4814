"""OpenTelemetry traces, when its variables ask for them (`Settings.tracing_enabled`).

Imported only then: with tracing off, neither this module nor any of OpenTelemetry is
loaded (tests/platform/test_tracing.py checks `sys.modules` of a real server).

A span per HTTP request and websocket (opentelemetry-instrumentation-asgi), named after
the GraphQL operation it runs (`query TaskList`, with `graphql.operation.name` and
`graphql.operation.type`: the bounded labels of schema/common/operation_metrics.py, not
the raw request); under it a span per MongoDB command and Redis command (the official
PyMongo and Redis instrumentations) and per payment gateway call
(integrations/payments/traced.py). The exporter and its endpoint, headers, sampler,
batching and service name come from the standard OTEL_* variables, read by the SDK
itself; OTEL_SERVICE_NAME defaults to `gigql`. The probes and `/metrics` get no spans.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from starlette.middleware import Middleware

from documents.settings import Settings
from schema.schema import GigqlSchema

UNTRACED_PATHS = "/healthz,/readyz,/metrics"


class Tracing:
    """The process's tracer provider and instrumentations, from start-up to shutdown."""

    def __init__(self, settings: Settings) -> None:
        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or "gigql"})
        self.provider = TracerProvider(resource=resource)
        for exporter in _exporters(settings):
            self.provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(self.provider)
        PymongoInstrumentor().instrument(tracer_provider=self.provider)
        RedisInstrumentor().instrument(tracer_provider=self.provider)

    def middleware(self) -> Middleware:
        return Middleware(
            OpenTelemetryMiddleware,
            excluded_urls=UNTRACED_PATHS,
            # One span per request, not one more per ASGI message sent or received.
            exclude_spans=["receive", "send"],
            tracer_provider=self.provider,
        )

    def name_requests(self, *schemas: GigqlSchema) -> None:
        for schema in schemas:
            schema.http_metrics.namer = _name_request_span

    def shutdown(self) -> None:
        """Send what is buffered before the process ends."""
        self.provider.shutdown()


def _name_request_span(name: str, kind: str) -> None:
    span = trace.get_current_span()
    if span.is_recording():
        span.update_name(f"{kind} {name}")
        span.set_attribute("graphql.operation.name", name)
        span.set_attribute("graphql.operation.type", kind)


def _exporters(settings: Settings) -> list[SpanExporter]:
    names = [name for name in settings.otel_traces_exporter if name != "none"] or ["otlp"]
    made: list[SpanExporter] = []
    for name in dict.fromkeys(names):
        if name == "console":
            made.append(ConsoleSpanExporter())
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            made.append(OTLPSpanExporter())
    return made
