"""Live events between API instances through Redis: across two `gigql serve` processes,
and through Redis stopping and starting again in the middle of a conversation.

Each test runs a redis-server of its own on a free port (it stops it), so they need the
`redis-server` binary rather than a Redis somewhere.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import redis.asyncio as redis

from documents.events import DomainEvent
from documents.settings import Settings
from realtime.broker import RedisBroker
from realtime.topics import conversation_topic, task_topic, user_topic
from server.runtime import Runtime, make_services
from tests.conftest import serve
from tests.support.chat import MESSAGE_ADDED, sent, task_chat
from tests.support.gigql_process import graphql, sharing_the_test_database
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import make_offer, object_id, post_task, poster, tasker
from tests.support.services import OwnRedis
from tests.support.ws_client import WsClient, ws

MY_EVENTS = "subscription($after: ID) { myEvents(after: $after) { id kind actor { id } } }"
TASK_EVENTS = "subscription($t: ID!) { taskEvents(taskId: $t) { id kind actor { id } } }"
WAIT = 20.0
"""Seconds for what may wait on a reconnect (the broker retries with backoff up to 5 s)."""
PROMPT = 5.0
"""Seconds a mutation may take while Redis is down: it must not wait for it."""

T = TypeVar("T")


@contextmanager
def own_redis(workdir: Path) -> Iterator[OwnRedis]:
    workdir.mkdir(parents=True, exist_ok=True)
    with OwnRedis(workdir) as server:
        yield server


@asynccontextmanager
async def on_redis(runtime: Runtime, url: str) -> AsyncIterator[Runtime]:
    """The test database with a broker of its own (its own Redis connections) on `url`:
    what another API instance would have."""
    services = runtime.services
    settings = services.settings.model_copy(update={"redis_url": url})
    broker = RedisBroker(url)
    try:
        yield dataclasses.replace(
            runtime, services=make_services(settings, services.postman, broker, services.payments)
        )
    finally:
        await broker.close()


@dataclass(frozen=True)
class TwoInstances:
    redis: OwnRedis
    url_a: str
    url_b: str
    on_a: GraphQLClient
    """HTTP to instance A."""


@asynccontextmanager
async def two_instances(tmp_path: Path, runtime: Runtime) -> AsyncIterator[TwoInstances]:
    """Two API instances served from this process, on the test database and a Redis of
    the test's own, which it may stop and start."""
    with own_redis(tmp_path / "redis") as own:
        async with (
            on_redis(runtime, own.url) as runtime_a,
            on_redis(runtime, own.url) as runtime_b,
            serve(runtime_a) as url_a,
            serve(runtime_b) as url_b,
            httpx.AsyncClient(base_url=url_a, timeout=30) as http_a,
        ):
            yield TwoInstances(own, url_a, url_b, GraphQLClient(http_a))


async def promptly(mutation: Awaitable[T]) -> T:
    """A mutation's result, insisting that it did not wait long for Redis."""
    started = time.monotonic()
    result = await mutation
    assert time.monotonic() - started < PROMPT, "a mutation waited long for Redis"
    return result


async def subscribed_in_redis(url: str, *topics: str) -> None:
    """Wait until Redis has a subscriber on each topic: the subscription is live."""
    observer = redis.Redis.from_url(url)
    try:
        async with asyncio.timeout(WAIT):
            while any(count < 1 for _, count in await observer.pubsub_numsub(*topics)):
                await asyncio.sleep(0.02)
    finally:
        await observer.aclose()


async def received(socket: WsClient, counts: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
    """The next events for each operation id, as many as `counts` says, in any interleaving."""
    found: dict[str, list[dict[str, Any]]] = {op: [] for op in counts}
    async with asyncio.timeout(WAIT):
        while any(len(found[op]) < count for op, count in counts.items()):
            message = await socket.receive(timeout=WAIT)
            if message["type"] in ("ka", "ping", "pong"):
                continue
            assert message["type"] == "next" and "errors" not in message["payload"], message
            found[message["id"]].append(next(iter(message["payload"]["data"].values())))
    return found


def actors(events: list[dict[str, Any]]) -> list[str]:
    return [event["actor"]["id"] for event in events]


async def test_two_server_processes_share_events_through_redis(
    tmp_path: Path, settings: Settings, client: GraphQLClient
) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    task = await post_task(client, ann)
    with own_redis(tmp_path / "redis") as own:
        async with (
            sharing_the_test_database(tmp_path / "a", settings, REDIS_URL=own.url) as a,
            sharing_the_test_database(tmp_path / "b", settings, REDIS_URL=own.url) as b,
            graphql(a) as on_a,
            graphql(b) as on_b,
            ws(b.base_url) as ann_on_b,
            ws(a.base_url) as tom_on_a,
        ):
            assert a.pid != b.pid
            await ann_on_b.init(ann.access)
            await tom_on_a.init(tom.access)
            await ann_on_b.subscribe("1", MY_EVENTS)
            await tom_on_a.subscribe("1", MY_EVENTS)
            await subscribed_in_redis(
                own.url, user_topic(object_id(ann.user_id)), user_topic(object_id(tom.user_id))
            )

            # A mutation on A reaches the subscriber on B, and one on B the one on A.
            offer = await make_offer(on_a, tom, task["id"])
            for socket in (ann_on_b, tom_on_a):  # the author sees his own offer too
                event = (await socket.next_data("1"))["myEvents"]
                assert (event["kind"], event["actor"]) == ("OFFER_RECEIVED", {"id": tom.user_id})
            accepted = await on_b.mutate("acceptOffer", {"offerId": offer["id"]}, token=ann.access)
            assert accepted["errors"] == [], accepted
            # The offer accepted, the task assigned: news for both, on either instance.
            for socket in (tom_on_a, ann_on_b):
                kinds = {(await socket.next_data("1"))["myEvents"]["kind"] for _ in range(2)}
                assert kinds == {"OFFER_ACCEPTED", "TASK_STATUS_CHANGED"}
            assert await tom_on_a.silent() and await ann_on_b.silent()


async def test_redis_restarting_mid_stream_loses_nothing_and_repeats_nothing(
    tmp_path: Path, runtime: Runtime, client: GraphQLClient
) -> None:
    ann = await poster(client, "ann@example.com")
    taskers = [await tasker(client, f"t{i}@example.com") for i in range(5)]
    task = await post_task(client, ann)
    async with two_instances(tmp_path, runtime) as pair:
        own, on_a = pair.redis, pair.on_a
        async with ws(pair.url_b) as socket:
            await socket.init(ann.access)
            await socket.subscribe("mine", MY_EVENTS)
            await subscribed_in_redis(own.url, user_topic(object_id(ann.user_id)))
            await make_offer(on_a, taskers[0], task["id"])
            [first] = (await received(socket, {"mine": 1}))["mine"]
            # Subscribed now, without `after`, and given nothing before the outage.
            await socket.subscribe("task", TASK_EVENTS, {"t": task["id"]})
            await subscribed_in_redis(own.url, task_topic(object_id(task["id"])))

            await asyncio.to_thread(own.stop)
            for who in taskers[1:4]:
                await promptly(make_offer(on_a, who, task["id"]))  # asserts it succeeded
            unpublished = await DomainEvent.find(DomainEvent.published_at == None).to_list()  # noqa: E711
            assert len(unpublished) == 3  # stored, but Redis never carried them
            assert await socket.silent(0.3)

            await asyncio.to_thread(own.start)  # the same port, empty: nobody subscribed
            # B reconnects and resubscribes by itself, and both subscriptions re-read.
            missed = await received(socket, {"mine": 3, "task": 3})
            await subscribed_in_redis(own.url, user_topic(object_id(ann.user_id)))
            await make_offer(on_a, taskers[4], task["id"])
            live = await received(socket, {"mine": 1, "task": 1})
            assert await socket.silent()

            mine = [first, *missed["mine"], *live["mine"]]
            assert actors(mine) == [t.user_id for t in taskers]
            assert len({event["id"] for event in mine}) == 5
            assert [*missed["task"], *live["task"]] == mine[1:]

            # A client reconnecting (to the other instance) with `after` gets the same.
            async with ws(pair.url_a) as again:
                await again.init(ann.access)
                await again.subscribe("mine", MY_EVENTS, {"after": first["id"]})
                assert (await received(again, {"mine": 4}))["mine"] == mine[1:]
                assert await again.silent()
            assert (await on_a.http.get(f"{pair.url_b}/readyz")).status_code == 200


async def test_redis_restarting_mid_conversation_loses_no_message_and_repeats_none(
    tmp_path: Path, runtime: Runtime, client: GraphQLClient
) -> None:
    chat = await task_chat(client)
    ann, tom, conversation = chat.poster, chat.tasker, chat.conversation_id
    since = {"c": conversation}
    async with two_instances(tmp_path, runtime) as pair:
        own, on_a = pair.redis, pair.on_a
        async with ws(pair.url_b) as ann_on_b:
            await ann_on_b.init(ann.access)
            await ann_on_b.subscribe("chat", MESSAGE_ADDED, since)
            async with ws(pair.url_a) as tom_on_a:
                await tom_on_a.init(tom.access)
                await tom_on_a.subscribe("chat", MESSAGE_ADDED, since)
                await subscribed_in_redis(
                    own.url,
                    conversation_topic(object_id(conversation)),
                    user_topic(object_id(ann.user_id)),
                    user_topic(object_id(tom.user_id)),
                )
                messages = [await sent(on_a, ann, conversation, "before")]
                for socket in (ann_on_b, tom_on_a):
                    assert (await received(socket, {"chat": 1}))["chat"] == messages
                last_seen = messages[-1]["seq"]

                await asyncio.to_thread(own.stop)
            # Tom's connection drops with Redis; Ann's stays, its subscription live.
            for who, text in ((tom, "during 1"), (ann, "during 2"), (tom, "during 3")):
                messages.append(await promptly(sent(on_a, who, conversation, text)))
            assert await ann_on_b.silent(0.3)

            await asyncio.to_thread(own.start)  # the same port, empty: nobody subscribed
            async with ws(pair.url_b) as tom_on_b:
                await tom_on_b.init(tom.access)
                await tom_on_b.subscribe("chat", MESSAGE_ADDED, {**since, "after": last_seen})
                # Ann's subscription re-reads what Redis never carried; Tom's replays it.
                for socket in (ann_on_b, tom_on_b):
                    assert (await received(socket, {"chat": 3}))["chat"] == messages[1:]
                await subscribed_in_redis(own.url, conversation_topic(object_id(conversation)))
                messages.append(await sent(on_a, tom, conversation, "after"))
                for socket in (ann_on_b, tom_on_b):
                    assert (await received(socket, {"chat": 1}))["chat"] == messages[-1:]
                    assert await socket.silent()
    assert [(m["seq"], m["text"]) for m in messages] == [
        (1, "before"),
        (2, "during 1"),
        (3, "during 2"),
        (4, "during 3"),
        (5, "after"),
    ]


async def test_a_subscription_started_while_redis_is_away_fails_as_ours_without_details(
    tmp_path: Path, runtime: Runtime, client: GraphQLClient
) -> None:
    """The broker's own error (its host and port) is logged, not shown to the client, nor
    blamed on the client's input."""
    ann = await poster(client, "ann@example.com")
    async with two_instances(tmp_path, runtime) as pair, ws(pair.url_b) as socket:
        await socket.init(ann.access)
        await asyncio.to_thread(pair.redis.stop)
        await socket.subscribe("mine", MY_EVENTS)
        message = await socket.receive(timeout=WAIT)
        assert message["id"] == "mine" and message["type"] == "next", message
        [error] = message["payload"]["errors"]
        assert error["message"] == "Internal server error", error
        assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
