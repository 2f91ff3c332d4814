"""Pure ASGI middleware (no per-request task or body buffering): request ids, access
logs and the size limit of request bodies and websocket messages. The websocket's log
lines carry the request id as well."""

from __future__ import annotations

import json
import logging
import os
import re
import time

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from resolvers.common.request_ids import request_id_var
from server.edge import media_types

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


class RequestContextMiddleware:
    """Give every request an id (response header, log lines) and log one line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (REQUEST_ID_HEADER, request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if scope["type"] != "http" or status:
                raise  # the server closes the websocket, or the response half sent
            # Whatever slipped through answers as an unexpected error in GraphQL (README:
            # API conventions), not as the server's plain text; the log has the traceback.
            error_log.exception("unexpected error serving %s %s", scope["method"], scope["path"])
            unexpected = {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
            await _send_error(scope, send_with_id, 500, "Internal server error", unexpected)
        finally:
            access_log.info(
                "%s %s %s",
                scope.get("method", "WEBSOCKET"),
                scope["path"],
                status,
                extra={
                    "method": scope.get("method", "WEBSOCKET"),
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "client": scope["client"][0] if scope.get("client") else None,
                },
            )
            request_id_var.reset(token)


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
        closed = False

        async def limited_receive() -> Message:
            nonlocal closed
            message = await receive()
            if message["type"] == "websocket.receive" and _size(message) > self.max_bytes:
                closed = True
                reason = f"Messages are limited to {self.max_bytes} bytes"
                await send({"type": "websocket.close", "code": MESSAGE_TOO_BIG, "reason": reason})
                return {"type": "websocket.disconnect", "code": MESSAGE_TOO_BIG}
            return message

        async def open_send(message: Message) -> None:
            # Once closed here, whatever the app still sends has nowhere to go.
            if not closed:
                await send(message)

        await self.app(scope, limited_receive, open_send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        message = f"Request body is larger than {self.max_bytes} bytes."
        await _send_error(scope, send, 413, message, {"code": "PAYLOAD_TOO_LARGE"})


class _BodyTooLarge(Exception):
    pass


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
