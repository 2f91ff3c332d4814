"""A socket's session while it is idle: no task of its own waits for signals, and the
backstop read, should a signal be lost, is one sweep for every socket of the process,
which still ends a session that ended unannounced within `RECHECK_EVERY`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from documents.accounts.users import User
from resolvers.accounts.auth import socket_sessions
from tests.realtime.test_socket_sessions import (
    LIVE,
    ME,
    QUIET_ENDINGS,
    _refusal,
    _revoke_quietly,
)
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import object_id
from tests.support.ws_client import LEGACY_WS, TRANSPORT_WS, ws

SWEEP_EVERY = 0.5


def _session_tasks() -> list[str]:
    return sorted(
        name
        for task in asyncio.all_tasks()
        if (name := task.get_name()).startswith("socket-session") and not task.done()
    )


async def _until_quiet(timeout: float = 5.0) -> list[str]:
    """The session tasks left once the sockets' first reads are over."""
    deadline = time.monotonic() + timeout
    while (tasks := _session_tasks()) != ["socket-session-sweep"]:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    return tasks


async def test_idle_sockets_hold_no_task_of_their_own(base_url: str, client: GraphQLClient) -> None:
    """Signals reach a session in the broker's own call: three idle sockets, each with a
    subscription running, leave only the one sweep of the process waiting."""
    ann = await client.member("ann@example.com")
    async with ws(base_url) as one, ws(base_url) as two, ws(base_url) as three:
        for socket in (one, two, three):
            await socket.init(ann.access)
            await socket.subscribe("live", LIVE)
        assert await _until_quiet() == ["socket-session-sweep"]
        # And a signal still reaches every one of them: a logout closes all three.
        await client.mutate("logout", {}, token=ann.access)
        for socket in (one, two, three):
            assert _refusal(await socket.receive()) == ("live", "SESSION_REVOKED")
            assert await socket.closed() == (4403, "SESSION_REVOKED")
    assert await _until_quiet() in ([], ["socket-session-sweep"])


@pytest.mark.parametrize(("end", "code"), QUIET_ENDINGS, ids=["revoked", "suspended"])
async def test_the_sweep_ends_a_session_that_ended_unannounced(
    base_url: str,
    client: GraphQLClient,
    monkeypatch: pytest.MonkeyPatch,
    end: Callable[[str], Awaitable[None]],
    code: str,
) -> None:
    """No signal at all (the database changed alone): the sweep, one read for all the
    sockets, ends the sockets of that session, and only those."""
    monkeypatch.setattr(socket_sessions, "RECHECK_EVERY", SWEEP_EVERY)
    monkeypatch.setattr(socket_sessions._Sweep, "BATCH", 2)  # two reads for three sockets
    ann = await client.member("ann@example.com")
    bob = await client.member("bob@example.com")
    async with ws(base_url) as ann_1, ws(base_url) as ann_2, ws(base_url) as bobs:
        for socket, who in ((ann_1, ann), (ann_2, ann), (bobs, bob)):
            await socket.init(who.access)
            await socket.subscribe("live", LIVE)
        await _until_quiet()
        await end(ann.user_id)
        ended_at = time.monotonic()
        for socket in (ann_1, ann_2):
            assert _refusal(await socket.receive(timeout=5 * SWEEP_EVERY)) == ("live", code)
            assert await socket.closed() == (4403, code)
        assert time.monotonic() - ended_at < 3 * SWEEP_EVERY
        assert await bobs.silent(timeout=2 * SWEEP_EVERY)
        await bobs.subscribe("me", ME)  # and goes on working
        assert (await bobs.next_data("me"))["me"]["status"] == "ACTIVE"


async def test_a_batch_the_sweep_cannot_read_holds_up_no_other(
    base_url: str, client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An account stored in a shape that no longer reads fails its batch; the sweep still
    reads the batches after it and ends the session that ended unannounced there."""
    monkeypatch.setattr(socket_sessions, "RECHECK_EVERY", SWEEP_EVERY)
    monkeypatch.setattr(socket_sessions._Sweep, "BATCH", 1)
    carl = await client.member("carl@example.com")
    ann = await client.member("ann@example.com")
    async with ws(base_url) as carls, ws(base_url) as anns:
        for socket, who in ((carls, carl), (anns, ann)):  # swept in this order
            await socket.init(who.access)
            await socket.subscribe("live", LIVE)
        await _until_quiet()
        await User.get_pymongo_collection().update_one(
            {"_id": object_id(carl.user_id)}, {"$set": {"roles": "not a list"}}
        )
        await _revoke_quietly(ann.user_id)
        refusal = await anns.receive(timeout=6 * SWEEP_EVERY)
        assert _refusal(refusal) == ("live", "SESSION_REVOKED")
        assert await anns.closed() == (4403, "SESSION_REVOKED")


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_an_initialised_socket_keeps_no_initialisation_deadline_waiting(
    base_url: str, client: GraphQLClient, protocol: str
) -> None:
    """The initialisation timeout no longer applies once `connection_init` is answered:
    its task is not kept waiting for the socket's life."""
    deadlines = ("handle_connection_init_timeout", "_close_unless_initialised")

    def waiting() -> int:
        names = [getattr(task.get_coro(), "__qualname__", "") for task in asyncio.all_tasks()]
        return len([name for name in names if name.endswith(deadlines)])

    ann = await client.member("ann@example.com")
    async with ws(base_url, protocol) as socket:
        await socket.send({"type": "ping"} if protocol == TRANSPORT_WS else {"type": "x"})
        await socket.receive()
        assert waiting() == 1  # not initialised yet: the deadline waits
        await socket.init(ann.access)
        await socket.subscribe("live", LIVE)
        await asyncio.sleep(0.05)
        assert waiting() == 0
