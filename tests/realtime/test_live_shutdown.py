"""Stopping `gigql serve` with SIGTERM: open GraphQL websockets finish the work under way
and are closed with 1001 "going away" (uvicorn alone would close them with 1012, even
mid-mutation); then the process exits 0. One worker and several."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from documents.settings import Settings
from tests.support.gigql_process import STOP_TIMEOUT, eventually, graphql, sharing_the_test_database
from tests.support.graphql_client import STRONG_PASSWORD, GraphQLClient
from tests.support.marketplace import make_offer, post_task, poster, tasker
from tests.support.ws_client import ws

MY_EVENTS = "subscription { myEvents { id kind actor { id } } }"
LOGIN = """mutation($input: LoginInput!) { login(input: $input) {
  errors { code } user { id } tokens { accessToken } } }"""
# Logging in rehashes a password hashed at a lower cost: with these, for about a second
# (much longer than the test needs to send SIGTERM while it runs).
SLOW_HASHING = {"GIGQL_ARGON2_TIME_COST": "25", "GIGQL_ARGON2_MEMORY_COST_KIB": "65536"}


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_closes_websockets_with_going_away_after_their_work(
    tmp_path: Path, settings: Settings, redis_url: str, client: GraphQLClient, workers: int
) -> None:
    ann = await poster(client, "ann@example.com")  # cheaply hashed, by the in-process app
    tom = await tasker(client, "tom@example.com")
    task = await post_task(client, ann)
    env = {**SLOW_HASHING, "GIGQL_WORKERS": str(workers)}
    if workers > 1:
        env["REDIS_URL"] = redis_url
    async with (
        sharing_the_test_database(tmp_path, settings, **env) as served,
        ws(served.base_url) as socket,
        graphql(served) as served_client,
    ):
        assert (await socket.init(ann.access))["type"] == "connection_ack"
        await socket.subscribe("events", MY_EVENTS)
        await asyncio.sleep(0.2)
        await make_offer(served_client, tom, task["id"])
        assert (await socket.next_data("events"))["myEvents"]["actor"] == {"id": tom.user_id}

        # A mutation under way on the socket: SIGTERM arrives while it runs.
        credentials = {"email": "ann@example.com", "password": STRONG_PASSWORD}
        await socket.subscribe("login", LOGIN, {"input": credentials})
        await socket.send({"type": "ping"})
        assert await socket.receive() == {"type": "pong"}  # "login" has started
        assert served.process is not None
        served.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        result = await socket.receive(timeout=STOP_TIMEOUT)
        finished = time.monotonic()
        assert result["id"] == "login" and result["type"] == "next", result
        login = result["payload"]["data"]["login"]
        assert login["errors"] == [] and login["user"] == {"id": ann.user_id}, result
        assert await socket.receive() == {"id": "login", "type": "complete"}
        assert await socket.closed(STOP_TIMEOUT) == (1001, "Server shutting down")
        assert finished > signalled  # it really was waited for
        process = served.process
        assert await eventually(lambda: process.poll() is not None, STOP_TIMEOUT)
        assert process.returncode == 0, served.output()
        assert "Traceback" not in served.stderr(), served.output()
