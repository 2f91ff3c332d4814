"""Pure ASGI middleware (no per-request task or body buffering): request ids, access
logs, the size limit of request bodies and websocket messages, and `EdgeMiddleware`,
the one layer the app puts in front of its routes, which does all of that with the
metrics, the sandbox pages' origin and CORS in a single wrapper per request. The
websocket's log lines carry the request id as well."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import Match, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from integrations.payments.sandbox import page_origin
from resolvers.common.request_ids import request_id_var
from server.edge import media_types
from server.observability.http_metrics import HttpRoutes
from server.sandbox_pages import origin_of

access_log = logging.getLogger("gigql.access")
error_log = logging.getLogger("gigql.errors")

REQUEST_ID_HEADER = b"x-request-id"
# An incoming id (from a proxy or client) is kept if it looks like one; else we make one.
_VALID_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{8,128}$")


def _incoming_request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER and _VALID_REQUEST_ID.match(value):
            return str(value.decode())
    # 128 random bits in 32 hex digits, as uuid4().hex was, for a fifth of its cost: the
    # id only has to be unique, and building a UUID object cost 2.5 % of a small request.
    return os.urandom(16).hex()


class BodySizeLimitMiddleware:
    """Refuse request bodies over `max_bytes` with 413, by header or while streaming, and
    close a websocket with 1009 (message too big) on a message over `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._limit_messages(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, send)
            return
        if declared is not None:
            # The server reads no more than the Content-Length it declares (uvicorn's
            # parsers frame the body by it, and one that is also chunked is refused as
            # ambiguous): the body cannot grow past the limit, and nothing needs watching.
            await self.app(scope, receive, send)
            return

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await self._refuse(scope, send)

    async def _limit_messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`gigql serve` has uvicorn refuse such messages already (`ws_max_size`); this
        holds wherever else the app is served, whatever the server's own limit."""
        gate = _SocketGate(receive, send, self.max_bytes, None)
        await self.app(scope, gate.receive, gate.send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        message = f"Request body is larger than {self.max_bytes} bytes."
        await _send_error(scope, send, 413, message, {"code": "PAYLOAD_TOO_LARGE"})


class _BodyTooLarge(Exception):
    pass


class _SocketGate:
    """A websocket's receive and send: a message over `max_bytes` closes it with 1009, and
    nothing the app sends after that goes out; the accept is counted as an open socket.
    Each frame the app sends passes this one wrapper, and nothing else of the edge's."""

    __slots__ = ("_receive", "_send", "accepted", "closed", "max_bytes", "routes")

    def __init__(
        self, receive: Receive, send: Send, max_bytes: int, routes: HttpRoutes | None
    ) -> None:
        self._receive = receive
        self._send = send
        self.max_bytes = max_bytes
        self.routes = routes
        self.accepted = False
        self.closed = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "websocket.receive" and _size(message) > self.max_bytes:
            self.closed = True
            reason = f"Messages are limited to {self.max_bytes} bytes"
            await self._send({"type": "websocket.close", "code": MESSAGE_TOO_BIG, "reason": reason})
            return {"type": "websocket.disconnect", "code": MESSAGE_TOO_BIG}
        return message

    async def send(self, message: Message) -> None:
        # Once closed here, whatever the app still sends has nowhere to go.
        if self.closed:
            return
        if not self.accepted and message["type"] == "websocket.accept":
            self.accepted = True
            if self.routes is not None:
                self.routes.socket_opened()
        await self._send(message)


class EdgeMiddleware:
    """What every request passes before its route, as one layer instead of five: its id
    (response header, log lines) and access log line, the metrics (requests by route and
    status, open websockets), the sandbox pages' origin, CORS, and the size limit of
    bodies and websocket messages. Each was a layer of its own, with a `send` wrapper
    apiece, about 15 % of a `{ __typename }` request's CPU (bench/README.md, "Issue 16,
    second pass: the edge"); together they wrap `send` once.

    CORS is Starlette's own middleware, answered only for requests with an `Origin`
    header: without one it only adds `Vary: Origin` to the response, which this layer
    does itself. What each answers, and in which order, is as the separate layers did:
    metrics outermost, then the request id, the origin, CORS and the body limit.

    A websocket whose path one of `sockets` serves goes from here straight to that
    route's app, past what Starlette puts between its user middleware and the routes
    (`ExceptionMiddleware`, then the router's three calls). For a websocket those only
    wrap `send` to see whether an HTTP response started, and turn Starlette's own
    `WebSocketException` and `HTTPException` (which our socket endpoints never raise)
    into a close; yet every frame a subscription writes passed the wrapper, and every
    open socket kept their suspended frames and a `WebSocket` for its whole life
    (bench/README.md, "Issue 16, second pass: subscriptions, round two"). The route
    matches as the router would match it (`WebSocketRoute.matches`, with the scope's
    root path, adding `endpoint` and `path_params`); any other websocket path, and
    every HTTP request, goes through the whole stack as before. An exception escaping
    the endpoint reaches the server as it did (Starlette's exception middleware
    re-raised it). The routes' endpoints are ASGI apps (the GraphQL view): a function
    endpoint would look in the scope for the exception handlers this skips.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        cors: Callable[[ASGIApp], ASGIApp],
        routes: HttpRoutes | None = None,
        remember_origin: bool = False,
        sockets: Sequence[WebSocketRoute] = (),
    ) -> None:
        self.app = app
        self.sockets = tuple(sockets)
        self.max_bytes = max_bytes
        self._limited = BodySizeLimitMiddleware(app, max_bytes)
        self._cors = cors(self._limited)
        self.routes = routes
        self.remember_origin = remember_origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self.websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = _incoming_request_id(scope)
        id_header = (REQUEST_ID_HEADER, request_id.encode())
        token = request_id_var.set(request_id)
        origin = page_origin.set(origin_of(scope)) if self.remember_origin else None
        cross_origin = _has_origin(scope)
        status = 0
        vary = not cross_origin  # what CORS adds to an answer to a request without Origin

        async def edge_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                if vary:
                    _vary_on_origin(headers)
                headers.append(id_header)
                message["headers"] = headers
            await send(message)

        try:
            if cross_origin:
                await self._cors(scope, receive, edge_send)
            else:
                await self._limited(scope, receive, edge_send)
        except Exception:
            if status:
                raise  # the response half sent
            # Whatever slipped through answers as an unexpected error in GraphQL (README:
            # API conventions), not as the server's plain text; the log has the traceback.
            # Outside CORS, as it was: the error bears the request id alone.
            vary = False
            error_log.exception("unexpected error serving %s %s", scope["method"], scope["path"])
            unexpected = {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
            await _send_error(scope, edge_send, 500, "Internal server error", unexpected)
        finally:
            seconds = time.perf_counter() - started
            _log_access(scope, status, seconds)
            if origin is not None:
                page_origin.reset(origin)
            request_id_var.reset(token)
            if self.routes is not None:
                # 500 unless a response started: what the server answers for an escape.
                self.routes.count(scope["path"], status or 500, seconds)

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A websocket's whole life at the edge; the app (server/app.py `App`) calls it
        directly, so that an open socket keeps no frame of `__call__`'s dispatch."""
        started = time.perf_counter()
        token = request_id_var.set(_incoming_request_id(scope))
        origin = page_origin.set(origin_of(scope)) if self.remember_origin else None
        gate = _SocketGate(receive, send, self.max_bytes, self.routes)
        try:
            await self._socket_app(scope)(scope, gate.receive, gate.send)
        finally:
            if gate.accepted and self.routes is not None:
                self.routes.socket_closed()
            _log_access(scope, 0, time.perf_counter() - started)
            if origin is not None:
                page_origin.reset(origin)
            request_id_var.reset(token)

    def _socket_app(self, scope: Scope) -> ASGIApp:
        """The app a websocket goes to: its route's own when one of `sockets` matches its
        path (the scope gains what the router would add), else the whole stack."""
        for route in self.sockets:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                return route.app
        return self.app


def _has_origin(scope: Scope) -> bool:
    return any(name == b"origin" for name, _ in scope["headers"])


def _vary_on_origin(headers: list[tuple[bytes, bytes]]) -> None:
    """`Vary: Origin`, joined to any Vary already there, as Starlette's CORSMiddleware
    adds it to an answer to a request without Origin."""
    if not any(name == b"vary" for name, _ in headers):
        headers.append((b"vary", b"Origin"))
        return
    mutable = MutableHeaders(raw=headers)
    mutable["Vary"] = ", ".join([*mutable.getlist("Vary"), "Origin"])


def _log_access(scope: Scope, status: int, seconds: float) -> None:
    # Checked first: at the production level (WARNING) the line is not made at all.
    if not access_log.isEnabledFor(logging.INFO):
        return
    method = scope.get("method", "WEBSOCKET")
    access_log.info(
        "%s %s %s",
        method,
        scope["path"],
        status,
        extra={
            "method": method,
            "path": scope["path"],
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "client": scope["client"][0] if scope.get("client") else None,
        },
    )


def _declared_length(scope: Scope) -> int | None:
    """The body's length as its Content-Length declares it, if that is all that frames
    it: None without one, with one that is not a number, or with a Transfer-Encoding."""
    length = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            if not value.isdigit() or length is not None:
                return None
            length = int(value)
        elif name == b"transfer-encoding":
            return None
    return length


async def _send_error(
    scope: Scope, send: Send, status: int, message: str, extensions: dict[str, str]
) -> None:
    """A response in GraphQL's error shape, in the media type the request negotiates."""
    body = json.dumps({"errors": [{"message": message, "extensions": extensions}]}).encode()
    media_type = media_types.error_media_type(Headers(scope=scope))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", media_types.content_type(media_type).encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


MESSAGE_TOO_BIG = 1009  # RFC 6455


def _size(message: Message) -> int:
    """The bytes of a websocket message, as sent (UTF-8 for a text message)."""
    text = message.get("text")
    if text is None:
        return len(message.get("bytes") or b"")
    return len(text) if text.isascii() else len(text.encode(errors="surrogatepass"))
