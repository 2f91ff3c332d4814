"""The shape of what clients send, checked right after decoding and before Strawberry
reads it: the fields of a GraphQL request (an HTTP body, each item of a batch, a
websocket subscription's payload) and the messages of both websocket protocols.

Strawberry indexes these fields as it finds them: a string where an object belongs, a
number for a query or a list for an id raised TypeError deep in a handler, a 500 over
HTTP and a dead socket over websocket. Here each gets a clear refusal instead: a 400
over HTTP, and a close with 4400 (graphql-transport-ws's code for an invalid message)
over websocket, in both protocols.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from json import JSONDecodeError

from starlette.websockets import WebSocketDisconnected, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived

# Message types of graphql-transport-ws and of the legacy graphql-ws that the handlers
# index without looking. They answer everything else (a connection_init payload that is
# not an object, an unknown type) as their protocol says.
_WITH_OPERATION = frozenset({"subscribe", "start"})
_WITH_ID = frozenset({"subscribe", "start", "complete", "stop"})


def operation_problem(
    query: object, variables: object, operation_name: object, extensions: object
) -> str | None:
    """What is wrong with the fields of one GraphQL request, or None."""
    if query is not None and not isinstance(query, str):
        return "`query` must be a string."
    if variables is not None and not isinstance(variables, dict):
        return "`variables` must be an object or null."
    if operation_name is not None and not isinstance(operation_name, str):
        return "`operationName` must be a string or null."
    if extensions is not None and not isinstance(extensions, dict):
        return "`extensions` must be an object or null."
    return None


def ws_message_problem(message: object) -> str | None:
    """What is wrong with a decoded websocket message, or None."""
    if not isinstance(message, dict):
        return "A message must be a JSON object"
    kind = message.get("type")
    if not isinstance(kind, str):
        return "A message needs a string `type`"
    if "id" in message and not isinstance(message["id"], str):
        return "A message `id` must be a string"
    if kind in _WITH_ID and "id" not in message:
        return f"A {kind} message needs an `id`"
    payload = message.get("payload")
    if kind in _WITH_OPERATION:
        if not isinstance(payload, dict):
            return f"A {kind} message needs a payload object"
        named = "documentId" in payload or "persistedQuery" in (payload.get("extensions") or {})
        if not isinstance(payload.get("query"), str) and not named:
            # Or a document named instead (schema/persisted/policy.py checks the name).
            return "The payload's `query` must be a string"
        problem = operation_problem(
            payload.get("query"),
            payload.get("variables"),
            payload.get("operationName"),
            payload.get("extensions"),
        )
        if problem is not None:
            return f"The payload's {problem.rstrip('.')}"
    return None


class CheckedWebSocketAdapter(ASGIWebSocketAdapter):
    """Strawberry's websocket adapter, which decodes with the view's `decode_json`
    (server/strict_json.py), plus the shape of each message: a message that is not one
    of the protocol's closes the socket with 4400 before any handler sees it."""

    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        # Strawberry's own loop (ASGIWebSocketAdapter.iter_json, starlette's receive_text)
        # and the check in one generator: an idle socket waits here for its whole life,
        # and each generator and frame in between was kept as long (bench/README.md,
        # "Issue 16, third pass: per-connection memory").
        ws = self.ws
        while ws.application_state != WebSocketState.DISCONNECTED:
            if ws.application_state != WebSocketState.CONNECTED:  # as receive_text refuses
                raise WebSocketDisconnected(
                    'WebSocket is not connected. Need to call "accept" first.'
                )
            received = await ws.receive()
            if received["type"] == "websocket.disconnect":
                return  # the client went: the loop ends, as Strawberry's does
            if "text" not in received:
                raise NonTextMessageReceived
            try:
                message = self.view.decode_json(received["text"])
            except JSONDecodeError as error:
                if ignore_parsing_errors:
                    continue
                raise NonJsonMessageReceived from error
            problem = ws_message_problem(message)
            if problem is not None:
                await self.close(4400, problem)
                return
            yield message
