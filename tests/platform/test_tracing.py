"""Tracing is loaded only when OpenTelemetry's variables ask for it.

redis-py 8 imports OpenTelemetry's API and SDK itself whenever they are installed (its
own `redis.observability`, off unless configured), so "not loaded" is checked as: none of
gigql's tracing, no instrumentation and no exporter is imported."""

from __future__ import annotations

import os
import subprocess
import sys

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
