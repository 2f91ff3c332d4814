"""The websocket side of /graphql speaks both subscription protocols."""

from __future__ import annotations

import json

from websockets.asyncio.client import connect


def _ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://") + "/graphql"


async def test_graphql_transport_ws_handshake_and_ping(base_url: str) -> None:
    async with connect(_ws_url(base_url), subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "graphql-transport-ws"
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await ws.recv()) == {"type": "connection_ack"}
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}


async def test_legacy_graphql_ws_handshake(base_url: str) -> None:
    async with connect(_ws_url(base_url), subprotocols=["graphql-ws"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "graphql-ws"
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"


async def test_unknown_subprotocols_are_closed_with_4406(base_url: str) -> None:
    async with connect(_ws_url(base_url), subprotocols=["chat"]) as ws:  # type: ignore[list-item]
        await ws.wait_closed()
        assert ws.close_code == 4406
