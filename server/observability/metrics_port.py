"""GIGQL_METRICS_PORT: a second listening socket of the same server that serves `/metrics`
and nothing else, so that a firewall or a Kubernetes port keeps it off the public side."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from server.observability.exposition import PATH

_NOT_FOUND = b'{"errors":[{"message":"Not found.","extensions":{"code":"NOT_FOUND"}}]}'


class MetricsPortOnly:
    def __init__(self, app: ASGIApp, port: int) -> None:
        self.app = app
        self.port = port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server") if scope["type"] in ("http", "websocket") else None
        if server is None or server[1] != self.port or scope["path"] == PATH:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": ""})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 404,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(_NOT_FOUND)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": _NOT_FOUND})
