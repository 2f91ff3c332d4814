"""A plain GraphQL-over-websocket client for the tests that need every message and frame:
protocol errors, close codes, the legacy protocol. Others use the `gql` client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
WAIT = 5.0


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://") + "/graphql"


class WsClient:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def receive(self, timeout: float = WAIT) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(
            await asyncio.wait_for(self.connection.recv(), timeout)
        )
        return message

    async def init(self, token: str | None = None) -> dict[str, Any]:
        payload = {"Authorization": f"Bearer {token}"} if token else {}
        await self.send({"type": "connection_init", "payload": payload})
        return await self.receive()

    async def subscribe(
        self, operation_id: str, query: str, variables: dict[str, Any] | None = None
    ) -> None:
        kind = "subscribe" if self.connection.subprotocol == TRANSPORT_WS else "start"
        payload = {"query": query, "variables": variables or {}}
        await self.send({"id": operation_id, "type": kind, "payload": payload})

    async def next_data(self, operation_id: str, timeout: float = WAIT) -> dict[str, Any]:
        """The data of the next result for an operation, skipping keep-alives."""
        while True:
            message = await self.receive(timeout)
            if message.get("type") in ("ka", "ping", "pong"):
                continue
            assert message.get("id") == operation_id, message
            assert message["type"] in ("next", "data"), message
            assert "errors" not in message["payload"], message
            data: dict[str, Any] = message["payload"]["data"]
            return data

    async def silent(self, timeout: float = 0.5) -> bool:
        """Whether nothing (but keep-alives) arrives for a while."""
        try:
            while True:
                message = await self.receive(timeout)
                if message.get("type") not in ("ka", "ping", "pong"):
                    return False
        except TimeoutError:
            return True

    async def closed(self, timeout: float = WAIT) -> tuple[int | None, str]:
        try:
            async with asyncio.timeout(timeout):
                async for _ in self.connection:
                    pass
        except ConnectionClosed:
            pass
        await self.connection.wait_closed()
        return self.connection.close_code, self.connection.close_reason or ""


@asynccontextmanager
async def ws(base_url: str, protocol: str = TRANSPORT_WS) -> AsyncIterator[WsClient]:
    async with connect(ws_url(base_url), subprotocols=[Subprotocol(protocol)]) as connection:
        yield WsClient(connection)
