"""Chat subscriptions whose selection cannot depend on the viewer, written as pre-framed
text (schema/live/framed.py): executed once per message for every subscriber, each
socket getting its own operation id in its own protocol's frame, with the same
authorisation, order, replay and slow-consumer bounds as the ordinary path."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from beanie import PydanticObjectId
from graphql import parse
from graphql.execution import Executor
from prometheus_client import REGISTRY
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from websockets.exceptions import ConnectionClosed

from documents.chat.conversations import ChatMessage, Conversation
from documents.settings import Settings
from realtime.topics import conversation_topic, user_topic
from resolvers.chat import signals as chat_signals
from schema.chat.conversations import MessageNode
from schema.live.framed import FramedSelection
from schema.schema import build_schema
from server.runtime import Runtime
from tests.conftest import serve
from tests.realtime.test_live_redis import (
    promptly,
    received,
    subscribed_in_redis,
    two_instances,
)
from tests.realtime.test_live_slow_consumer import (
    QUEUE_SIZE,
    in_flight,
    stalling_client,
    with_small_queues,
)
from tests.support.chat import sent, task_chat
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import logged_in_admin, object_id
from tests.support.ws_client import LEGACY_WS, TRANSPORT_WS, WsClient, ws

PLAIN = """subscription($c: ID!, $after: Int) {
  messageAdded(conversationId: $c, after: $after) { id seq text } }"""
WITH_SENDER = """subscription($c: ID!) {
  messageAdded(conversationId: $c) { id seq text sender { id } } }"""
SETTLE = 0.2
"""Seconds for a subscription to reach the broker before the test acts."""


def executions() -> int:
    return FramedSelection.executions


def slow_closed() -> float:
    """Websockets closed with 1013 so far, as `/metrics` counts them."""
    return REGISTRY.get_sample_value("gigql_slow_subscribers_closed_total") or 0.0


def plain(message: dict[str, Any]) -> dict[str, Any]:
    return {"id": message["id"], "seq": message["seq"], "text": message["text"]}


async def frame(socket: WsClient) -> dict[str, Any]:
    """The next message that is not a keep-alive, whole."""
    while (message := await socket.receive())["type"] in ("ka", "ping", "pong"):
        pass
    return message


async def test_a_plain_selection_is_executed_once_per_message_for_every_subscriber(
    base_url: str, client: GraphQLClient
) -> None:
    chat = await task_chat(client)
    variables = {"c": chat.conversation_id}
    async with (
        ws(base_url, TRANSPORT_WS) as ann,
        ws(base_url, LEGACY_WS) as ann_elsewhere,
        ws(base_url, TRANSPORT_WS) as tom,
    ):
        sockets = {"ann's": ann, "ann's too": ann_elsewhere, "tom's": tom}
        for (operation_id, socket), token in zip(
            sockets.items(), (chat.poster, chat.poster, chat.tasker), strict=True
        ):
            assert (await socket.init(token.access))["type"] == "connection_ack"
            await socket.subscribe(operation_id, PLAIN, variables)
        await asyncio.sleep(SETTLE)
        before = executions()
        for text in ("one", "two", "three"):
            message = await sent(client, chat.tasker, chat.conversation_id, text)
            data = {"data": {"messageAdded": plain(message)}}
            assert await frame(ann) == {"id": "ann's", "type": "next", "payload": data}
            assert await frame(ann_elsewhere) == {
                "type": "data",
                "id": "ann's too",
                "payload": data,
            }
            assert await frame(tom) == {"id": "tom's", "type": "next", "payload": data}
        # Once per message for all three subscribers and both protocols.
        assert executions() - before == 3
        for socket in sockets.values():
            assert await socket.silent(0.2)


def test_executing_events_keeps_nothing_per_event() -> None:
    """graphql-core 3.3 memoises collected subfields per event in a dict shared with the
    executor the events are executed from: the framed path's one executor per operation
    text would grow with every message."""
    schema = build_schema(Settings(environment="development"))
    executor = StrawberryGraphQLCoreExecutionContext.build(
        schema._schema, parse(PLAIN), raw_variable_values={"c": "Q29udmVyc2F0aW9uOjE="}
    )
    assert isinstance(executor, Executor)
    selection = FramedSelection(executor)
    sender = PydanticObjectId()
    for seq in range(1, 51):
        message = ChatMessage(
            id=PydanticObjectId(), conversation_id=sender, seq=seq, sender_id=sender, text="hi"
        )
        data = json.loads(selection.data_json(MessageNode.of(message)))
        assert data == {
            "messageAdded": {"id": data["messageAdded"]["id"], "seq": seq, "text": "hi"}
        }
    assert executor._relevant_sub_fields == {}


async def test_a_selection_that_may_depend_on_the_viewer_goes_the_ordinary_way(
    base_url: str, client: GraphQLClient
) -> None:
    chat = await task_chat(client)
    async with ws(base_url) as socket:
        assert (await socket.init(chat.poster.access))["type"] == "connection_ack"
        await socket.subscribe("1", WITH_SENDER, {"c": chat.conversation_id})
        await asyncio.sleep(SETTLE)
        before = executions()
        message = await sent(client, chat.tasker, chat.conversation_id, "hello")
        received = (await socket.next_data("1"))["messageAdded"]
        assert received == {**plain(message), "sender": {"id": chat.tasker.user_id}}
        assert executions() == before


async def test_a_lost_publication_is_filled_from_the_database_in_order(
    base_url: str, client: GraphQLClient
) -> None:
    chat = await task_chat(client)
    conversation_id = object_id(chat.conversation_id)
    async with ws(base_url) as ann:
        assert (await ann.init(chat.poster.access))["type"] == "connection_ack"
        await ann.subscribe("1", PLAIN, {"c": chat.conversation_id})
        await asyncio.sleep(SETTLE)
        await sent(client, chat.tasker, chat.conversation_id, "one")
        assert (await ann.next_data("1"))["messageAdded"]["seq"] == 1
        # Stored but never published, as when the broker drops a publication.
        await Conversation.get_pymongo_collection().update_one(
            {"_id": conversation_id}, {"$inc": {"last_seq": 1}}
        )
        await ChatMessage(
            conversation_id=conversation_id,
            seq=2,
            sender_id=object_id(chat.tasker.user_id),
            text="lost",
        ).insert()
        await sent(client, chat.tasker, chat.conversation_id, "three")
        received = [(await ann.next_data("1"))["messageAdded"] for _ in range(2)]
        assert [(m["seq"], m["text"]) for m in received] == [(2, "lost"), (3, "three")]
        assert await ann.silent()


async def test_complete_and_stop_end_a_framed_subscription(
    base_url: str, client: GraphQLClient
) -> None:
    chat = await task_chat(client)
    async with ws(base_url) as ann, ws(base_url, LEGACY_WS) as ann_legacy:
        for socket in (ann, ann_legacy):
            assert (await socket.init(chat.poster.access))["type"] == "connection_ack"
            await socket.subscribe("1", PLAIN, {"c": chat.conversation_id})
        await asyncio.sleep(SETTLE)
        await sent(client, chat.tasker, chat.conversation_id, "one")
        for socket in (ann, ann_legacy):
            assert (await socket.next_data("1"))["messageAdded"]["seq"] == 1
        await ann.send({"id": "1", "type": "complete"})
        await ann_legacy.send({"id": "1", "type": "stop"})
        assert await frame(ann_legacy) == {"type": "complete", "id": "1"}
        await asyncio.sleep(SETTLE)
        await sent(client, chat.tasker, chat.conversation_id, "two")
        assert await ann.silent() and await ann_legacy.silent(0.1)
        # The id is free again, and the socket carries on.
        await ann.subscribe("1", PLAIN, {"c": chat.conversation_id, "after": 1})
        assert (await ann.next_data("1"))["messageAdded"]["seq"] == 2


async def test_a_member_removed_from_the_conversation_gets_nothing_further(
    base_url: str, client: GraphQLClient, runtime: Runtime
) -> None:
    chat = await task_chat(client)
    root = await logged_in_admin(client, runtime)
    async with ws(base_url) as tom, ws(base_url, LEGACY_WS) as tom_legacy:
        for socket in (tom, tom_legacy):
            assert (await socket.init(chat.tasker.access))["type"] == "connection_ack"
            await socket.subscribe("1", PLAIN, {"c": chat.conversation_id})
        await asyncio.sleep(SETTLE)
        await sent(client, chat.poster, chat.conversation_id, "welcome")
        for socket in (tom, tom_legacy):
            assert (await socket.next_data("1"))["messageAdded"]["seq"] == 1
        removed = await client.mutate(
            "removeConversationMember",
            {"conversationId": chat.conversation_id, "userId": chat.tasker.user_id},
            token=root.access,
        )
        assert removed["errors"] == []
        # As on the ordinary path: the error that ends it, then `complete`.
        for socket, kind in ((tom, "next"), (tom_legacy, "data")):
            ended = await frame(socket)
            assert (ended["id"], ended["type"], ended["payload"]["data"]) == ("1", kind, None)
            [error] = ended["payload"]["errors"]
            assert error["extensions"] == {"code": "FORBIDDEN", "field": "conversationId"}
            assert (await frame(socket)) == {"id": "1", "type": "complete"}
        await sent(client, chat.poster, chat.conversation_id, "are you there?")
        assert await tom.silent() and await tom_legacy.silent(0.1)


async def test_a_member_who_logs_out_gets_nothing_further(
    base_url: str, client: GraphQLClient
) -> None:
    chat = await task_chat(client)
    async with ws(base_url) as tom:
        assert (await tom.init(chat.tasker.access))["type"] == "connection_ack"
        await tom.subscribe("1", PLAIN, {"c": chat.conversation_id})
        await asyncio.sleep(SETTLE)
        await sent(client, chat.poster, chat.conversation_id, "welcome")
        assert (await tom.next_data("1"))["messageAdded"]["seq"] == 1
        logged_out = await client.mutate("logout", {}, token=chat.tasker.access)
        assert logged_out["errors"] == [], logged_out
        sending = asyncio.create_task(sent(client, chat.poster, chat.conversation_id, "hello?"))
        ended = await frame(tom)
        assert (ended["id"], ended["type"]) == ("1", "error"), ended
        assert ended["payload"][0]["extensions"]["code"] == "SESSION_REVOKED"
        assert (await tom.closed())[0] == 4403
        await sending


async def test_redis_restarting_loses_no_framed_message_and_repeats_none(
    tmp_path: Path, runtime: Runtime, client: GraphQLClient
) -> None:
    chat = await task_chat(client)
    ann, tom, conversation = chat.poster, chat.tasker, chat.conversation_id
    since = {"c": conversation}
    async with two_instances(tmp_path, runtime) as pair:
        own, on_a = pair.redis, pair.on_a
        async with ws(pair.url_b) as ann_on_b:
            await ann_on_b.init(ann.access)
            await ann_on_b.subscribe("chat", PLAIN, since)
            async with ws(pair.url_a) as tom_on_a:
                await tom_on_a.init(tom.access)
                await tom_on_a.subscribe("chat", PLAIN, since)
                await subscribed_in_redis(
                    own.url,
                    conversation_topic(object_id(conversation)),
                    user_topic(object_id(ann.user_id)),
                    user_topic(object_id(tom.user_id)),
                )
                before = executions()
                messages = [plain(await sent(on_a, ann, conversation, "before"))]
                for socket in (ann_on_b, tom_on_a):
                    assert (await received(socket, {"chat": 1}))["chat"] == messages
                assert executions() - before == 2  # once on each instance
                last_seen = messages[-1]["seq"]

                await asyncio.to_thread(own.stop)
            for who, text in ((tom, "during 1"), (ann, "during 2"), (tom, "during 3")):
                messages.append(plain(await promptly(sent(on_a, who, conversation, text))))
            assert await ann_on_b.silent(0.3)

            await asyncio.to_thread(own.start)
            async with ws(pair.url_b) as tom_on_b:
                await tom_on_b.init(tom.access)
                await tom_on_b.subscribe("chat", PLAIN, {**since, "after": last_seen})
                for socket in (ann_on_b, tom_on_b):
                    assert (await received(socket, {"chat": 3}))["chat"] == messages[1:]
                await subscribed_in_redis(own.url, conversation_topic(object_id(conversation)))
                messages.append(plain(await sent(on_a, tom, conversation, "after")))
                for socket in (ann_on_b, tom_on_b):
                    assert (await received(socket, {"chat": 1}))["chat"] == messages[-1:]
                    assert await socket.silent()
    assert [m["seq"] for m in messages] == [1, 2, 3, 4, 5]


async def test_a_framed_subscriber_that_stops_reading_is_closed_with_1013(
    runtime: Runtime,
) -> None:
    small = with_small_queues(runtime)
    async with serve(small) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        client = GraphQLClient(http)
        chat = await task_chat(client)
        conversation_id = PydanticObjectId(object_id(chat.conversation_id))
        sender_id = object_id(chat.tasker.user_id)
        # Long enough that what fills the buffers is under one replay (500 messages).
        text = "x" * max(4000, in_flight() // 400)

        async def publish(seq: int) -> None:
            """Stored and published as sendMessage does, without its round trip."""
            message = ChatMessage(
                conversation_id=conversation_id, seq=seq, sender_id=sender_id, text=text
            )
            await message.insert()
            added = chat_signals.MessageAdded(message=message)
            await chat_signals.send(small.services.broker, conversation_id, added)

        closed_before = slow_closed()
        async with stalling_client(url) as slow, ws(url) as healthy:
            for each in (slow, healthy):
                await each.init(chat.poster.access)
                await each.subscribe("1", PLAIN, {"c": chat.conversation_id})
            await asyncio.sleep(SETTLE)
            count = in_flight() // len(text) + QUEUE_SIZE + 2
            for seq in range(1, count + 1):
                await publish(seq)
                assert (await healthy.next_data("1"))["messageAdded"]["seq"] == seq

            caught_up = []
            try:
                while True:
                    caught_up.append((await slow.next_data("1"))["messageAdded"]["seq"])
            except ConnectionClosed:
                pass
            close = (slow.connection.close_code, slow.connection.close_reason)
            assert close == (1013, "Subscriber too slow; reconnect with after")
            assert slow_closed() == closed_before + 1
            assert 0 < len(caught_up) < count, "never fell behind: raise in_flight()"
            assert caught_up == list(range(1, len(caught_up) + 1))  # in order, none skipped

        async with ws(url) as again:
            await again.init(chat.poster.access)
            await again.subscribe("1", PLAIN, {"c": chat.conversation_id, "after": caught_up[-1]})
            rest = [
                (await again.next_data("1"))["messageAdded"]["seq"]
                for _ in range(len(caught_up), count)
            ]
            assert rest == list(range(len(caught_up) + 1, count + 1))
            assert await again.silent()
