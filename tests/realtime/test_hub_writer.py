"""Framed subscriptions written from the broker's hub (schema/live/hub_writer.py): while
caught up, each next message is written in the broker's own call, with no task; what
cannot be (a send that would wait, a jump, RESYNC, a decode that waits, the token's
end) goes to a task that catches up in order and parks the operation again.

The broker is the real in-process one and the stream the real `follow` steps; the
socket is a list of frames whose sends can be made to wait, as a full buffer makes
uvicorn's wait (the server tests, tests/chat/test_chat_framed.py, run the same path
through a real socket)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any, cast

import pytest
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import Operation

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from realtime.broker import InProcessBroker, Message
from realtime.streams import NOT_NOW, Feed, Followed, NotNow
from schema.live.framed import FrameTarget
from schema.live.hub_writer import HubWritten

TOPIC = "conversation:1"
CHECK = b"check"
"""A message whose decode must wait (as an access change's re-check)."""


class Socket:
    """Frames as sent, and sends that wait while `blocked`."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.gate: asyncio.Future[None] | None = None

    def block(self) -> None:
        self.gate = asyncio.get_running_loop().create_future()

    def unblock(self) -> None:
        gate, self.gate = self.gate, None
        if gate is not None:
            gate.set_result(None)

    async def send_text(self, text: str) -> None:
        # Written at once, as uvicorn writes to the transport, then waits to drain.
        self.frames.append(json.loads(text))
        if self.gate is not None:
            await self.gate

    def seqs(self) -> list[int]:
        frames = self.frames
        return [
            f["payload"]["data"]["n"]
            for f in frames
            if f["type"] == "next" and f["payload"]["data"]
        ]


class Handler:
    """What Strawberry's Operation asks of its handler."""

    def __init__(self, socket: Socket) -> None:
        self.socket = socket
        self.operations: dict[str, Operation[Any, Any]] = {}

    def forget_id(self, operation_id: str) -> None:
        del self.operations[operation_id]

    async def send_message(self, message: Any) -> None:
        await self.socket.send_text(json.dumps(message))


class Selection:
    def data_json(self, payload: object) -> str:
        return json.dumps({"n": payload})


class Stored:
    """The database's side: items by position; `decoded` counts awaited decodes."""

    def __init__(self) -> None:
        self.items: list[int] = []
        self.history_reads = 0
        self.decoded = 0
        self.refuse = False

    async def history(self, last: int | None) -> list[int]:
        self.history_reads += 1
        await asyncio.sleep(0)
        return [n for n in self.items if last is None or n > last]

    async def decode(self, message: Message) -> int | None:
        self.decoded += 1
        await asyncio.sleep(0)
        if message.data == CHECK:
            if self.refuse:
                raise DomainError(ErrorCode.FORBIDDEN, "You can no longer read this.")
            return None
        return int(message.data)

    @staticmethod
    def decode_now(message: Message) -> int | NotNow | None:
        return NOT_NOW if message.data == CHECK else int(message.data)


class Setup:
    def __init__(self, expires_in: float | None = None) -> None:
        self.broker = InProcessBroker(queue_size=50)
        self.stored = Stored()
        self.socket = Socket()
        self.handler = Handler(self.socket)
        self.expires_in = expires_in
        self.reported: list[Any] = []

    def writer(self, after: int | None) -> tuple[HubWritten, Operation[Any, Any]]:
        stored = self.stored
        feed = Feed(
            [TOPIC],
            stored.history,
            stored.decode,
            position=lambda n: n,
            contiguous=True,
            decode_now=stored.decode_now,
        )
        expires_at = (
            utcnow() + timedelta(seconds=self.expires_in) if self.expires_in is not None else None
        )
        operation: Operation[Any, Any] = Operation(
            self.handler,  # type: ignore[arg-type]
            "op",
            "subscription { n }",
            None,
            None,
        )
        self.handler.operations["op"] = operation
        target = FrameTarget("op", legacy=False, send_text=self.socket.send_text, hub=True)
        written = HubWritten(
            Followed(self.broker, feed, after, expires_at),
            lambda n: n,
            Selection(),  # type: ignore[arg-type]
            target,
            None,
            None,
            self.reported.extend,
        )
        return written, operation

    async def publish(self, *ns: int) -> None:
        for n in ns:
            self.stored.items.append(n)
            await self.broker.publish(TOPIC, str(n).encode())

    def subscribers(self) -> int:
        return len(self.broker._hub._by_topic.get(TOPIC, ()))

    async def parked(self, after: int | None = 0) -> HubWritten:
        written, operation = self.writer(after)
        assert await written.run(operation)
        assert cast("object", operation.task) is written  # stands in for the task
        return written


def owned(written: HubWritten) -> bool:
    """Whether a task owns the operation (else it is parked in the hub)."""
    return written._task is not None


def tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def settled() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_caught_up_messages_are_written_in_the_hubs_call_with_no_task() -> None:
    setup = Setup()
    await setup.publish(1, 2)  # stored before the start: replayed after `after`
    written = await setup.parked(after=0)
    assert setup.socket.seqs() == [1, 2]
    before, in_hub = tasks(), HubWritten.written_in_hub
    await setup.publish(3, 4, 5)
    # Written during `publish` itself: no task was made, none woken.
    assert setup.socket.seqs() == [1, 2, 3, 4, 5]
    assert HubWritten.written_in_hub - in_hub == 3
    assert tasks() == before
    assert written._task is None
    assert setup.stored.decoded == 0  # the awaited decode was never needed


async def test_a_send_that_would_wait_hands_over_and_order_is_kept() -> None:
    setup = Setup()
    written = await setup.parked()
    taken = HubWritten.taken_over
    setup.socket.block()
    await setup.publish(1)  # written, then its send waits: a task takes the rest of it
    assert written._task is not None and HubWritten.taken_over == taken + 1
    await setup.publish(2, 3)  # queued for the task, not written from the hub
    await settled()
    assert setup.socket.seqs() == [1]
    setup.socket.unblock()
    await settled()
    assert setup.socket.seqs() == [1, 2, 3]
    await settled()
    assert not owned(written)  # caught up: parked again
    in_hub = HubWritten.written_in_hub
    await setup.publish(4)
    assert setup.socket.seqs() == [1, 2, 3, 4]
    assert HubWritten.written_in_hub == in_hub + 1


async def test_a_jump_mid_stream_is_filled_from_the_database_in_order() -> None:
    setup = Setup()
    await setup.parked()
    await setup.publish(1)
    setup.stored.items.append(2)  # stored, never published
    await setup.publish(3)
    await setup.publish(4)  # while the gap is read: queued behind it
    await settled()
    assert setup.socket.seqs() == [1, 2, 3, 4]
    assert setup.stored.history_reads == 2  # the start's, and the gap's


async def test_resync_while_idle_rereads_what_was_missed() -> None:
    setup = Setup()
    written = await setup.parked()
    await setup.publish(1)
    setup.stored.items.extend([2, 3])  # published while the broker was away
    setup.broker._hub.resync_all()
    await settled()
    assert setup.socket.seqs() == [1, 2, 3]
    assert written._task is None
    await setup.publish(4)
    assert setup.socket.seqs() == [1, 2, 3, 4]


async def test_a_decode_that_must_wait_goes_to_the_task_and_may_end_the_stream() -> None:
    setup = Setup()
    written = await setup.parked()
    await setup.broker.publish(TOPIC, CHECK)  # allowed: nothing to send, parked again
    await settled()
    assert setup.stored.decoded == 1 and written._task is None
    await setup.publish(1)
    setup.stored.refuse = True
    await setup.broker.publish(TOPIC, CHECK)
    await setup.publish(2)  # after the refusal: never sent
    await settled()
    frames = setup.socket.frames
    assert setup.socket.seqs() == [1]
    assert frames[-2]["type"] == "next" and frames[-2]["payload"]["data"] is None
    assert frames[-2]["payload"]["errors"][0]["message"] == "You can no longer read this."
    assert frames[-1] == {"id": "op", "type": "complete"}
    assert setup.subscribers() == 0 and "op" not in setup.handler.operations
    assert len(setup.reported) == 1


async def test_the_tokens_end_while_idle_sends_an_error_then_complete() -> None:
    setup = Setup(expires_in=0.05)
    await setup.parked()
    await setup.publish(1)
    await asyncio.sleep(0.1)
    await settled()
    frames = setup.socket.frames
    assert setup.socket.seqs() == [1]
    assert frames[-2]["payload"]["errors"][0]["message"].startswith("The access token has expired")
    assert frames[-1] == {"id": "op", "type": "complete"}
    assert setup.subscribers() == 0


async def test_cancelling_an_idle_operation_leaves_no_hub_entry() -> None:
    setup = Setup()
    written = await setup.parked()
    assert setup.subscribers() == 1
    assert written.cancel()
    await settled()
    assert setup.subscribers() == 0
    await setup.publish(1)
    assert setup.socket.seqs() == []
    await written  # as Strawberry's shutdown awaits its operations' tasks


async def test_cancelling_while_a_task_owns_it_stops_the_task_and_the_subscription() -> None:
    setup = Setup()
    written = await setup.parked()
    setup.socket.block()
    await setup.publish(1)
    task = written._task
    assert task is not None
    written.cancel()
    await written
    assert task.cancelled() and setup.subscribers() == 0
    setup.socket.unblock()
    await setup.publish(2)
    await settled()
    assert setup.socket.seqs() == [1]


async def test_a_subscriber_too_slow_for_its_queue_is_ended() -> None:
    setup = Setup()
    written = await setup.parked()
    setup.socket.block()
    await setup.publish(*range(1, 60))  # more than the queue holds while the send waits
    setup.socket.unblock()
    await settled()
    # No socket to close with 1013 here: the stream is over, and nothing was skipped.
    assert setup.socket.seqs() == [1]
    assert setup.socket.frames[-1] == {"id": "op", "type": "complete"}
    assert written._task is None and setup.subscribers() == 0


@pytest.mark.parametrize("after", [None, 0])
async def test_a_stream_with_no_position_yet_is_written_by_the_task_then_the_hub(
    after: int | None,
) -> None:
    setup = Setup()
    written = await setup.parked(after=after)
    await setup.publish(1)
    await settled()
    await setup.publish(2)
    assert setup.socket.seqs() == [1, 2]
    assert written._task is None
