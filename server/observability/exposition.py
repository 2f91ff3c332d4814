"""`/metrics`: Prometheus' text format, for whoever may read it.

Who may: with GIGQL_METRICS_PORT, connections to that port only (the main port answers
404, and the metrics port answers nothing else: server/observability/metrics_port.py);
with GIGQL_METRICS_TOKEN, requests bearing it (else 401), on either; in development with
neither, anyone who reaches the (loopback) server; in production with neither, no one
(404): the counts say what the service does and how loaded it is.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from documents.settings import Settings
from server.observability.database import DatabaseGauges
from server.observability.multiprocess import multiprocess

PATH = "/metrics"


class _Registry:
    """The process's own metrics (or, with several workers, every worker's) and the
    database's, as one collector for `generate_latest`."""

    def __init__(self, database: DatabaseGauges) -> None:
        self._database = database

    def collect(self) -> Iterator[Metric]:
        if multiprocess():
            # Read afresh on each scrape: the workers' files change all the time.
            workers = CollectorRegistry(auto_describe=False)
            MultiProcessCollector(workers)  # type: ignore[no-untyped-call]
            yield from workers.collect()
        else:
            yield from REGISTRY.collect()
        yield from self._database.collect()


class MetricsEndpoint:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._token = (
            settings.metrics_token.get_secret_value().encode() if settings.metrics_token else None
        )
        self._database = DatabaseGauges()
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_Registry(self._database))

    async def serve(self, request: Request) -> Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        await self._database.refresh()
        # Reading the workers' files is file I/O: off the event loop.
        body = await run_in_threadpool(generate_latest, self._registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    def _refusal(self, request: Request) -> Response | None:
        settings = self.settings
        if not settings.metrics:
            return _not_found()
        if settings.metrics_port is not None:
            server = request.scope.get("server")
            if not server or server[1] != settings.metrics_port:
                return _not_found()
        if self._token is not None:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), self._token
            ):
                response = _error(401, "Send the metrics token as a bearer token.", "UNAUTHORIZED")
                response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
                return response
            return None
        if settings.production and settings.metrics_port is None:
            return _not_found()
        return None


def _not_found() -> Response:
    return _error(404, "Not found.", "NOT_FOUND")


def _error(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status
    )
