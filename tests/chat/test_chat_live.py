"""Live chat over real websockets: messages as they are sent, replay after a reconnect,
changes, read receipts, typing, and the end of access."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from documents.chat.conversations import ChatMessage, Conversation
from server.runtime import Runtime
from tests.support.chat import MESSAGE_ADDED, sent, task_chat
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import logged_in_admin, object_id, tasker
from tests.support.ws_client import LEGACY_WS, TRANSPORT_WS, WsClient, ws

MESSAGE_CHANGED = """subscription($c: ID!) {
  messageChanged(conversationId: $c) { id seq text deleted editedAt } }"""
READ_RECEIPTS = """subscription($c: ID!) {
  readReceipts(conversationId: $c) { lastReadSeq user { id } } }"""
TYPING = """subscription($c: ID!) { typing(conversationId: $c) { typing user { id } } }"""
SETTLE = 0.2
"""Seconds for a subscription to reach the broker before the test acts."""


async def subscribed(socket: WsClient, token: str, query: str, variables: dict[str, Any]) -> None:
    assert (await socket.init(token))["type"] == "connection_ack"
    await socket.subscribe("1", query, variables)
    await asyncio.sleep(SETTLE)


async def error_code(socket: WsClient) -> str:
    """The code of the error that ended subscription "1"."""
    while (message := await socket.receive())["type"] in ("ka", "ping", "pong"):
        pass
    assert message["id"] == "1" and message["type"] in ("next", "data", "error"), message
    payload = message["payload"]
    errors = payload if isinstance(payload, list) else payload["errors"]
    code: str = errors[0]["extensions"]["code"]
    return code


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_messages_arrive_as_they_are_sent(
    base_url: str, client: GraphQLClient, protocol: str
) -> None:
    chat = await task_chat(client)
    async with ws(base_url, protocol) as socket:
        await subscribed(socket, chat.poster.access, MESSAGE_ADDED, {"c": chat.conversation_id})
        message = await sent(client, chat.tasker, chat.conversation_id, "On my way <b>now</b>")
        received = (await socket.next_data("1"))["messageAdded"]
        assert received == message
        assert received["text"] == "On my way <b>now</b>" and received["seq"] == 1


async def test_members_asking_the_same_get_one_result_each_under_their_own_id(
    base_url: str, client: GraphQLClient
) -> None:
    # A selection whose result is executed once for both (schema/common/shared_events.py).
    query = "subscription($c: ID!) { messageAdded(conversationId: $c) { id seq text } }"
    chat = await task_chat(client)
    variables = {"c": chat.conversation_id}
    async with ws(base_url) as ann, ws(base_url) as tom:
        assert (await ann.init(chat.poster.access))["type"] == "connection_ack"
        assert (await tom.init(chat.tasker.access))["type"] == "connection_ack"
        await ann.subscribe("ann's", query, variables)
        await tom.subscribe("tom's", query, variables)
        await asyncio.sleep(SETTLE)
        for text in ("one", "two"):
            message = await sent(client, chat.tasker, chat.conversation_id, text)
            expected = {"id": message["id"], "seq": message["seq"], "text": text}
            assert (await ann.next_data("ann's"))["messageAdded"] == expected
            assert (await tom.next_data("tom's"))["messageAdded"] == expected


async def test_a_reconnect_with_after_has_no_gap_and_no_duplicate(
    base_url: str, client: GraphQLClient
) -> None:
    chat = await task_chat(client)
    async with ws(base_url) as socket:
        await subscribed(socket, chat.poster.access, MESSAGE_ADDED, {"c": chat.conversation_id})
        await sent(client, chat.tasker, chat.conversation_id, "one")
        last_seen = (await socket.next_data("1"))["messageAdded"]["seq"]
    for text in ("two", "three"):  # while disconnected
        await sent(client, chat.tasker, chat.conversation_id, text)

    async with ws(base_url) as socket:
        assert (await socket.init(chat.poster.access))["type"] == "connection_ack"
        await socket.subscribe("1", MESSAGE_ADDED, {"c": chat.conversation_id, "after": last_seen})
        # Sent while the replay may still be running: it must come once, in order.
        racing = asyncio.create_task(sent(client, chat.tasker, chat.conversation_id, "four"))
        received = [(await socket.next_data("1"))["messageAdded"] for _ in range(3)]
        await racing
        await sent(client, chat.poster, chat.conversation_id, "five")
        received.append((await socket.next_data("1"))["messageAdded"])
        assert await socket.silent()
    assert [(m["seq"], m["text"]) for m in received] == [
        (2, "two"),
        (3, "three"),
        (4, "four"),
        (5, "five"),
    ]


async def test_a_lost_publication_is_filled_from_the_database(
    base_url: str, client: GraphQLClient
) -> None:
    chat = await task_chat(client)
    conversation_id = object_id(chat.conversation_id)
    async with ws(base_url) as socket:
        await subscribed(socket, chat.poster.access, MESSAGE_ADDED, {"c": chat.conversation_id})
        await sent(client, chat.tasker, chat.conversation_id, "one")
        assert (await socket.next_data("1"))["messageAdded"]["seq"] == 1
        # A message stored but never published, as when the broker drops it.
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
        received = [(await socket.next_data("1"))["messageAdded"] for _ in range(2)]
    assert [(m["seq"], m["text"]) for m in received] == [(2, "lost"), (3, "three")]


async def test_edits_and_deletions_arrive_live(base_url: str, client: GraphQLClient) -> None:
    chat = await task_chat(client)
    message = await sent(client, chat.tasker, chat.conversation_id, "at 9")
    async with ws(base_url) as socket:
        await subscribed(socket, chat.poster.access, MESSAGE_CHANGED, {"c": chat.conversation_id})
        await client.mutate(
            "editMessage", {"messageId": message["id"], "text": "at 10"}, token=chat.tasker.access
        )
        edited = (await socket.next_data("1"))["messageChanged"]
        assert (edited["id"], edited["text"], edited["deleted"]) == (message["id"], "at 10", False)
        await client.mutate("deleteMessage", {"messageId": message["id"]}, token=chat.tasker.access)
        deleted = (await socket.next_data("1"))["messageChanged"]
        assert (deleted["text"], deleted["deleted"]) == ("", True)


async def test_read_receipts_and_typing_reach_the_other_member(
    base_url: str, client: GraphQLClient
) -> None:
    chat = await task_chat(client)
    await sent(client, chat.poster, chat.conversation_id, "hello")
    variables = {"c": chat.conversation_id}
    async with ws(base_url) as receipts, ws(base_url) as typing:
        await subscribed(receipts, chat.poster.access, READ_RECEIPTS, variables)
        await subscribed(typing, chat.poster.access, TYPING, variables)
        await client.mutate(
            "setTyping",
            {"conversationId": chat.conversation_id, "typing": True},
            token=chat.tasker.access,
        )
        assert (await typing.next_data("1"))["typing"] == {
            "typing": True,
            "user": {"id": chat.tasker.user_id},
        }
        # One's own typing is not echoed back.
        await client.mutate(
            "setTyping",
            {"conversationId": chat.conversation_id, "typing": True},
            token=chat.poster.access,
        )
        assert await typing.silent()
        await client.mutate(
            "markConversationRead",
            {"conversationId": chat.conversation_id},
            token=chat.tasker.access,
        )
        assert (await receipts.next_data("1"))["readReceipts"] == {
            "lastReadSeq": 1,
            "user": {"id": chat.tasker.user_id},
        }
        # Reading again changes nothing, so no receipt goes out.
        await client.mutate(
            "markConversationRead",
            {"conversationId": chat.conversation_id},
            token=chat.tasker.access,
        )
        assert await receipts.silent()


async def test_nobody_else_can_subscribe(base_url: str, client: GraphQLClient) -> None:
    chat = await task_chat(client)
    sue = await tasker(client, "sue@example.com")
    for query in (MESSAGE_ADDED, TYPING, READ_RECEIPTS, MESSAGE_CHANGED):
        async with ws(base_url) as socket:
            await socket.init(sue.access)
            await socket.subscribe("1", query, {"c": chat.conversation_id})
            assert await error_code(socket) == "NOT_FOUND"
    await sent(client, chat.tasker, chat.conversation_id, "private")
    assert await ChatMessage.count() == 1


async def test_removal_from_the_conversation_ends_the_subscription(
    base_url: str, client: GraphQLClient, runtime: Runtime
) -> None:
    chat = await task_chat(client)
    root = await logged_in_admin(client, runtime)
    async with ws(base_url) as socket:
        await subscribed(socket, chat.tasker.access, MESSAGE_ADDED, {"c": chat.conversation_id})
        removed = await client.mutate(
            "removeConversationMember",
            {"conversationId": chat.conversation_id, "userId": chat.tasker.user_id},
            token=root.access,
        )
        assert removed["errors"] == []
        assert await error_code(socket) == "FORBIDDEN"
        assert (await socket.receive())["type"] == "complete"
        await sent(client, chat.poster, chat.conversation_id, "are you there?")
        assert await socket.silent()
