"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from server.runtime import Runtime

log = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0


async def healthz(request: Request) -> JSONResponse:
    """The process is up and serving; says nothing of its dependencies."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready when the database and the broker both answer, each within a short timeout."""
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    database, broker = await asyncio.gather(
        _check(runtime.database.command("ping")), _check(runtime.services.broker.ping())
    )
    checks = {"database": database, "broker": broker}
    ready = all(status == "ok" for status in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )


async def _check(probe: object) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await probe  # type: ignore[misc]
    except Exception as error:
        log.warning("readiness check failed: %s", error)
        return "unavailable"
    return "ok"
