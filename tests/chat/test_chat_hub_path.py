"""Framed chat subscriptions on graphql-transport-ws, once caught up, are entries in the
broker's hub written from its own call (schema/live/hub_writer.py): no task per idle
operation, and `complete` leaves nothing behind in the hub. (Order, gaps, RESYNC, 1013
and access changes through a real socket: tests/chat/test_chat_framed.py; each handover
step by step: tests/realtime/test_hub_writer.py.)"""

from __future__ import annotations

import asyncio
import gc

from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from realtime.topics import conversation_topic
from schema.live.hub_writer import HubWritten
from server.runtime import Runtime
from tests.support.chat import sent, task_chat
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import object_id
from tests.support.ws_client import LEGACY_WS, ws

PLAIN = """subscription($c: ID!, $after: Int) {
  messageAdded(conversationId: $c, after: $after) { id seq text } }"""
SETTLE = 0.2
OPERATIONS = 5


def operation_tasks() -> list[asyncio.Task[object]]:
    """Tasks running a websocket operation, or a writer's catching up."""
    names = {"TransportWSHandler.run_operation", "HubWritten._owned"}
    return [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ in names]  # type: ignore[union-attr]


def hub_entries(runtime: Runtime, conversation_id: str) -> int:
    topic = conversation_topic(object_id(conversation_id))
    return len(runtime.services.broker._hub._by_topic.get(topic, ()))  # type: ignore[attr-defined]


async def test_idle_framed_operations_hold_no_task_and_are_written_from_the_hub(
    base_url: str, client: GraphQLClient, runtime: Runtime
) -> None:
    chat = await task_chat(client)
    async with ws(base_url) as ann:
        assert (await ann.init(chat.poster.access))["type"] == "connection_ack"
        for n in range(OPERATIONS):
            await ann.subscribe(str(n), PLAIN, {"c": chat.conversation_id, "after": 0})
        await asyncio.sleep(SETTLE)
        assert operation_tasks() == []
        assert hub_entries(runtime, chat.conversation_id) == OPERATIONS
        in_hub = HubWritten.written_in_hub
        for text in ("one", "two"):
            await sent(client, chat.tasker, chat.conversation_id, text)
        received: dict[str, list[tuple[int, str]]] = {str(n): [] for n in range(OPERATIONS)}
        for _ in range(2 * OPERATIONS):  # the operations' frames interleave
            message = await ann.receive()
            added = message["payload"]["data"]["messageAdded"]
            received[message["id"]].append((added["seq"], added["text"]))
        assert all(each == [(1, "one"), (2, "two")] for each in received.values()), received
        assert HubWritten.written_in_hub - in_hub == 2 * OPERATIONS
        assert operation_tasks() == []
        # `complete` while idle: the entries go, and the ids are free again.
        for n in range(OPERATIONS):
            await ann.send({"id": str(n), "type": "complete"})
        await asyncio.sleep(SETTLE)
        assert hub_entries(runtime, chat.conversation_id) == 0
        await sent(client, chat.tasker, chat.conversation_id, "three")
        assert await ann.silent()
        await ann.subscribe("0", PLAIN, {"c": chat.conversation_id, "after": 2})
        assert (await ann.next_data("0"))["messageAdded"]["text"] == "three"
    await asyncio.sleep(SETTLE)
    # The socket's end leaves nothing either.
    assert hub_entries(runtime, chat.conversation_id) == 0 and operation_tasks() == []


async def test_the_legacy_protocol_keeps_a_task_per_operation(
    base_url: str, client: GraphQLClient, runtime: Runtime
) -> None:
    chat = await task_chat(client)
    async with ws(base_url, LEGACY_WS) as ann:
        assert (await ann.init(chat.poster.access))["type"] == "connection_ack"
        await ann.subscribe("1", PLAIN, {"c": chat.conversation_id})
        await asyncio.sleep(SETTLE)
        in_hub = HubWritten.written_in_hub
        await sent(client, chat.tasker, chat.conversation_id, "one")
        assert (await ann.next_data("1"))["messageAdded"]["seq"] == 1
        assert HubWritten.written_in_hub == in_hub
    await asyncio.sleep(SETTLE)
    assert hub_entries(runtime, chat.conversation_id) == 0


async def test_a_parked_operation_keeps_its_id_taken(
    base_url: str, client: GraphQLClient, runtime: Runtime
) -> None:
    """Strawberry's bookkeeping still holds it: a second `subscribe` with the same id
    closes the socket with 4409, as for any operation under way, and the close ends the
    parked one too."""
    chat = await task_chat(client)
    async with ws(base_url) as ann:
        assert (await ann.init(chat.poster.access))["type"] == "connection_ack"
        await ann.subscribe("1", PLAIN, {"c": chat.conversation_id})
        await asyncio.sleep(SETTLE)
        assert operation_tasks() == [] and hub_entries(runtime, chat.conversation_id) == 1
        await ann.subscribe("1", PLAIN, {"c": chat.conversation_id})
        code, reason = await ann.closed()
        assert (code, reason) == (4409, "Subscriber for 1 already exists")
    await asyncio.sleep(SETTLE)
    assert hub_entries(runtime, chat.conversation_id) == 0


def executors() -> int:
    return sum(isinstance(o, StrawberryGraphQLCoreExecutionContext) for o in gc.get_objects())


async def test_operations_of_a_known_selection_leave_no_executor_for_the_collector(
    base_url: str, client: GraphQLClient
) -> None:
    """Each framed operation builds an executor (to coerce its variables), but executes on
    the one its text was first prepared with. graphql-core's executor refers to itself
    (schema/released.py), so one not kept stayed in memory, with what it reached, until
    a full collection: about 2 KB an idle subscription, as an idle server rarely runs one."""
    chat = await task_chat(client)
    async with ws(base_url) as ann:
        assert (await ann.init(chat.poster.access))["type"] == "connection_ack"
        await ann.subscribe("first", PLAIN, {"c": chat.conversation_id, "after": 0})
        await asyncio.sleep(SETTLE)
        gc.collect()
        gc.disable()
        try:
            before = executors()
            for n in range(OPERATIONS):
                await ann.subscribe(str(n), PLAIN, {"c": chat.conversation_id, "after": 0})
            await asyncio.sleep(SETTLE)
            assert executors() == before
        finally:
            gc.enable()
