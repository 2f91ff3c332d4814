"""Chat over HTTP: who may talk, what a message may hold, history, unread counts,
editing, deleting, and moderation."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx

from documents.chat.conversations import ChatMessage, Conversation
from documents.marketplace.tasks import Task, TaskStatus
from server.runtime import Runtime
from tests.conftest import serve
from tests.support.bookings import provider
from tests.support.chat import (
    CONVERSATION_FIELDS,
    MESSAGE_FIELDS,
    open_conversation,
    send,
    sent,
    task_chat,
)
from tests.support.graphql_client import GraphQLClient, error_codes
from tests.support.marketplace import logged_in_admin, make_offer, object_id, post_task, tasker
from tests.support.reviews import confirmed_booking

NODE = f"query($id: ID!) {{ node(id: $id) {{ ... on Conversation {{ {CONVERSATION_FIELDS} }} }} }}"
HISTORY = f"""query($id: ID!, $first: Int, $after: String) {{ node(id: $id) {{
  ... on Conversation {{ messages(first: $first, after: $after) {{
    edges {{ node {{ {MESSAGE_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }} }} }} }} }}"""
MY_CONVERSATIONS = f"""{{ myConversations {{ edges {{ node {{ {CONVERSATION_FIELDS}
  lastMessage {{ text }} }} }} }} }}"""


async def test_a_task_conversation_is_between_the_poster_and_one_tasker_who_offered(
    client: GraphQLClient,
) -> None:
    chat = await task_chat(client)
    again = await open_conversation(client, chat.poster, chat.task_id, chat.tasker.user_id)
    assert again["conversation"]["id"] == chat.conversation_id
    members = {m["user"]["id"] for m in again["conversation"]["members"]}
    assert members == {chat.poster.user_id, chat.tasker.user_id}

    sue = await tasker(client, "sue@example.com")  # never offered
    refused = await open_conversation(client, sue, chat.task_id)
    assert error_codes(refused) == ["FORBIDDEN"] and refused["conversation"] is None
    no_tasker = await open_conversation(client, chat.poster, chat.task_id)
    assert error_codes(no_tasker) == ["INVALID_INPUT"]
    not_offered = await open_conversation(client, chat.poster, chat.task_id, sue.user_id)
    assert error_codes(not_offered) == ["FORBIDDEN"]
    # Nobody else reads it, and nothing was opened for the refused.
    hidden = await client.data(NODE, {"id": chat.conversation_id}, token=sue.access)
    assert hidden["node"] is None
    assert await Conversation.count() == 1


async def test_racing_openers_share_one_conversation(client: GraphQLClient) -> None:
    ann = await client.member("ann@example.com", roles=("POSTER",))
    tom = await tasker(client, "tom@example.com")
    task = await post_task(client, ann)
    await make_offer(client, tom, task["id"])
    opened = await asyncio.gather(
        *(open_conversation(client, tom, task["id"]) for _ in range(4)),
        *(open_conversation(client, ann, task["id"], tom.user_id) for _ in range(4)),
    )
    assert all(o["errors"] == [] for o in opened)
    assert len({o["conversation"]["id"] for o in opened}) == 1
    assert await Conversation.count() == 1


async def test_a_booking_conversation_is_for_its_customer_and_provider(
    client: GraphQLClient,
) -> None:
    cat = await client.member("cat@example.com", roles=("POSTER",))
    pam = await provider(client, "pam@example.com")
    booking_id = await confirmed_booking(client, cat, pam)
    opened = await open_conversation(client, cat, booking_id)
    assert opened["conversation"]["subject"] == "BOOKING"
    assert (await open_conversation(client, pam, booking_id))["conversation"]["id"] == (
        opened["conversation"]["id"]
    )
    stranger = await client.member("eve@example.com", roles=("POSTER",))
    assert error_codes(await open_conversation(client, stranger, booking_id)) == ["NOT_FOUND"]
    refused = await send(client, stranger, opened["conversation"]["id"], "hello")
    assert error_codes(refused) == ["NOT_FOUND"]


async def test_text_is_stored_exactly_as_sent(client: GraphQLClient) -> None:
    chat = await task_chat(client)
    text = "  <script>alert('hi')</script> & *not markdown*\n\n  "
    message = await sent(client, chat.tasker, chat.conversation_id, text)
    assert message["text"] == text and message["seq"] == 1
    stored = await ChatMessage.get(object_id(message["id"]))
    assert stored is not None and stored.text == text
    with_links = await send(
        client,
        chat.poster,
        chat.conversation_id,
        "",
        attachmentUrls=["https://files.example.com/a.jpg", "https://files.example.com/b.pdf"],
    )
    assert with_links["errors"] == [] and len(with_links["message"]["attachmentUrls"]) == 2


async def test_bad_messages_change_nothing(client: GraphQLClient) -> None:
    chat = await task_chat(client)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"text": "x" * 4001}, "text"),
        ({"text": " \n "}, "text"),
        (
            {"text": "see", "attachmentUrls": ["http://insecure.example.com/a.jpg"]},
            "attachmentUrls.0",
        ),
        ({"text": "see", "attachmentUrls": ["javascript:alert(1)"]}, "attachmentUrls.0"),
        (
            {"text": "see", "attachmentUrls": [f"https://x.example.com/{i}" for i in range(11)]},
            "attachmentUrls",
        ),
    ]
    for fields, field in cases:
        text = fields.pop("text")
        refused = await send(client, chat.tasker, chat.conversation_id, text, **fields)
        assert [(e["field"], e["code"]) for e in refused["errors"]] == [(field, "INVALID_INPUT")]
        assert refused["message"] is None
    assert (await sent(client, chat.tasker, chat.conversation_id, "x" * 4000))["seq"] == 1
    assert await ChatMessage.count() == 1


async def test_concurrent_senders_get_every_number_once(client: GraphQLClient) -> None:
    chat = await task_chat(client)
    results = await asyncio.gather(
        *(
            send(client, who, chat.conversation_id, f"message {i}")
            for i in range(12)
            for who in (chat.poster, chat.tasker)
        )
    )
    assert all(r["errors"] == [] for r in results)
    assert sorted(r["message"]["seq"] for r in results) == list(range(1, 25))
    conversation = await Conversation.get(object_id(chat.conversation_id))
    assert conversation is not None and conversation.last_seq == 24


async def test_history_comes_newest_first_in_pages(client: GraphQLClient) -> None:
    chat = await task_chat(client)
    for i in range(5):
        await sent(client, chat.poster if i % 2 else chat.tasker, chat.conversation_id, f"m{i}")
    seen: list[int] = []
    after = None
    while True:
        data = await client.data(
            HISTORY,
            {"id": chat.conversation_id, "first": 2, "after": after},
            token=chat.poster.access,
        )
        messages = data["node"]["messages"]
        seen += [edge["node"]["seq"] for edge in messages["edges"]]
        if not messages["pageInfo"]["hasNextPage"]:
            break
        after = messages["pageInfo"]["endCursor"]
    assert seen == [5, 4, 3, 2, 1]


async def test_my_conversations_by_last_activity_with_unread_counts(
    client: GraphQLClient,
) -> None:
    first = await task_chat(client)
    sue = await tasker(client, "sue@example.com")
    await make_offer(client, sue, first.task_id)
    second = await open_conversation(client, sue, first.task_id)
    second_id = second["conversation"]["id"]
    ann = first.poster

    await sent(client, first.tasker, first.conversation_id, "one")
    await sent(client, sue, second_id, "two")
    await sent(client, sue, second_id, "three")
    listed = [
        e["node"]
        for e in (await client.data(MY_CONVERSATIONS, token=ann.access))["myConversations"]["edges"]
    ]
    assert [(c["id"], c["unreadCount"], c["lastMessage"]["text"]) for c in listed] == [
        (second_id, 2, "three"),
        (first.conversation_id, 1, "one"),
    ]
    # Replying reads what came before; the sender's own messages are never unread.
    await sent(client, ann, first.conversation_id, "thanks")
    read = await client.mutate(
        "markConversationRead",
        {"conversationId": second_id},
        f"conversation {{ {CONVERSATION_FIELDS} }}",
        token=ann.access,
    )
    assert read["conversation"]["unreadCount"] == 0
    listed = [
        e["node"]
        for e in (await client.data(MY_CONVERSATIONS, token=ann.access))["myConversations"]["edges"]
    ]
    assert [(c["id"], c["unreadCount"]) for c in listed] == [
        (first.conversation_id, 0),
        (second_id, 0),
    ]
    theirs = await client.data(MY_CONVERSATIONS, token=first.tasker.access)
    [tom_view] = [e["node"] for e in theirs["myConversations"]["edges"]]
    assert tom_view["unreadCount"] == 1
    receipts = {m["user"]["id"]: m["lastReadSeq"] for m in tom_view["members"]}
    assert receipts == {ann.user_id: 2, first.tasker.user_id: 1}


async def test_read_receipts_only_move_forward(client: GraphQLClient) -> None:
    chat = await task_chat(client)
    messages = [await sent(client, chat.tasker, chat.conversation_id, f"m{i}") for i in range(3)]

    async def mark(message_id: str) -> int:
        payload = await client.mutate(
            "markConversationRead",
            {"conversationId": chat.conversation_id, "messageId": message_id},
            "conversation { unreadCount }",
            token=chat.poster.access,
        )
        assert payload["errors"] == [], payload
        unread: int = payload["conversation"]["unreadCount"]
        return unread

    assert await mark(messages[1]["id"]) == 1
    assert await mark(messages[0]["id"]) == 1
    other = await task_chat(client, "bea@example.com", "sid@example.com")
    foreign = await sent(client, other.tasker, other.conversation_id, "elsewhere")
    refused = await client.mutate(
        "markConversationRead",
        {"conversationId": chat.conversation_id, "messageId": foreign["id"]},
        token=chat.poster.access,
    )
    assert error_codes(refused) == ["NOT_FOUND"]


async def test_edit_and_delete_ones_own_message_leave_a_tombstone(client: GraphQLClient) -> None:
    chat = await task_chat(client)
    message = await sent(client, chat.tasker, chat.conversation_id, "See you at 9")
    not_mine = await client.mutate(
        "editMessage", {"messageId": message["id"], "text": "hacked"}, token=chat.poster.access
    )
    assert error_codes(not_mine) == ["FORBIDDEN"]
    edited = await client.mutate(
        "editMessage",
        {"messageId": message["id"], "text": "See you at 10"},
        f"message {{ {MESSAGE_FIELDS} }}",
        token=chat.tasker.access,
    )
    assert edited["message"]["text"] == "See you at 10" and edited["message"]["editedAt"]
    deleted = await client.mutate(
        "deleteMessage",
        {"messageId": message["id"]},
        f"message {{ {MESSAGE_FIELDS} }}",
        token=chat.tasker.access,
    )
    tombstone = deleted["message"]
    assert (tombstone["deleted"], tombstone["text"], tombstone["seq"]) == (True, "", 1)
    again = await client.mutate(
        "deleteMessage", {"messageId": message["id"]}, token=chat.tasker.access
    )
    assert error_codes(again) == ["INVALID_STATE"]
    stored = await ChatMessage.get(object_id(message["id"]))
    assert stored is not None and stored.text == "" and stored.deleted_at is not None


async def test_messages_cannot_change_after_the_window(
    runtime: Runtime, client: GraphQLClient
) -> None:
    chat = await task_chat(client)
    async with (
        serve(runtime, chat_edit_window=timedelta(0)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        late = GraphQLClient(http)
        if True:
            message = await sent(late, chat.tasker, chat.conversation_id, "typo")
            refused = await late.mutate(
                "editMessage",
                {"messageId": message["id"], "text": "fixed"},
                token=chat.tasker.access,
            )
            assert error_codes(refused) == ["INVALID_STATE"]
            deleted = await late.mutate(
                "deleteMessage", {"messageId": message["id"]}, token=chat.tasker.access
            )
            assert error_codes(deleted) == ["INVALID_STATE"]
    stored = await ChatMessage.get(object_id(message["id"]))
    assert stored is not None and stored.text == "typo" and stored.deleted_at is None


async def test_admins_read_only_disputed_conversations_and_never_write(
    runtime: Runtime, client: GraphQLClient
) -> None:
    chat = await task_chat(client)
    root = await logged_in_admin(client, runtime)
    await sent(client, chat.tasker, chat.conversation_id, "I did it")
    assert (await client.data(NODE, {"id": chat.conversation_id}, token=root.access))[
        "node"
    ] is None
    await Task.get_pymongo_collection().update_one(
        {"_id": object_id(chat.task_id)}, {"$set": {"status": TaskStatus.DISPUTED.value}}
    )
    read = await client.data(NODE, {"id": chat.conversation_id}, token=root.access)
    assert read["node"]["lastSeq"] == 1
    refused = await send(client, root, chat.conversation_id, "admin here")
    assert error_codes(refused) == ["FORBIDDEN"]


async def test_a_removed_member_can_neither_read_nor_write(
    runtime: Runtime, client: GraphQLClient
) -> None:
    chat = await task_chat(client)
    root = await logged_in_admin(client, runtime)
    not_admin = await client.execute(
        "mutation($i: RemoveConversationMemberInput!) { removeConversationMember(input: $i) "
        "{ errors { code } } }",
        {"i": {"conversationId": chat.conversation_id, "userId": chat.poster.user_id}},
        token=chat.tasker.access,
    )
    assert not_admin["data"] is None and not_admin["errors"]
    removed = await client.mutate(
        "removeConversationMember",
        {"conversationId": chat.conversation_id, "userId": chat.tasker.user_id},
        f"conversation {{ {CONVERSATION_FIELDS} }}",
        token=root.access,
    )
    flags = {m["user"]["id"]: m["removed"] for m in removed["conversation"]["members"]}
    assert flags == {chat.poster.user_id: False, chat.tasker.user_id: True}
    assert error_codes(await send(client, chat.tasker, chat.conversation_id, "hi")) == ["NOT_FOUND"]
    hidden = await client.data(NODE, {"id": chat.conversation_id}, token=chat.tasker.access)
    assert hidden["node"] is None
    reopened = await open_conversation(client, chat.tasker, chat.task_id)
    assert error_codes(reopened) == ["FORBIDDEN"]
    assert (await client.data(MY_CONVERSATIONS, token=chat.tasker.access))["myConversations"] == {
        "edges": []
    }
