"""Chat messages left unread are told beyond the app GIGQL_CHAT_NOTIFICATION_DELAY later,
once per conversation and recipient for each stretch of unread messages; a notice whose
recipient has read the conversation by then is dropped."""

from __future__ import annotations

from datetime import datetime, timedelta

from documents.chat.conversations import ChatMessage
from documents.notifications.catalogue import NotificationKind as K
from documents.notifications.scheduled import ScheduledStatus
from resolvers.notifications.scheduled import turn_due
from server.runtime import Runtime
from tests.support.chat import sent, task_chat
from tests.support.graphql_client import GraphQLClient, Tokens
from tests.support.marketplace import object_id
from tests.support.scheduled import deliveries, scheduled_messages

DELAY = timedelta(minutes=5)
"""GIGQL_CHAT_NOTIFICATION_DELAY's default, which the tests' app runs on."""


async def _sent_at(message: dict[str, object]) -> datetime:
    stored = await ChatMessage.get(object_id(str(message["id"])))
    assert stored is not None
    return stored.sent_at


async def _read(client: GraphQLClient, who: Tokens, conversation_id: str) -> None:
    payload = await client.mutate(
        "markConversationRead", {"conversationId": conversation_id}, token=who.access
    )
    assert payload["errors"] == [], payload


async def test_three_messages_in_a_row_make_one_notice(
    client: GraphQLClient, runtime: Runtime
) -> None:
    assert runtime.services.settings.chat_notification_delay == DELAY
    chat = await task_chat(client)
    first = await sent(client, chat.tasker, chat.conversation_id, "Hi, about the lawn")
    await sent(client, chat.tasker, chat.conversation_id, "I can come on Saturday")
    await sent(client, chat.tasker, chat.conversation_id, "Does 9am suit?")

    [notice] = await scheduled_messages(kind=K.CHAT_MESSAGE)
    ann = object_id(chat.poster.user_id)
    assert notice.user_id == ann
    assert notice.due_at == await _sent_at(first) + DELAY
    assert notice.context["conversation_id"] == str(object_id(chat.conversation_id))
    assert notice.title == "You have unread messages from Test User"  # the sign-up name

    assert await turn_due(runtime.services, notice.due_at - timedelta(seconds=1)) == 0
    assert await turn_due(runtime.services, notice.due_at) == 1
    assert await deliveries() == [(K.CHAT_MESSAGE, ann, "email")]
    # More while Ann still has not read them: she has been told already.
    await sent(client, chat.tasker, chat.conversation_id, "Or Sunday?")
    assert len(await scheduled_messages(kind=K.CHAT_MESSAGE)) == 1


async def test_a_notice_is_dropped_when_the_conversation_is_read_before_it_is_due(
    client: GraphQLClient, runtime: Runtime
) -> None:
    chat = await task_chat(client)
    await sent(client, chat.tasker, chat.conversation_id, "Hi, about the lawn")
    await _read(client, chat.poster, chat.conversation_id)  # Ann had the chat open
    [notice] = await scheduled_messages(kind=K.CHAT_MESSAGE)

    assert await turn_due(runtime.services, notice.due_at) == 1
    dropped = (await scheduled_messages(kind=K.CHAT_MESSAGE))[0]
    assert (dropped.status, dropped.ended_reason) == (
        ScheduledStatus.DROPPED,
        "they have read the conversation since",
    )
    assert await deliveries() == []


async def test_reading_opens_a_new_window_and_writing_counts_as_reading(
    client: GraphQLClient, runtime: Runtime
) -> None:
    chat = await task_chat(client)
    await sent(client, chat.tasker, chat.conversation_id, "Hi, about the lawn")
    await _read(client, chat.poster, chat.conversation_id)
    await sent(client, chat.tasker, chat.conversation_id, "Are you there?")  # a new stretch
    await sent(client, chat.poster, chat.conversation_id, "Yes!")  # Ann reads by answering

    notices = await scheduled_messages(kind=K.CHAT_MESSAGE)
    ann, tom = object_id(chat.poster.user_id), object_id(chat.tasker.user_id)
    assert [(n.user_id, n.context["read_up_to"]) for n in notices] == [(ann, 0), (ann, 1), (tom, 2)]
    latest = max(n.due_at for n in notices)
    assert await turn_due(runtime.services, latest) == 3
    # Ann read both of Tom's stretches in time; Tom has not read her answer.
    assert [n.status for n in await scheduled_messages(kind=K.CHAT_MESSAGE)] == [
        ScheduledStatus.DROPPED,
        ScheduledStatus.DROPPED,
        ScheduledStatus.DONE,
    ]
    assert await deliveries() == [(K.CHAT_MESSAGE, tom, "email")]
