"""The floor bench/chat_fanout.py measures gigql's chat subscriptions against: websockets
and Redis pub/sub, with no GraphQL.

A Starlette websocket route at /graphql, served by uvicorn exactly as gigql is, speaks
just enough graphql-transport-ws for the benchmark's clients (`connection_init`, then one
`subscribe` whose `c` variable is the conversation's global id), with no authentication.
The process holds one Redis pub/sub connection, subscribed once to each conversation's
channel in use, and forwards every message published there, as is (the JSON that
`sendMessage` publishes), to the websockets subscribed to it, one after the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bson import ObjectId
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.relay import from_base64

from realtime.topics import conversation_topic

PROTOCOL = "graphql-transport-ws"


class Fanout:
    """Channels to the websockets subscribed to them, over one Redis connection."""

    def __init__(self, url: str) -> None:
        self._redis = Redis.from_url(url)
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._sockets: dict[str, set[WebSocket]] = defaultdict(set)
        self._reader: asyncio.Task[None] | None = None
        # redis-py's PubSub is not safe for concurrent commands: the first ones would each
        # open a connection of their own, and the subscriptions sent on all but one be lost.
        self._lock = asyncio.Lock()

    async def add(self, channel: str, socket: WebSocket) -> None:
        async with self._lock:
            if not self._sockets[channel]:
                await self._pubsub.subscribe(channel)
            self._sockets[channel].add(socket)
        if self._reader is None:  # redis-py reads nothing before the first subscription
            self._reader = asyncio.create_task(self._read())

    async def remove(self, channel: str, socket: WebSocket) -> None:
        async with self._lock:
            sockets = self._sockets[channel]
            sockets.discard(socket)
            if not sockets:
                del self._sockets[channel]
                await self._pubsub.unsubscribe(channel)

    async def _read(self) -> None:
        while True:
            raw = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if raw is None or raw["type"] != "message":
                continue
            text = raw["data"].decode()
            for socket in tuple(self._sockets.get(raw["channel"].decode(), ())):
                with contextlib.suppress(RuntimeError, WebSocketDisconnect):  # it just left
                    await socket.send_text(text)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._pubsub.aclose()
        await self._redis.aclose()


async def subscriber(socket: WebSocket) -> None:
    fanout: Fanout = socket.app.state.fanout
    await socket.accept(subprotocol=PROTOCOL)
    await socket.receive_json()  # connection_init; anyone may listen here
    await socket.send_json({"type": "connection_ack"})
    subscribe = await socket.receive_json()
    _, conversation_id = from_base64(subscribe["payload"]["variables"]["c"])
    channel = conversation_topic(ObjectId(conversation_id))
    await fanout.add(channel, socket)
    try:
        while True:  # until the client leaves; it sends nothing else
            await socket.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        await fanout.remove(channel, socket)


async def typename(request: Request) -> JSONResponse:
    await request.body()  # the harness's readiness check posts `{ __typename }`
    return JSONResponse({"data": {"__typename": "Query"}})


def create_app(redis_url: str) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.fanout = Fanout(redis_url)
        # As gigql does after start-up: long-lived objects out of the collector's way.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await app.state.fanout.close()

    return Starlette(
        routes=[
            Route("/graphql", typename, methods=["POST"]),
            WebSocketRoute("/graphql", subscriber),
        ],
        lifespan=lifespan,
    )


def app_from_environment() -> Starlette:
    """The uvicorn factory: the Redis gigql is given, from the same variable."""
    return create_app(os.environ["REDIS_URL"])
