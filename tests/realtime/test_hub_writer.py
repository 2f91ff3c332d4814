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
import logging
import socket
from datetime import timedelta
from typing import Any, cast

import pytest
from starlette.websockets import WebSocketDisconnected as SendAfterClose
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import Operation
from uvicorn.protocols.utils import ClientDisconnected

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from realtime.broker import InProcessBroker, Message, RedisBroker
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
        self.gone: Exception | None = None
        """What every send raises once the client is gone."""

    def block(self) -> None:
        self.gate = asyncio.get_running_loop().create_future()

    def unblock(self) -> None:
        gate, self.gate = self.gate, None
        if gate is not None:
            gate.set_result(None)

    async def send_text(self, text: str) -> None:
        if self.gone is not None:
            raise self.gone
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
    def __init__(
        self, expires_in: float | None = None, broker: InProcessBroker | RedisBroker | None = None
    ) -> None:
        self.broker = broker if broker is not None else InProcessBroker(queue_size=50)
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


# -- Every end path ends the writer once -----------------------------------------------


class Ends:
    """`on_end`'s calls: what schema/schema.py's SUBSCRIPTIONS_LIVE gauge is decremented by."""

    def __init__(self, written: HubWritten) -> None:
        self.count = 0
        written.on_end(self.ended)

    def ended(self) -> None:
        self.count += 1


def dead_redis_url() -> str:
    """A Redis URL nothing listens on: Redis is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}"


async def test_a_stream_whose_start_fails_ends_once() -> None:
    broker = RedisBroker(dead_redis_url())
    try:
        setup = Setup(broker=broker)
        written, operation = setup.writer(0)
        ends = Ends(written)
        assert not await written.run(operation)  # its error sent: `complete` is due
        assert setup.socket.frames[-1]["payload"]["data"] is None
        assert ends.count == 1
        await written.aclose()  # as Strawberry's `aclosing` does next
        assert ends.count == 1
    finally:
        await broker.close()


async def test_an_operation_cancelled_while_it_subscribes_ends_once() -> None:
    broker = RedisBroker(dead_redis_url())
    try:
        setup = Setup(broker=broker)
        written, operation = setup.writer(0)
        ends = Ends(written)
        task = asyncio.create_task(written.run(operation))
        await asyncio.sleep(0)  # in `subscribe`, connecting
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await written.aclose()
        assert ends.count == 1
    finally:
        await broker.close()


async def test_an_operation_cancelled_before_it_runs_ends_once() -> None:
    setup = Setup()
    written, _ = setup.writer(0)
    ends = Ends(written)
    await written.aclose()  # Strawberry's `aclosing`, its task cancelled before `run`
    await written.aclose()
    assert ends.count == 1 and setup.subscribers() == 0


async def test_a_parked_operation_cancelled_ends_once() -> None:
    setup = Setup()
    written, operation = setup.writer(0)
    ends = Ends(written)
    assert await written.run(operation)
    await written.aclose()  # parked: goes on
    assert ends.count == 0
    written.cancel()
    await settled()
    written.cancel()
    assert ends.count == 1


# -- A send whose awaited future is cancelled, not the task ----------------------------


def cancel_the_gate(sock: Socket) -> None:
    """What a send waits on is cancelled (the writer's task is not); later sends pass."""
    gate, sock.gate = sock.gate, None
    assert gate is not None
    gate.cancel()


async def test_a_stepped_send_whose_wait_is_cancelled_ends_the_operation() -> None:
    setup = Setup()
    written = await setup.parked()
    ends = Ends(written)
    setup.socket.block()
    await setup.publish(1)  # written, then its send waits: stepped by the task
    task = written._task
    assert task is not None
    await settled()
    cancel_the_gate(setup.socket)
    await settled()
    assert not task.cancelled()
    frames = setup.socket.frames
    assert frames[-2]["type"] == "next" and frames[-2]["payload"]["data"] is None
    assert frames[-1] == {"id": "op", "type": "complete"}
    assert "op" not in setup.handler.operations  # its id free again
    assert setup.subscribers() == 0 and len(setup.reported) == 1 and ends.count == 1


async def test_a_tasks_send_whose_wait_is_cancelled_ends_the_operation() -> None:
    setup = Setup()
    written = await setup.parked()
    setup.socket.block()
    await setup.publish(1)
    await setup.publish(2)  # queued for the task
    task = written._task
    assert task is not None
    setup.socket.unblock()
    setup.socket.block()  # 2 is sent by the task itself, and waits
    await settled()
    assert setup.socket.seqs() == [1, 2]
    cancel_the_gate(setup.socket)
    await settled()
    assert not task.cancelled()
    assert setup.socket.frames[-1] == {"id": "op", "type": "complete"}
    assert "op" not in setup.handler.operations and setup.subscribers() == 0


# -- The client gone -----------------------------------------------------------------------

GONE = [
    pytest.param(ClientDisconnected(), id="uvicorn-ClientDisconnected"),
    pytest.param(WebSocketDisconnected(), id="strawberry-WebSocketDisconnected"),
    pytest.param(
        SendAfterClose('Cannot call "send" once a close message has been sent.'),
        id="starlette-send-after-close",
    ),
]


@pytest.mark.parametrize("gone", GONE)
async def test_a_client_gone_while_parked_ends_the_writer_quietly(
    gone: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    setup = Setup()
    written = await setup.parked()
    ends = Ends(written)
    sent = len(setup.socket.frames)
    setup.socket.gone = gone
    with caplog.at_level(logging.DEBUG, logger="schema.live.hub_writer"):
        await setup.publish(1)  # its send, in the hub's call, fails
        await settled()
        await setup.publish(2)
        await settled()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert setup.reported == []  # not the stream's error
    assert len(setup.socket.frames) == sent  # nothing more: no error, no `complete`
    assert setup.subscribers() == 0 and ends.count == 1 and written.done()


@pytest.mark.parametrize("gone", GONE)
async def test_a_client_gone_while_a_task_owns_it_ends_the_writer_quietly(
    gone: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    setup = Setup()
    written = await setup.parked()
    ends = Ends(written)
    setup.socket.block()
    await setup.publish(1)
    await setup.publish(2)  # queued: the task sends it
    setup.socket.gone = gone
    with caplog.at_level(logging.DEBUG, logger="schema.live.hub_writer"):
        setup.socket.unblock()
        await settled()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert setup.reported == [] and setup.socket.seqs() == [1]
    assert setup.socket.frames[-1]["type"] == "next"  # no error, no `complete`
    assert setup.subscribers() == 0 and ends.count == 1 and written.done()


async def test_a_client_gone_during_the_replay_ends_quietly() -> None:
    """The operation's own task: nothing more to send, `complete` included."""
    setup = Setup()
    await setup.publish(1, 2)
    written, operation = setup.writer(0)
    ends = Ends(written)
    setup.socket.gone = WebSocketDisconnected()
    assert await written.run(operation)  # as parked: the handler sends no `complete`
    assert setup.reported == [] and setup.socket.frames == []
    assert setup.subscribers() == 0 and ends.count == 1
