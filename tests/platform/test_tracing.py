"""Tracing is loaded only when OpenTelemetry's variables ask for it, and then a real
`gigql serve` exports its spans over OTLP/HTTP to a receiver run by the test.

redis-py 8 imports OpenTelemetry's API and SDK itself whenever they are installed (its
own `redis.observability`, off unless configured), so "not loaded" is checked as: none of
gigql's tracing, no instrumentation and no exporter is imported."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from documents.settings import Settings
from tests.support.gigql_process import eventually, sharing_the_test_database

BUILD_APP = (
    "import sys\n"
    "from documents.settings import Settings\n"
    "from server.app import create_app\n"
    "create_app(Settings(_env_file=None))\n"
    "tracing = ('server.observability.tracing', 'integrations.payments.traced',\n"
    "           'opentelemetry.instrumentation', 'opentelemetry.exporter')\n"
    "print(sorted({m for m in sys.modules if m in tracing}))\n"
)


def _loaded(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", BUILD_APP],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


def test_nothing_of_opentelemetry_is_imported_without_its_variables() -> None:
    assert _loaded() == "[]"


def test_an_otlp_endpoint_loads_tracing() -> None:
    loaded = _loaded(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    # The gateway's spans come with the runtime, which building the app does not open.
    assert "'server.observability.tracing'" in loaded
    assert "'opentelemetry.instrumentation'" in loaded
    assert "'opentelemetry.exporter'" in loaded


# --- what a real server exports -----------------------------------------------------


class _OtlpReceiver(ThreadingHTTPServer):
    """An OTLP/HTTP traces endpoint on a loopback port: `POST /v1/traces`, a protobuf
    ExportTraceServiceRequest (gzipped if the exporter says so), its spans kept."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _OtlpHandler)
        self.spans: list[Span] = []
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def received(self) -> list[Span]:
        with self.lock:
            return list(self.spans)


class _OtlpHandler(BaseHTTPRequestHandler):
    server: _OtlpReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path != "/v1/traces":
            self.send_error(404)
            return
        export = ExportTraceServiceRequest.FromString(body)
        spans = [
            span
            for resource in export.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]
        with self.server.lock:
            self.server.spans.extend(spans)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        return None  # quiet: the test reports what it missed


@pytest.fixture
def otlp_receiver() -> Iterator[_OtlpReceiver]:
    receiver = _OtlpReceiver()
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.shutdown()
        receiver.server_close()
        thread.join(10)


async def test_a_request_is_a_span_named_after_its_operation_with_pymongo_spans_beneath(
    otlp_receiver: _OtlpReceiver, settings: Settings, tmp_path: Path
) -> None:
    async with sharing_the_test_database(
        tmp_path,
        settings,
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",
    ) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            response = await http.post("/graphql", json={"query": OPEN_TASKS})
        assert response.status_code == 200, response.text
        assert response.json() == {"data": {"tasks": {"edges": []}}}
        arrived = await eventually(lambda: _request_span(otlp_receiver.received()) is not None, 20)
        assert arrived, [span.name for span in otlp_receiver.received()]
        request = _request_span(otlp_receiver.received())
        assert request is not None
        by_id = {span.span_id: span for span in otlp_receiver.received()}

        def beneath_request(span: Span) -> bool:
            parent = by_id.get(span.parent_span_id)
            while parent is not None:
                if parent.span_id == request.span_id:
                    return True
                parent = by_id.get(parent.parent_span_id)
            return False

        found = await eventually(
            lambda: any(
                _is_mongodb(span) and span.trace_id == request.trace_id and beneath_request(span)
                for span in otlp_receiver.received()
            ),
            20,
        )
        assert found, sorted(span.name for span in otlp_receiver.received())
    assert request.kind == Span.SpanKind.SPAN_KIND_SERVER
    attributes = {a.key: a.value.string_value for a in request.attributes}
    assert attributes["graphql.operation.name"] == "OpenTasks"
    assert attributes["graphql.operation.type"] == "query"
    commands = {
        span.name.rpartition(".")[2]
        for span in otlp_receiver.received()
        if span.trace_id == request.trace_id and _is_mongodb(span)
    }
    assert "find" in commands, commands


OPEN_TASKS = "query OpenTasks { tasks(first: 1) { edges { node { id } } } }"


def _request_span(spans: list[Span]) -> Span | None:
    return next((span for span in spans if span.name == "query OpenTasks"), None)


def _is_mongodb(span: Span) -> bool:
    return span.kind == Span.SpanKind.SPAN_KIND_CLIENT and any(
        attribute.key in ("db.system", "db.system.name")
        and attribute.value.string_value == "mongodb"
        for attribute in span.attributes
    )
