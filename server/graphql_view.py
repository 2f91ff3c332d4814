"""`/graphql` over HTTP and websocket.

Strawberry's ASGI view does the transport work (GET/POST, batching, GraphiQL,
websocket protocols). Three things are ours: single operations go straight from the
prepared-document cache to graphql-core's executor, skipping a per-request parse,
validation and extension pipeline; transport errors answer in GraphQL's JSON error
shape instead of plain text; and websockets are tracked so that a stopping server can
close them politely (realtime/going_away.py).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Coroutine, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, cast

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import (
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    get_operation_ast,
)
from graphql.execution import execute
from starlette.background import BackgroundTask
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.execution import optimized_is_awaitable
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.async_base_view import AsyncWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.schema._graphql_core import execution_context_class_kwargs
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
    _OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
    SubscribeMessage,
    SubscribeMessagePayload,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage as LegacyConnectionInit,
)
from strawberry.subscriptions.protocols.graphql_ws.types import (
    OperationMessage as LegacyMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import (
    StartMessage,
    StartMessagePayload,
)
from strawberry.types import ExecutionResult, SubscriptionExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from documents.errors import DomainError
from realtime.going_away import OpenSockets
from resolvers.accounts.auth.password_allowance import password_scope
from resolvers.accounts.auth.socket_sessions import SESSION_ENDED_CLOSE, SocketSession
from resolvers.common.request_ids import request_id_var
from resolvers.common.services import RequestMeta
from schema.common.context import Context
from schema.common.error_reporting import coded_error, report_errors
from schema.common.operation_metrics import Outcome
from schema.common.prepared import unknown_operation
from schema.common.rate_limits import (
    RATE_LIMITED,
    RateLimited,
    count_http_operations,
    count_socket_connection,
)
from schema.common.shared_events import shared_results
from schema.live.framed import FrameTarget, frame_target
from schema.live.hub_writer import HubWritten
from schema.persisted.policy import PersistedQueryRefused, Requested, admin_token
from schema.schema import GigqlSchema
from server import strict_json
from server.edge import answer_json, media_types
from server.edge.headers import HTTPRequest
from server.edge.media_types import GRAPHQL_RESPONSE, JSON, JSONBodyRequestAdapter
from server.graphiql import page as graphiql_page
from server.persisted.requests import NamedRequestData, requests_of
from server.request_shape import CheckedWebSocketAdapter
from server.runtime import Runtime

ACK = cast("UnsetType", UNSET)  # a plain connection_ack, without a payload
MAX_SUBSCRIPTIONS_PER_CONNECTION = 100

_HTTP_ERROR_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def persisted_refusal_response(refused: PersistedQueryRefused, media_type: str) -> JSONResponse:
    """A persisted query refused: Apollo's answer (its status and error), never cached, for
    a CDN must not keep a PERSISTED_QUERY_NOT_FOUND in place of the result."""
    response = graphql_error_response(
        refused.status, refused.message, refused.code, media_type=media_type
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def graphql_error_response(
    status: int,
    message: str,
    code: str | None = None,
    *,
    media_type: str = JSON,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An answer of GraphQL's error shape, without `data`, in the media type negotiated
    for the request (server/edge/media_types.py `error_media_type`)."""
    error = {
        "message": message,
        "extensions": {"code": code or _HTTP_ERROR_CODES.get(status, "BAD_REQUEST")},
    }
    return graphql_errors_response(status, [error], media_type=media_type, headers=headers)


def graphql_errors_response(
    status: int,
    errors: Sequence[Mapping[str, Any]],
    *,
    media_type: str = JSON,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    response = JSONResponse({"errors": errors}, status_code=status, headers=headers)
    response.headers["content-type"] = media_types.content_type(media_type)
    return response


_CONTENT_TYPES = {
    media_type: media_types.content_type(media_type).encode()
    for media_type in (JSON, GRAPHQL_RESPONSE)
}


class _SubResponse(Response):
    """What resolvers set on the answer (status, headers, cookies, background), and the
    media type it is sent in: Strawberry's empty Response, built without working out the
    headers of a body it never has (a per-request cost, bench/README.md "Issue 16,
    second pass: the edge")."""

    def __init__(self, media_type: str | None) -> None:
        self.status_code = None  # type: ignore[assignment]  # as Strawberry's: unset
        self.media_type = media_type
        self.background = None
        self.body = b""
        self.raw_headers = []


class _Answer(Response):
    """A response whose headers the view has made ready (`create_response`)."""

    def __init__(
        self,
        body: bytes,
        status_code: int,
        raw_headers: list[tuple[bytes, bytes]],
        background: BackgroundTask | None,
    ) -> None:
        self.body = body
        self.status_code = status_code
        self.raw_headers = raw_headers
        self.background = background


class MethodNotAllowed(HTTPException):
    """405, with the methods that would be (the `Allow` header RFC 9110 asks for)."""

    def __init__(self, reason: str, allow: str) -> None:
        super().__init__(405, reason)
        self.allow = allow


class NotExecuted(ExecutionResult):
    """A request error (the GraphQL specification's term): the document does not parse
    or validate, names no operation it holds, or its variables do not coerce. Nothing
    ran, so an `application/graphql-response+json` answer has no `data` and is a 400."""


class _TextFrames:
    """Writing a frame already serialised (a shared or pre-framed result), on either
    protocol's handler."""

    websocket: AsyncWebSocketAdapter

    async def _send_text(self, text: str) -> None:
        websocket = cast("ASGIWebSocketAdapter", self.websocket)
        try:
            await websocket.ws.send_text(text)
        except WebSocketDisconnect as error:  # as Strawberry's send_json
            raise WebSocketDisconnected from error


class TransportWSHandler(_TextFrames, BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws as Strawberry speaks it, with two changes: a query or mutation
    holds off a graceful close until its result is sent, and an operation that fails
    before it runs (a document that does not parse, an unknown operation name, besides
    what fails validation, limits or its variables) gets an `error` message for its id
    instead of closing the socket, and every other subscription on it, with 4400."""

    schema: GigqlSchema

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        # Admitting, counting and preparing it come first, in GigqlSchema.stream. This runs
        # in the operation's own task: a framed subscription writes its results itself,
        # under this operation's id (schema/live/framed.py).
        async def send_unless_completed(text: str) -> None:
            # As Strawberry's own `send_next`: nothing after the operation's `error` or
            # `complete` (a session ending sends `error` before it cancels the task).
            if not operation.completed:
                await self._send_text(text)

        frame_target.set(
            FrameTarget(operation.id, legacy=False, send_text=send_unless_completed, hub=True)
        )
        with self._holding_off_close(operation), password_scope():
            await super().run_operation(operation)

    async def _send_result_stream(
        self, operation: Operation[Context, None], result_source: Any
    ) -> None:
        """A framed subscription written from the hub (schema/live/hub_writer.py) writes
        what it replays, then stands in for this task as the operation's: this task
        ends without `complete` (as Strawberry's own does when its stream is closed)."""
        if not isinstance(result_source, HubWritten):
            await super()._send_result_stream(operation, result_source)
        elif await result_source.run(operation):
            raise _OperationStreamClosed

    def _holding_off_close(
        self, operation: Operation[Context, None]
    ) -> AbstractContextManager[None]:
        """A query or mutation holds off a graceful close until its result is sent; a
        subscription holds it off per event instead (schema/notifications/live.py `delivered`). Told
        apart by the prepared document if the text is known already: nothing is prepared
        before the operation is admitted and counted, so a text new to this process holds
        it off like a query (a subscription's for its life, up to the drain timeout)."""
        socket = self.context.socket
        query = operation.query
        if socket is None or not isinstance(query, str):
            return nullcontext()
        known = self.schema.documents.cached(query)
        document = known.document if known is not None else None
        ast = get_operation_ast(document, operation.operation_name) if document else None
        if ast is not None and ast.operation is OperationType.SUBSCRIPTION:
            return nullcontext()
        return socket.working()

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        # Its timeout no longer applies (Strawberry's task would only wake to see that):
        # not kept, waiting, for the socket's life.
        timeout, self.connection_init_timeout_task = self.connection_init_timeout_task, None
        if timeout is not None:
            timeout.cancel()
        if self.connection_acknowledged and self.context.session is not None:
            self.context.session.watch(self._end_session)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        """The text the payload sends or names (schema/persisted/policy.py); one refused
        gets an `error` for its id, and the socket goes on."""
        if not self.connection_acknowledged:
            await super().handle_subscribe(message)  # closes with 4401
            return
        try:
            text = await socket_document(self.schema, self.context, message["payload"])
        except PersistedQueryRefused as refused:
            error = {"id": message["id"], "type": "error", "payload": [refused.error().formatted]}
            await self.send_message(cast("Message", error))
            return
        payload = cast("SubscribeMessagePayload", {**message["payload"], "query": text})
        await super().handle_subscribe({**message, "payload": payload})

    async def shutdown(self) -> None:
        try:
            await super().shutdown()
        finally:
            if self.context.session is not None:
                await self.context.session.stop()

    async def _end_session(self, error: DomainError) -> None:
        """Each running operation gets an `error` saying why, then the socket closes."""
        payload = [coded_error(error).formatted]
        for operation in list(self.operations.values()):
            await operation.send_operation_message(
                {"id": operation.id, "type": "error", "payload": payload}
            )
            if operation.task is not None:
                operation.task.cancel()
        await _close_if_open(self.websocket, error)

    async def send_message(self, message: Message) -> None:
        payload = message.get("payload")
        if message["type"] == "next" and isinstance(payload, dict) and len(payload) == 1:
            data_json = shared_results.data_json(payload.get("data"))
            if data_json is not None:
                # A result shared by several subscribers (schema/common/shared_events.py): its
                # JSON is made once, and only the id differs from one message to the next.
                await self._send_text(
                    f'{{"id":{json.dumps(message["id"])},"type":"next",'
                    f'"payload":{{"data":{data_json}}}}}'
                )
                return
        await super().send_message(message)

    @staticmethod
    def _get_pre_execution_close_reason(error: GraphQLError) -> str | None:
        """Nothing an operation's own text does closes the socket: a syntax error, an
        operation name the document does not hold, ... answer that operation alone."""
        return None


_LEGACY_MESSAGES = frozenset({"connection_init", "connection_terminate", "start", "stop"})
"""What a client of the legacy protocol sends (subscriptions-transport-ws's PROTOCOL.md)."""


class LegacyWSHandler(_TextFrames, BaseGraphQLWSHandler[Context, None]):
    """The legacy `graphql-ws` protocol names no initialisation timeout, but a socket that
    never initialises would hold its slot for ever: it gets graphql-transport-ws's. A
    message of a type the protocol does not have is answered, not ignored, as the
    protocol's own server does: an `error` for its operation id, else a
    `connection_error`; the socket stays open."""

    async def handle_message(self, message: LegacyMessage) -> None:
        kind = message["type"]
        if kind in _LEGACY_MESSAGES:
            await super().handle_message(message)
            return
        error = GraphQLError(f"Unknown message type: {kind}", extensions={"code": "BAD_REQUEST"})
        operation_id = message.get("id")
        if isinstance(operation_id, str):  # request_shape.py made sure an id is a string
            await self.send_message(
                {"type": "error", "id": operation_id, "payload": error.formatted}
            )
        else:
            payload = cast("dict[str, object]", error.formatted)
            await self.send_message({"type": "connection_error", "payload": payload})

    schema: GigqlSchema

    async def handle(self) -> None:
        self._deadline: asyncio.Task[None] | None = asyncio.create_task(
            self._close_unless_initialised()
        )
        try:
            await super().handle()
        finally:
            if self._deadline is not None:
                self._deadline.cancel()
            if self.context.session is not None:
                await self.context.session.stop()

    async def handle_connection_init(self, message: LegacyConnectionInit) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self._deadline is not None:
            # Not kept, waiting, for the socket's life.
            self._deadline.cancel()
            self._deadline = None
        if self.connection_acknowledged and self.context.session is not None:
            self.context.session.watch(self._end_session)

    async def handle_start(self, message: StartMessage) -> None:
        """As graphql-transport-ws's `subscribe`: the text the payload sends or names."""
        if not self.connection_acknowledged:
            await super().handle_start(message)  # closes with 4401
            return
        try:
            text = await socket_document(self.schema, self.context, message["payload"])
        except PersistedQueryRefused as refused:
            error = refused.error().formatted
            await self.send_message({"type": "error", "id": message["id"], "payload": error})
            return
        payload = cast("StartMessagePayload", {**message["payload"], "query": text})
        await super().handle_start({**message, "payload": payload})

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        # The operation's own task: a framed subscription writes its results itself, under
        # this operation's id, in this protocol's `data` frame (schema/live/framed.py).
        frame_target.set(FrameTarget(operation_id, legacy=True, send_text=self._send_text))
        await super().handle_async_results(operation_id, query, operation_name, variables)

    async def _end_session(self, error: DomainError) -> None:
        """Each running operation gets an `error` saying why (and `complete`), then the
        socket closes."""
        payload = coded_error(error).formatted
        for operation_id in list(self.tasks):
            await self.send_message({"type": "error", "id": operation_id, "payload": payload})
            await self.cleanup_operation(operation_id)
        await _close_if_open(self.websocket, error)

    async def _close_unless_initialised(self) -> None:
        await asyncio.sleep(self.view.connection_init_wait_timeout.total_seconds())
        if not self.connection_acknowledged:
            await self.websocket.close(code=4408, reason="Connection initialisation timeout")


class GraphQLView(GraphQL[Context, None]):
    schema: GigqlSchema
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler
    websocket_adapter_class = CheckedWebSocketAdapter
    request_adapter_class = JSONBodyRequestAdapter

    def __init__(self, schema: GigqlSchema) -> None:
        settings = schema.settings
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            # The legacy protocol's `ka`; graphql-transport-ws clients ping when they like.
            keep_alive=True,
            keep_alive_interval=settings.ws_keep_alive_interval.total_seconds(),
            connection_init_wait_timeout=settings.ws_connection_init_timeout,
            max_subscriptions_per_connection=MAX_SUBSCRIPTIONS_PER_CONNECTION,
            allowed_origins=settings.cors_origins,
        )
        self.sockets = OpenSockets()

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Coroutine[Any, Any, None]:
        # Not a coroutine function: the server awaits the coroutine returned, and an open
        # websocket keeps no suspended frame of this call for its life.
        if scope["type"] == "websocket":
            return self._socket(WebSocket(scope, receive=receive, send=send))
        if scope["type"] != "http":
            return super().__call__(scope, receive, send)
        return self._http(scope, receive, send)

    async def _socket(self, websocket: WebSocket) -> None:
        """Strawberry's `run` for a websocket, with the protocol handler's loop awaited
        here, in the one frame the socket keeps of this view for its life (three before:
        `__call__`, `run`, and the handler's; bench/README.md, "Issue 16, third pass:
        per-connection memory")."""
        # Each operation opens its own scope (run_operation); the legacy protocol, which
        # runs no mutations, shares this one.
        with self.sockets.opened(websocket), password_scope():
            handler = await self._socket_handler(websocket)
            if handler is not None:
                await handler.handle()

    async def _socket_handler(
        self, websocket: WebSocket
    ) -> TransportWSHandler | LegacyWSHandler | None:
        """What Strawberry's `run` does for a websocket before its handler's loop, in its
        order: the origin check (before any of our hooks), the subprotocol, the accept,
        the context; None once it has refused or closed the socket."""
        if not self._check_websocket_origin(websocket):
            await self.reject_websocket(websocket)
            return None
        subprotocol = await self.pick_websocket_subprotocol(websocket)
        response = await self.create_websocket_response(websocket, subprotocol)
        # Strawberry's adapter is typed for a view of no particular context; ours has one.
        adapter = self.websocket_adapter_class(self, websocket, response)  # type: ignore[arg-type]
        context = await self.get_context(websocket, response=response)
        if subprotocol == GRAPHQL_TRANSPORT_WS_PROTOCOL:
            return TransportWSHandler(
                view=self,
                websocket=adapter,
                context=context,
                root_value=None,  # as `get_root_value` gives
                schema=self.schema,
                connection_init_wait_timeout=self.connection_init_wait_timeout,
                max_subscriptions_per_connection=self.max_subscriptions_per_connection,
            )
        if subprotocol == GRAPHQL_WS_PROTOCOL:
            return LegacyWSHandler(
                view=self,
                websocket=adapter,
                context=context,
                root_value=None,
                schema=self.schema,
                keep_alive=self.keep_alive,
                keep_alive_interval=self.keep_alive_interval,
                max_subscriptions_per_connection=self.max_subscriptions_per_connection,
            )
        await adapter.close(4406, "Subprotocol not acceptable")
        return None

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = HTTPRequest(scope, receive)
        try:
            with password_scope():  # one for the whole request, a batch included
                response: Response = await self.run_http(request)
        except HTTPException as error:
            allow = error.allow if isinstance(error, MethodNotAllowed) else "GET, POST"
            response = graphql_error_response(
                error.status_code,
                error.reason,
                media_type=media_types.error_media_type(request.headers),
                headers={"Allow": allow} if error.status_code == 405 else None,
            )
        except RateLimited as limited:
            response = graphql_errors_response(
                429,
                [limited.error().formatted],
                media_type=media_types.error_media_type(request.headers),
                headers={"Retry-After": str(limited.retry_after)},
            )
        except PersistedQueryRefused as refused:
            response = persisted_refusal_response(
                refused, media_types.error_media_type(request.headers)
            )
        await response(scope, receive, send)

    async def run_http(self, request: Request) -> Response:
        """Strawberry's `run` for an HTTP request, less what cannot apply here: without an
        HTTP stream transport (none is configured: subscriptions are served over
        websocket) a result is an ExecutionResult or a batch's list of them, never a
        stream to tell apart by a runtime-checked protocol, which alone cost about 4 % of
        a `{ __typename }` request (bench/README.md, "Issue 16: per-request cost")."""
        if self._stream_transport_map:
            return await self.run(request)
        request_adapter = self.request_adapter_class(request)
        sub_response = await self.get_sub_response(request)
        context = await self.get_context(request, response=sub_response)
        if not self.is_request_allowed(request_adapter):
            raise HTTPException(405, "GraphQL only supports GET and POST requests.")
        if self.should_render_graphql_ide(request_adapter):
            if self.graphql_ide:
                return await self.render_graphql_ide(request)
            raise HTTPException(404, "Not Found")
        try:
            request_data = await self.parse_http_body(request_adapter)
        except json.JSONDecodeError as error:  # as Strawberry's `run` answers them
            raise HTTPException(400, "Unable to parse request body as JSON") from error
        except KeyError as error:
            raise HTTPException(400, "File(s) missing in form data") from error
        result = await self.execute_operation(
            request, request_adapter, request_data, context, None, sub_response
        )
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse]
        if isinstance(result, list):
            response_data = [await self._processed(request, single) for single in result]
        else:
            response_data = await self._processed(request, cast("ExecutionResult", result))
        return self.create_response(response_data, sub_response)

    async def _processed(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        processed = await self.process_result(request, result)
        if result.errors:
            self._handle_errors(result.errors, processed)
        return processed

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        # Our own page and packaged files in place of Strawberry's CDN-loaded ones.
        return graphiql_page.page()

    def get_websocket_headers(self, request: WebSocket) -> Mapping[str, str]:
        # Not `request.headers`, which the WebSocket would keep, parsed, for its life.
        return Headers(scope=request.scope)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        runtime: Runtime = request.app.state.runtime
        # A websocket's headers are read once, here, and not kept parsed on it.
        headers = (
            Headers(scope=request.scope) if isinstance(request, WebSocket) else request.headers
        )
        return Context(
            services=runtime.services,
            meta=RequestMeta(
                ip=request.client.host if request.client else None,
                user_agent=headers.get("user-agent"),
                request_id=request_id_var.get(),
            ),
            request=request,
            response=response if isinstance(response, Response) else None,
            access_token=bearer_token(headers.get("authorization")),
            socket=self.sockets.of(request) if isinstance(request, WebSocket) else None,
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Open a websocket's session with the same access token as HTTP, sent in
        `connection_init` (`{"Authorization": "Bearer ..."}` or `{"accessToken": ...}`).
        A bad token refuses the connection, and so does none unless anonymous sockets
        are allowed (resolvers/accounts/auth/socket_sessions.py)."""
        params = context.connection_params or {}
        # Read here alone: not kept for the socket's life (the token, once verified, is
        # kept as `access_token`; bench/README.md, "Issue 16, third pass").
        context.connection_params = None
        given = params.get("Authorization") or params.get("authorization")
        token = bearer_token(given) if isinstance(given, str) else params.get("accessToken")
        try:
            await count_socket_connection(
                self.schema, context, token if isinstance(token, str) else None
            )
        except RateLimited as limited:
            refusal = {"message": limited.message, "code": RATE_LIMITED}
            raise ConnectionRejectionError(refusal | {"retryAfter": limited.retry_after}) from None
        if token is None:
            if self.schema.settings.ws_allow_anonymous:
                return ACK
            raise ConnectionRejectionError(
                {"message": "Send an access token with connection_init.", "code": "UNAUTHENTICATED"}
            )
        if not isinstance(token, str):
            raise ConnectionRejectionError({"message": "The access token must be a string."})
        services = context.services
        try:
            context.session = await SocketSession.open(services.tokens, services.broker, token)
        except DomainError as error:
            raise ConnectionRejectionError(
                {"message": str(error), "code": error.code.value}
            ) from error
        context.access_token = token
        return ACK

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        """The answer's headers and status as resolvers set them, and its media type, as
        the request's `Accept` asks (server/edge/media_types.py); None if it allows
        none we send, which is refused before anything is read or run."""
        return _SubResponse(media_types.response_media_type(request.headers.get("accept")))

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        """In the negotiated media type. As `application/graphql-response+json`, a single
        result without `data` (a request error: NotExecuted) is a 400, as the
        GraphQL-over-HTTP specification asks; as `application/json` it is a 200. A batch,
        which the specification does not describe, is a 200 either way."""
        media_type = sub_response.media_type or JSON
        status = sub_response.status_code or 200
        single = isinstance(response_data, dict)
        if media_type == GRAPHQL_RESPONSE and single and "data" not in response_data:
            status = 400
        encoded = answer_json.dumps(response_data)
        headers = [
            (b"content-length", str(len(encoded)).encode()),
            (b"content-type", _CONTENT_TYPES[media_type]),
            *sub_response.raw_headers,
        ]
        return _Answer(encoded, status, headers, sub_response.background)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        processed = await super().process_result(request, result)
        if isinstance(result, NotExecuted) and (
            media_types.response_media_type(request.headers.get("accept")) == GRAPHQL_RESPONSE
        ):
            # What never ran has no `data` (not even null) in this media type.
            del processed["data"]
        return processed

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        if media_types.response_media_type(request.headers.get("accept")) is None:
            raise HTTPException(
                406,
                f"Accept {GRAPHQL_RESPONSE} or {JSON}: GraphQL answers in no other media type.",
            )
        if request.method == "POST":
            problem = media_types.body_problem(request.headers.get("content-type"))
            if problem is not None:
                raise HTTPException(415, problem)
        # Decoded here rather than by Strawberry, which drops `documentId`
        # (server/persisted/requests.py); each item is checked for shape, batches too.
        data = (
            self.parse_query_params(request.query_params)
            if request.method == "GET"
            else self.parse_json(await request.get_body())
        )
        # Without HTTP stream transports (see `run`), every request is plain HTTP.
        transport = (
            self._get_stream_transport_from_headers(request.headers)
            if self._stream_transport_map
            else None
        )
        protocol = transport.protocol if transport else "http"
        if isinstance(data, list):
            self._validate_batch_request(data, protocol=protocol)
        requests = requests_of(data, protocol)
        return cast("GraphQLRequestData | list[GraphQLRequestData]", requests)

    def decode_json(self, data: str | bytes) -> object:
        # HTTP bodies, GET parameters and websocket messages alike (server/strict_json.py).
        return strict_json.loads(data)

    def parse_json(self, data: str | bytes) -> Any:
        try:
            return strict_json.loads(data)
        except strict_json.MalformedJSON as error:
            raise HTTPException(400, f"Unable to parse request body as JSON: {error}.") from None

    async def execute_operation(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: Context,
        root_value: None,
        sub_response: Response,
    ) -> ExecutionResult | list[ExecutionResult] | SubscriptionExecutionResult:
        operations = request_data if isinstance(request_data, list) else [request_data]
        for operation in operations:
            await self.resolve_document(context, operation)
        try:
            await self.count(context, operations)
        except RateLimited:
            metrics = self.schema.http_metrics
            for data in operations:
                known = self.schema.documents.cached(data.query) if data.query else None
                metrics.record(*metrics.label(known, data.operation_name), Outcome.RATE_LIMITED)
            raise
        if self._stream_transport_map:
            return await super().execute_operation(
                request, request_adapter, request_data, context, root_value, sub_response
            )
        # What Strawberry's does without stream transports, less its work for them.
        if isinstance(request_data, list):
            results = [
                self.execute_single(
                    request, request_adapter, sub_response, context, root_value, data
                )
                for data in request_data
            ]
            return list(await asyncio.gather(*results))
        return await self.execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )

    async def resolve_document(self, context: Context, operation: GraphQLRequestData) -> None:
        """Fill in the text an operation names (schema/persisted/policy.py); raises
        PersistedQueryRefused, answered for the whole request, a batch's included."""
        if isinstance(operation, NamedRequestData) and operation.requested is not None:
            tokens, token = context.services.tokens, context.access_token
            resolved = await self.schema.persisted.resolve(
                operation.requested, lambda: admin_token(tokens, token)
            )
            operation.query, operation.resolved = resolved.text, resolved

    async def count(self, context: Context, operations: list[GraphQLRequestData]) -> None:
        """Count a request's operations against the rate limits, before any runs."""
        await count_http_operations(self.schema, context, operations)

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        if not request_data.query:
            raise HTTPException(400, "No GraphQL query found in the request.")
        schema = self.schema
        metrics = schema.http_metrics
        started = time.perf_counter()
        prepared = await schema.documents.prepared_off_loop(schema._schema, request_data.query)
        if prepared.errors or prepared.document is None:
            outcome = metrics.refused(prepared)
            metrics.record(*metrics.label(None, None), outcome, time.perf_counter() - started)
            return NotExecuted(data=None, errors=prepared.errors)
        if isinstance(request_data, NamedRequestData) and request_data.resolved is not None:
            await schema.persisted.share(request_data.resolved)  # a valid APQ registration
        operation_name = request_data.operation_name or None  # an empty name is no name
        unknown = unknown_operation(prepared.document, operation_name)
        if unknown is not None:
            metrics.record(
                *metrics.label(None, None), Outcome.INVALID, time.perf_counter() - started
            )
            return NotExecuted(data=None, errors=[unknown])
        operation = get_operation_ast(prepared.document, operation_name)
        assert operation is not None  # as unknown_operation found
        name, kind = metrics.label_of(operation)
        metrics.name_request(name, kind)
        refusal = _transport_refusal(operation, request_adapter)
        if refusal is not None:
            metrics.record(name, kind, Outcome.INVALID, time.perf_counter() - started)
            raise refusal
        result: Any = execute(
            schema._schema,
            prepared.document,
            root_value=root_value,
            context_value=context,
            variable_values=request_data.variables,
            operation_name=operation_name,
            is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]
            hide_suggestions=schema.documents.hide_suggestions,
            **execution_context_class_kwargs(schema.execution_context_class),
        )
        if inspect.isawaitable(result):
            result = await result
        if result.errors:
            report_errors(result.errors, context.meta.request_id, schema.settings.debug)
            if result.data is None and all(error.path is None for error in result.errors):
                # Errors outside any field: the variables did not coerce, nothing ran.
                metrics.record(name, kind, Outcome.INVALID, time.perf_counter() - started)
                return NotExecuted(data=None, errors=result.errors)
        outcome = Outcome.ERRORS if result.errors else Outcome.OK
        metrics.record(name, kind, outcome, time.perf_counter() - started)
        return ExecutionResult(data=result.data, errors=result.errors)


async def socket_document(schema: GigqlSchema, context: Context, payload: Mapping[str, Any]) -> str:
    """The text a websocket operation runs: sent, or named by `documentId` or Apollo's
    `persistedQuery`; the socket's access token decides an admin's exemption."""
    requested = Requested.of(
        payload.get("query"), payload.get("documentId"), payload.get("extensions")
    )
    tokens, token = context.services.tokens, context.access_token
    resolved = await schema.persisted.resolve(requested, lambda: admin_token(tokens, token))
    return resolved.text


def _transport_refusal(
    operation: OperationDefinitionNode, request: AsyncHTTPRequestAdapter
) -> HTTPException | None:
    """Why HTTP does not run the operation a request names, if it does not."""
    if operation.operation is OperationType.SUBSCRIPTION:
        return HTTPException(400, "Subscriptions are served over websocket on this same path.")
    if operation.operation is OperationType.MUTATION and request.method == "GET":
        return MethodNotAllowed("Mutations must be sent with POST.", allow="POST")
    return None


async def _close_if_open(websocket: AsyncWebSocketAdapter, error: DomainError) -> None:
    socket = cast("ASGIWebSocketAdapter", websocket).ws
    if socket.application_state is WebSocketState.CONNECTED:
        await socket.close(code=SESSION_ENDED_CLOSE, reason=error.code.value)


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    # Any other scheme is kept whole, so that it fails as an invalid token, not as "missing".
    return token.strip() if scheme.lower() == "bearer" else header
