"""A websocket is a session: every operation started on it is authorised as of its start,
and a session that ends (logout, revocation, suspension, a password change or reset)
closes its sockets with 4403 within a second on every instance.

The cross-instance tests hold the socket on a `gigql serve` process (instance B) and
end the session through the in-process app (instance A), both on one Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from documents.accounts.sessions import Session
from documents.accounts.users import User, UserStatus
from documents.clock import utcnow
from documents.settings import Settings
from integrations.mail import MemoryMailer
from realtime.broker import Broker
from realtime.topics import access_topic, user_topic
from resolvers.accounts.admin import create_admin
from resolvers.accounts.auth.socket_sessions import KNOWN_FOR
from resolvers.common.services import RequestMeta
from server.runtime import Runtime
from tests.conftest import serve
from tests.realtime.test_live_redis import on_redis, own_redis, subscribed_in_redis
from tests.support.gigql_process import sharing_the_test_database
from tests.support.graphql_client import STRONG_PASSWORD, GraphQLClient, Tokens, graphql_error_codes
from tests.support.mail_links import mailed_token
from tests.support.marketplace import logged_in_admin, object_id
from tests.support.services import OwnRedis
from tests.support.ws_client import LEGACY_WS, TRANSPORT_WS, WsClient, ws

LIVE = "subscription { myEvents { id kind } }"
ME = "query { me { id status } }"
MUTATION = "mutation { markNotificationsRead(input: {}) { errors { code } } }"
CLOSE_WITHIN = 1.0
WAIT = 20.0
"""Seconds for what waits on Redis to stop or come back (the broker retries up to 5 s apart)."""
"""Seconds from the request that ends a session to its sockets' close, on any instance."""
NEW_PASSWORD = "Brand-New-Secret-77"


# --- connecting --------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_a_socket_without_credentials_is_refused(base_url: str, protocol: str) -> None:
    async with ws(base_url, protocol) as socket:
        await socket.send({"type": "connection_init", "payload": {}})
        if protocol == LEGACY_WS:  # the legacy protocol refuses with a message
            refused = await socket.receive()
            assert refused["type"] == "connection_error", refused
            assert refused["payload"]["code"] == "UNAUTHENTICATED"
        else:
            assert await socket.closed() == (4403, "Forbidden")


async def test_anonymous_sockets_may_be_allowed(runtime: Runtime) -> None:
    async with serve(runtime, ws_allow_anonymous=True) as url, ws(url) as socket:
        assert await socket.init() == {"type": "connection_ack"}
        await socket.subscribe("1", "query { __typename }")
        assert await socket.next_data("1") == {"__typename": "Query"}
        await _wait_for_completion(socket, "1")
        await socket.subscribe("2", LIVE)  # what needs a login still does
        assert _refusal(await socket.receive()) == ("2", "UNAUTHENTICATED")


# --- every operation, as of its start ----------------------------------------------------


async def _revoke_quietly(user_id: str) -> None:
    """End every session of a user in the database alone: no signal tells anyone."""
    await Session.get_pymongo_collection().update_many(
        {"user_id": object_id(user_id)}, {"$set": {"revoked_at": utcnow()}}
    )


async def _suspend_quietly(user_id: str) -> None:
    await User.get_pymongo_collection().update_one(
        {"_id": object_id(user_id)}, {"$set": {"status": UserStatus.SUSPENDED.value}}
    )


OPERATIONS = {
    "query": ME,
    "mutation": MUTATION,
    "subscription": LIVE,
}
QUIET_ENDINGS = [(_revoke_quietly, "SESSION_REVOKED"), (_suspend_quietly, "ACCOUNT_SUSPENDED")]


@pytest.mark.parametrize(("end", "code"), QUIET_ENDINGS, ids=["revoked", "suspended"])
async def test_an_operation_is_refused_within_a_second_even_if_no_signal_ever_comes(
    base_url: str, client: GraphQLClient, end: Callable[[str], Awaitable[None]], code: str
) -> None:
    """What the socket last read is trusted for at most KNOWN_FOR, signals or not."""
    ann = await client.member("ann@example.com")
    async with ws(base_url) as socket:
        await socket.init(ann.access)
        await socket.subscribe("before", ME)
        assert (await socket.next_data("before"))["me"]["status"] == "ACTIVE"
        await _wait_for_completion(socket, "before")
        await end(ann.user_id)
        await asyncio.sleep(KNOWN_FOR)
        await socket.subscribe("after", ME)
        assert _refusal(await socket.receive()) == ("after", code)
        assert await socket.closed() == (4403, code)


@asynccontextmanager
async def on_its_own_redis(tmp_path: Path, runtime: Runtime) -> AsyncIterator[OnRedis]:
    """The app on a Redis of the test's own, which it may stop and start."""
    with own_redis(tmp_path / "redis") as own:
        async with (
            on_redis(runtime, own.url) as on,
            serve(on) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as http,
        ):
            yield OnRedis(own, on.services.broker, url, GraphQLClient(http))


@dataclass
class OnRedis:
    redis: OwnRedis
    broker: Broker
    url: str
    client: GraphQLClient

    async def stop_redis(self) -> None:
        """Stop Redis and wait until the app's broker has noticed."""
        self.redis.stop()
        async with asyncio.timeout(WAIT):
            while self.broker.connected:
                await asyncio.sleep(0.02)


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize(("end", "code"), QUIET_ENDINGS, ids=["revoked", "suspended"])
async def test_an_operation_is_refused_once_the_session_is_over_even_unannounced(
    tmp_path: Path,
    runtime: Runtime,
    operation: str,
    end: Callable[[str], Awaitable[None]],
    code: str,
) -> None:
    """While the broker is away no signal can reach the socket: each operation reads the
    session and account from the database itself."""
    async with on_its_own_redis(tmp_path, runtime) as app:
        ann = await app.client.member("ann@example.com")
        async with ws(app.url) as socket:
            assert await socket.init(ann.access) == {"type": "connection_ack"}
            await subscribed_in_redis(app.redis.url, access_topic(object_id(ann.user_id)))
            await socket.subscribe("before", ME)  # the socket works, and has read `me` once
            assert (await socket.next_data("before"))["me"]["status"] == "ACTIVE"
            await _wait_for_completion(socket, "before")
            await app.stop_redis()
            await end(ann.user_id)
            await socket.subscribe("after", OPERATIONS[operation])
            assert _refusal(await socket.receive()) == ("after", code)
            assert await socket.closed() == (4403, code)


@pytest.mark.parametrize(("end", "code"), QUIET_ENDINGS, ids=["revoked", "suspended"])
async def test_a_session_ended_while_the_broker_was_away_closes_its_sockets_when_it_is_back(
    tmp_path: Path, runtime: Runtime, end: Callable[[str], Awaitable[None]], code: str
) -> None:
    async with on_its_own_redis(tmp_path, runtime) as app:
        ann = await app.client.member("ann@example.com")
        async with ws(app.url) as socket:
            await socket.init(ann.access)
            await socket.subscribe("live", LIVE)
            ann_id = object_id(ann.user_id)
            await subscribed_in_redis(app.redis.url, access_topic(ann_id), user_topic(ann_id))
            await app.stop_redis()
            await end(ann.user_id)
            app.redis.start()
            assert _refusal(await socket.receive(timeout=WAIT)) == ("live", code)
            assert await socket.closed() == (4403, code)


async def test_a_suspended_admins_socket_can_no_longer_act_as_admin(
    base_url: str, client: GraphQLClient, runtime: Runtime
) -> None:
    root = await logged_in_admin(client, runtime)
    await create_admin(
        runtime.services,
        RequestMeta(),
        name="Second",
        email="two@example.com",
        password=STRONG_PASSWORD,
    )
    second = await client.login("two@example.com")
    ann = await client.member("ann@example.com")
    suspend = (
        'mutation($u: ID!) { suspendUser(input: {userId: $u, reason: "none"}) { errors { code } } }'
    )
    async with ws(base_url) as socket:
        await socket.init(second.access)
        await _ok(
            (await client.data(suspend, {"u": second.user_id}, token=root.access))["suspendUser"]
        )
        # Whatever the socket was about to do as an admin, it does no more: refused, or
        # cut off by the close.
        with contextlib.suppress(ConnectionClosed):
            await socket.subscribe("1", suspend, {"u": ann.user_id})
            await socket.subscribe("2", "{ auditEvents { edges { node { kind } } } }")
        for message in await _until_closed(socket):
            assert _refusal(message)[1] == "ACCOUNT_SUSPENDED", message
        assert socket.connection.close_code == 4403
    assert (await User.get(object_id(ann.user_id))).status is UserStatus.ACTIVE  # type: ignore[union-attr]


async def test_an_expired_token_refuses_new_operations_and_ends_running_ones(
    runtime: Runtime,
) -> None:
    ttl = timedelta(seconds=2)
    async with (
        serve(runtime, access_token_ttl=ttl) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        ann = await GraphQLClient(http).member("ann@example.com")
        async with ws(url) as socket:
            await socket.init(ann.access)
            await socket.subscribe("running", LIVE)
            ended = await socket.receive(timeout=ttl.total_seconds() + 5)
            assert ended["id"] == "running" and ended["type"] == "next", ended
            assert ended["payload"]["errors"][0]["extensions"]["code"] == "TOKEN_EXPIRED"
            assert await socket.receive() == {"id": "running", "type": "complete"}
            for name, document in OPERATIONS.items():
                await socket.subscribe(name, document)
                assert _refusal(await socket.receive()) == (name, "TOKEN_EXPIRED")
            # The socket itself stays: the client decides when to reconnect.
            await socket.send({"type": "ping"})
            assert await socket.receive() == {"type": "pong"}


async def test_each_operation_reads_afresh(base_url: str, client: GraphQLClient) -> None:
    """Nothing read for one operation on a socket is taken for current by a later one."""
    ann = await client.member("ann@example.com", name="Ann")
    rename = 'mutation { updateProfile(input: {name: "Annie"}) { errors { code } } }'
    async with ws(base_url) as socket:
        await socket.init(ann.access)
        for operation_id, name in (("1", "Ann"), ("2", "Annie")):
            await socket.subscribe(operation_id, "query { me { name } }")
            assert (await socket.next_data(operation_id))["me"]["name"] == name
            await _wait_for_completion(socket, operation_id)
            if name == "Ann":
                assert (await client.data(rename, token=ann.access))["updateProfile"] == {
                    "errors": []
                }


# --- a session ending closes its sockets, on every instance ------------------------------


@dataclass
class Instances:
    on_a: GraphQLClient
    """HTTP to instance A, in this process."""
    url_b: str
    """Instance B, a `gigql serve` process on the same database and Redis."""
    redis_url: str
    outbox: MemoryMailer
    runtime: Runtime


@pytest.fixture
async def instances(
    tmp_path: Path, settings: Settings, runtime: Runtime, redis_url: str, outbox: MemoryMailer
) -> AsyncIterator[Instances]:
    async with (
        sharing_the_test_database(tmp_path / "b", settings, REDIS_URL=redis_url) as b,
        on_redis(runtime, redis_url) as runtime_a,
        serve(runtime_a) as url_a,
        httpx.AsyncClient(base_url=url_a, timeout=30) as http_a,
    ):
        yield Instances(GraphQLClient(http_a), b.base_url, redis_url, outbox, runtime)


Ending = Callable[[Instances, Tokens], Awaitable[str]]
"""Ends the session of `Tokens` through instance A; returns the code its sockets get."""


async def _second_session(on: Instances) -> Tokens:
    return await on.on_a.login("ann@example.com")


async def _ok(payload: dict[str, Any]) -> None:
    assert payload["errors"] == [], payload


async def _suspend(on: Instances, victim: Tokens) -> str:
    admin = await logged_in_admin(on.on_a, on.runtime)
    await _ok(
        await on.on_a.mutate(
            "suspendUser", {"userId": victim.user_id, "reason": "fraud"}, token=admin.access
        )
    )
    return "ACCOUNT_SUSPENDED"


async def _logout(on: Instances, victim: Tokens) -> str:
    await _ok(await on.on_a.mutate("logout", {}, token=victim.access))
    return "SESSION_REVOKED"


async def _logout_everywhere(on: Instances, victim: Tokens) -> str:
    other = await _second_session(on)
    await _ok(
        await on.on_a.mutate("logoutEverywhere", {"keepCurrentSession": True}, token=other.access)
    )
    return "SESSION_REVOKED"


async def _revoke_session(on: Instances, victim: Tokens) -> str:
    other = await _second_session(on)
    sessions = await on.on_a.data(
        "{ me { sessions { edges { node { id current } } } } }", token=other.access
    )
    [victims] = [
        e["node"]["id"] for e in sessions["me"]["sessions"]["edges"] if not e["node"]["current"]
    ]
    await _ok(await on.on_a.mutate("revokeSession", {"sessionId": victims}, token=other.access))
    return "SESSION_REVOKED"


async def _change_password(on: Instances, victim: Tokens) -> str:
    other = await _second_session(on)
    await _ok(
        await on.on_a.mutate(
            "changePassword",
            {"currentPassword": STRONG_PASSWORD, "newPassword": NEW_PASSWORD},
            token=other.access,
        )
    )
    return "SESSION_REVOKED"


async def _reset_password(on: Instances, victim: Tokens) -> str:
    await _ok(await on.on_a.mutate("requestPasswordReset", {"email": "ann@example.com"}))
    token = await mailed_token(on.outbox, "ann@example.com", "Reset")
    await _ok(await on.on_a.mutate("resetPassword", {"token": token, "newPassword": NEW_PASSWORD}))
    return "SESSION_REVOKED"


ENDINGS: dict[str, Ending] = {
    "suspendUser": _suspend,
    "logout": _logout,
    "logoutEverywhere": _logout_everywhere,
    "revokeSession": _revoke_session,
    "changePassword": _change_password,
    "resetPassword": _reset_password,
}


@pytest.mark.parametrize("ending", list(ENDINGS))
async def test_a_session_ending_closes_its_sockets_on_another_instance(
    instances: Instances, ending: str
) -> None:
    ann = await instances.on_a.member("ann@example.com")
    ann_id = object_id(ann.user_id)
    async with ws(instances.url_b) as running, ws(instances.url_b) as idle:
        await running.init(ann.access)
        await idle.init(ann.access)
        await running.subscribe("live", LIVE)
        await subscribed_in_redis(instances.redis_url, access_topic(ann_id), user_topic(ann_id))

        code = await ENDINGS[ending](instances, ann)
        ended_at = time.monotonic()
        # Operations started on the other socket now: refused, or cut off by the close,
        # never run.
        with contextlib.suppress(ConnectionClosed):
            for operation_id, document in OPERATIONS.items():
                await idle.subscribe(operation_id, document)

        assert _refusal(await running.receive()) == ("live", code)
        assert await running.closed() == (4403, code)
        assert time.monotonic() - ended_at < CLOSE_WITHIN
        for message in await _until_closed(idle):
            assert _refusal(message)[1] == code, message
        assert idle.connection.close_code == 4403
    async with ws(instances.url_b) as again:  # and the token opens nothing any more
        await again.send({"type": "connection_init", "payload": {"accessToken": ann.access}})
        assert await again.closed() == (4403, "Forbidden")


async def test_a_legacy_socket_closes_too(instances: Instances) -> None:
    ann = await instances.on_a.member("ann@example.com")
    async with ws(instances.url_b, LEGACY_WS) as socket:
        assert (await socket.init(ann.access))["type"] == "connection_ack"
        await socket.subscribe("live", LIVE)
        await subscribed_in_redis(instances.redis_url, user_topic(object_id(ann.user_id)))
        await _logout(instances, ann)
        ended_at = time.monotonic()
        messages = await _until_closed(socket)
        assert time.monotonic() - ended_at < CLOSE_WITHIN
        assert messages[0]["type"] == "error" and messages[0]["id"] == "live", messages
        assert messages[0]["payload"]["extensions"] == {"code": "SESSION_REVOKED"}
        assert socket.connection.close_code == 4403


async def test_a_session_that_goes_on_keeps_its_socket(instances: Instances) -> None:
    """logoutEverywhere keeping the current session leaves that session's sockets alone."""
    ann = await instances.on_a.member("ann@example.com")
    other = await instances.on_a.login("ann@example.com")
    async with ws(instances.url_b) as socket:
        await socket.init(ann.access)
        await socket.subscribe("live", LIVE)
        await subscribed_in_redis(instances.redis_url, access_topic(object_id(ann.user_id)))
        await _ok(
            await instances.on_a.mutate(
                "logoutEverywhere", {"keepCurrentSession": True}, token=ann.access
            )
        )
        assert await socket.silent(timeout=CLOSE_WITHIN)
        await socket.subscribe("me", ME)
        assert (await socket.next_data("me"))["me"]["status"] == "ACTIVE"
    ended = await instances.on_a.execute(ME, token=other.access)
    assert graphql_error_codes(ended) == ["SESSION_REVOKED"]  # the other one ended


# --- helpers -----------------------------------------------------------------------------


def _refusal(message: dict[str, Any]) -> tuple[str, str]:
    """(operation id, code) of an operation refused with an `error` message."""
    assert message["type"] == "error", message
    payload = message["payload"]
    [error] = payload if isinstance(payload, list) else [payload]
    return message["id"], error["extensions"]["code"]


async def _wait_for_completion(socket: WsClient, operation_id: str) -> None:
    assert await socket.receive() == {"id": operation_id, "type": "complete"}


async def _until_closed(socket: WsClient) -> list[dict[str, Any]]:
    """Every message up to the socket's close (keep-alives left out)."""
    received: list[dict[str, Any]] = []
    try:
        while True:
            message = await socket.receive()
            if message.get("type") not in ("ka", "ping", "pong", "complete"):
                received.append(message)
    except ConnectionClosed:
        pass
    await socket.closed()
    return received
