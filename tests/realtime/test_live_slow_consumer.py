"""A subscriber that stops reading gets a bounded queue: when it overflows, the server
closes that one connection with 1013 and keeps serving everyone else; the subscriber
resumes with `after` and misses nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from server.runtime import Runtime, create_broker, make_services
from tests.conftest import serve
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import post_task, poster
from tests.support.ws_client import TRANSPORT_WS, WsClient, ws, ws_url

QUEUE_SIZE = 4
DESCRIPTION = ("Mow the lawn, trim the hedges and take all the clippings away. " * 80)[:4900]
# About 150 kB an event, so that a few dozen fill every buffer between server and client.
BIG = (
    "subscription { myEvents { id "
    + " ".join(f"t{i}: task {{ description }}" for i in range(30))
    + " } }"
)
SMALL = "subscription($after: ID) { myEvents(after: $after) { id kind } }"


def in_flight() -> int:
    """More bytes than can be on their way to a client that reads nothing: the server's
    socket send buffer at its largest, plus a megabyte for what both websocket ends and
    the client's small receive buffer hold (4.3 MB were seen with a 4 MB send buffer)."""
    try:
        send_buffer = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        send_buffer = 16 * 1024 * 1024
    return send_buffer * 5 // 4 + 1024 * 1024


def with_small_queues(runtime: Runtime) -> Runtime:
    services = runtime.services
    settings = services.settings.model_copy(update={"subscriber_queue_size": QUEUE_SIZE})
    broker = create_broker(settings)  # in-process, its own, with the small queues
    return dataclasses.replace(
        runtime, services=make_services(settings, services.postman, broker, services.payments)
    )


@asynccontextmanager
async def stalling_client(base_url: str) -> AsyncIterator[WsClient]:
    """A client that holds little unread: a small kernel receive buffer, and a websocket
    library that stops reading the socket once one frame waits for the application."""
    address = urlsplit(base_url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (address.hostname, address.port))
    async with connect(
        ws_url(base_url),
        sock=sock,
        subprotocols=[Subprotocol(TRANSPORT_WS)],
        max_queue=1,
        compression=None,  # incompressible as far as the buffers are concerned
    ) as connection:
        yield WsClient(connection)


async def test_a_subscriber_that_stops_reading_is_closed_with_1013(runtime: Runtime) -> None:
    async with (
        serve(with_small_queues(runtime)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        client = GraphQLClient(http)
        ann = await poster(client, "ann@example.com")
        task = await post_task(client, ann, description=DESCRIPTION)

        async def update(n: int) -> None:
            text = f"{DESCRIPTION[:4890]} v{n}"
            changed = await client.mutate(
                "updateTask", {"taskId": task["id"], "description": text}, token=ann.access
            )
            assert changed["errors"] == [], changed

        async with stalling_client(url) as slow, ws(url) as healthy:
            for each, query in ((slow, BIG), (healthy, SMALL)):
                await each.init(ann.access)
                await each.subscribe("1", query)
            await asyncio.sleep(0.2)
            await update(0)
            event = (await slow.next_data("1"))["myEvents"]
            assert (await healthy.next_data("1"))["myEvents"]["id"] == event["id"]
            sent = [event["id"]]

            # The slow client reads nothing more while the healthy one keeps up.
            count = in_flight() // len(json.dumps(event)) + QUEUE_SIZE + 2
            for n in range(1, count + 1):
                await update(n)
                sent.append((await healthy.next_data("1"))["myEvents"]["id"])

            # Reading again: what was already on its way, then the close.
            caught_up = [sent[0]]
            try:
                while True:
                    caught_up.append((await slow.next_data("1"))["myEvents"]["id"])
            except ConnectionClosed:
                pass
            close = (slow.connection.close_code, slow.connection.close_reason)
            assert close == (1013, "Subscriber too slow; reconnect with after")
            assert len(caught_up) < len(sent), "never fell behind: raise in_flight()"
            assert caught_up == sent[: len(caught_up)]  # in order, nothing skipped

            # The healthy subscriber carries on, and so does the server.
            await update(count + 1)
            sent.append((await healthy.next_data("1"))["myEvents"]["id"])
            assert (await http.get("/healthz")).status_code == 200

        # Resuming with `after` brings exactly the rest.
        async with ws(url) as again:
            await again.init(ann.access)
            await again.subscribe("1", SMALL, {"after": caught_up[-1]})
            rest = [(await again.next_data("1"))["myEvents"]["id"] for _ in sent[len(caught_up) :]]
            assert rest == sent[len(caught_up) :]
            assert await again.silent()
