"""Framed subscriptions written from the broker's hub while they are caught up.

A framed operation (schema/live/framed.py) used to be a task parked in its stream until
the next message: every delivery woke it, a switch of the event loop per subscriber
that the raw server does not pay, and every idle subscription kept the task and the
suspended frames of Strawberry's `run_operation`, our stream and `follow`. Here, once
caught up, the operation is only its broker subscription's callback: each next message
is framed and written in the hub's own call when all of this holds (else a task takes
over, below):

- the message decodes without waiting (`Feed.decode_now`: not an access change, whose
  re-check is awaited) and is exactly the next position of a contiguous feed (not
  RESYNC, not a jump to fill from the database, not the token's end: `ENDED`);
- the socket takes the frame without waiting: uvicorn's websocket `send` writes to the
  transport at once while its buffer is under the high mark, and the send coroutine is
  stepped by hand (`send(None)`) to know. If it yields (the buffer is full), the rest of
  that send goes to a task, which awaits what it waits on and steps it on.

A task of the writer's own then runs what `follow` and the old writer did, from the
last position sent: the send under way first, then every message queued meanwhile
(history for RESYNC and jumps, the awaited decode, the overflow that closes with 1013,
the token's end that sends an error and `complete`), and once nothing waits, the
operation is parked in the hub again. While a task owns the operation, the subscription
queues (`Subscription.hold`): frames leave in order.

The operation's own task (Strawberry's, `run_operation`) starts the stream, writes what
`after` replays and parks it, then ends; from then on the writer stands in for it as
`Operation.task`, so that what ends an operation (the client's `complete`, a disconnect,
the session's end, a duplicate id's bookkeeping) cancels the writer like a task: it
stops writing, and its subscription is closed. Only graphql-transport-ws operations are
written this way; the legacy protocol keeps its task per operation (its handler pops its
bookkeeping when the task returns).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterator
from contextlib import aclosing, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from graphql import GraphQLError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from starlette.websockets import WebSocketDisconnected as SendAfterClose
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.types import ExecutionResult as StreamedResult

from documents.metrics import SLOW_SUBSCRIBERS_CLOSED
from realtime.broker import ENDED, Message, SubscriberOverflow
from realtime.going_away import OpenSocket
from realtime.streams import Followed, Follower, NotNow

if TYPE_CHECKING:
    from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import Operation

    from schema.live.framed import FramedSelection, FrameTarget

log = logging.getLogger(__name__)

SLOW_CONSUMER = 1013
"""WebSocket close code "try again later": the client fell too far behind (as
schema/notifications/live.py `delivered` closes the ordinary path's)."""

ReportErrors: TypeAlias = Callable[[list[GraphQLError]], None]

_closing: set[asyncio.Task[None]] = set()
"""Closings of writers stopped with no task of their own, kept until they finish."""

_GONE: tuple[type[Exception], ...] = (
    OSError,  # uvicorn's ClientDisconnected among them
    WebSocketDisconnect,
    WebSocketDisconnected,  # what server/graphql_view.py `_send_text` makes of the above
    SendAfterClose,  # starlette's, once the socket is closed
)
"""What a send raises when the client's socket is gone. Only ever matched around a
send: a TimeoutError (an OSError) from the database must still end the stream with
its error."""


class _SocketGone(Exception):
    """A send failed because the client is gone: nothing more can be written, not even
    the error or `complete`, and the connection's end cleans up its operations."""


class _SendCancelled(Exception):
    """What a send waited on was cancelled, not the writer's task: the send failed."""

    def __init__(self) -> None:
        super().__init__("A result could not be sent.")


class HubWritten:
    """One framed graphql-transport-ws operation's results (see the module's doc)."""

    written_in_hub = 0
    """Frames written in the hub's own call, by every writer: what the tests count."""
    taken_over = 0
    """Times a task took an operation over from the hub."""

    __slots__ = (
        "_context",
        "_followed",
        "_follower",
        "_on_end",
        "_open_socket",
        "_operation",
        "_payload_of",
        "_report",
        "_selection",
        "_socket",
        "_stopped",
        "_target",
        "_task",
    )

    def __init__(
        self,
        followed: Followed[Any, Any],
        payload_of: Callable[[Any], object],
        selection: FramedSelection,
        target: FrameTarget,
        open_socket: OpenSocket | None,
        socket: object,
        report: ReportErrors,
    ) -> None:
        self._followed: Followed[Any, Any] | None = followed
        self._follower: Follower[Any, Any] | None = None
        self._payload_of = payload_of
        self._selection = selection
        self._target = target
        self._open_socket = open_socket
        self._socket = socket
        self._report = report
        self._operation: Operation[Any, Any] | None = None
        self._context: contextvars.Context | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._on_end: Callable[[], None] | None = None

    def on_end(self, callback: Callable[[], None]) -> None:
        """Called once when the stream is over, however it ends (a metric's gauge)."""
        self._on_end = callback

    # -- In the operation's own task -----------------------------------------------------

    async def run(self, operation: Operation[Any, Any]) -> bool:
        """Start the stream, write what it replays, and park the operation in the hub:
        True (or the client is gone: nothing more to send). False: the stream ended (its
        error, if any, sent): `complete` is due."""
        self._operation = operation
        # What the operation's task has set (frame target, request id, password scope),
        # for the tasks that take over later.
        self._context = contextvars.copy_context()
        followed, self._followed = self._followed, None
        assert followed is not None, "run once"
        parked = gone = False
        try:
            try:
                try:
                    self._follower = await followed.start()
                except Exception as error:
                    await self._ended_by(error)
                    return False
                parked = await self._written(history=True)
            except _SocketGone:
                gone = True  # nothing more to send, `complete` included
        finally:
            if parked and not self._stopped:
                self._park()
            else:
                await self._close()
        return parked or gone

    def _park(self) -> None:
        operation = self._operation
        follower = self._follower
        assert operation is not None and follower is not None
        # Strawberry ends an operation by cancelling its task: this one's.
        operation.task = cast("asyncio.Task[None]", self)
        # Nothing of the request is needed any more (Strawberry reads both at the start).
        operation.query = ""
        operation.variables = None
        follower.subscription.on_message(self._heard)

    # -- In the hub's call ---------------------------------------------------------------

    def _heard(self, message: Message) -> None:
        follower = self._follower
        if follower is None or self._stopped:
            return
        if message is ENDED:
            self._take_over(None)
            return
        try:
            item = follower.next_now(message)
            if item is None:
                return
            if isinstance(item, NotNow):
                self._take_over(message)
                return
            frame = self._target.frame(self._selection.data_json(self._payload_of(item)))
        except Exception:
            # The task decodes and executes it again, and ends the stream as it does.
            self._take_over(message)
            return
        follower.mark(follower.feed.position(item))
        send = self._target.send_text(frame)
        try:
            waits_on = send.send(None)
        except StopIteration:
            HubWritten.written_in_hub += 1
            return  # written: what nearly every delivery comes to
        except Exception as error:
            self._start(error=error)
            return
        self._start(sending=(send, waits_on))

    def _take_over(self, message: Message | None) -> None:
        assert self._follower is not None
        self._follower.subscription.hold(message)
        self._start()

    def _start(
        self,
        *,
        sending: tuple[Coroutine[Any, Any, None], Any] | None = None,
        error: Exception | None = None,
    ) -> None:
        """A task owns the operation until it has caught up: messages queue meanwhile."""
        assert self._follower is not None
        HubWritten.taken_over += 1
        self._follower.subscription.hold(None)
        owned = self._owned(sending, error)
        task = asyncio.get_running_loop().create_task(owned, context=self._context)
        task.add_done_callback(_logged)
        self._task = task

    async def _owned(
        self, sending: tuple[Coroutine[Any, Any, None], Any] | None, error: Exception | None
    ) -> None:
        parked = False
        try:
            parked = await self._written(history=False, sending=sending, error=error)
            if not parked and self._operation is not None:
                with _gone_on_failure():
                    await self._operation.send_operation_message(
                        {"id": self._operation.id, "type": "complete"}
                    )
        except _SocketGone:
            # Not an error of the stream's, nor of the server's: one per subscriber of a
            # busy room when its client drops. The connection's end ends the operation.
            log.debug("a framed subscription's client is gone")
        finally:
            self._task = None
            if parked and not self._stopped:
                # Caught up, and nothing has come since (no await in between): the hub
                # writes again.
                assert self._follower is not None
                self._follower.subscription.on_message(self._heard)
            else:
                await self._close()

    # -- The slow path, in a task ----------------------------------------------------------

    async def _written(
        self,
        *,
        history: bool,
        sending: tuple[Coroutine[Any, Any, None], Any] | None = None,
        error: Exception | None = None,
    ) -> bool:
        """Frames until caught up (True), or the end of the stream (False: its error is
        sent). First the send under way, or the error a send raised, if any."""
        follower = self._follower
        assert follower is not None
        open_socket = self._open_socket
        try:
            with _gone_on_failure():
                if error is not None:
                    raise error
                if sending is not None:
                    with open_socket.working() if open_socket else nullcontext():
                        await _stepped(*sending)
            items = follower.items(history=history, until_caught_up=True)
            async with aclosing(items):
                async for item in items:
                    frame = self._target.frame(self._selection.data_json(self._payload_of(item)))
                    # While it is being sent, a graceful shutdown waits
                    # (realtime/going_away.py).
                    with open_socket.working() if open_socket else nullcontext():
                        await _sent(self._target.send_text(frame))
            return True
        except SubscriberOverflow:
            with _gone_on_failure():
                await close_slow(self._socket)
            return False
        except _SocketGone:
            raise
        except Exception as failure:
            await self._ended_by(failure)
            return False

    async def _ended_by(self, error: Exception) -> None:
        """As Strawberry ends a stream whose source raised (strawberry/schema/schema.py):
        the error, as a result."""
        failure = (
            error
            if isinstance(error, GraphQLError)
            else GraphQLError(str(error), original_error=error)
        )
        self._report([failure])
        if self._operation is not None:
            with _gone_on_failure():
                await self._operation.send_next(StreamedResult(data=None, errors=[failure]))

    async def _close(self) -> None:
        """Over: no more frames, the subscription closed, and `on_end` called (once each,
        also when the stream never started: its start failed or was cancelled)."""
        self._stopped = True
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            on_end()
        follower, self._follower = self._follower, None
        if follower is None:
            return
        follower.subscription.on_message(None)
        await follower.subscription.__aexit__(None, None, None)

    # -- What Strawberry does with an operation's task and its result stream -------------

    def cancel(self, msg: object = None) -> bool:
        """Stop: whether parked in the hub or owned by a task, nothing more is written."""
        if self._stopped:
            return False
        self._stopped = True
        task = self._task
        if task is not None:
            task.cancel()  # its end closes the subscription
        if task is None or self._follower is not None:
            closing = asyncio.get_running_loop().create_task(self._close())
            _closing.add(closing)
            closing.add_done_callback(_closing.discard)
        return True

    def done(self) -> bool:
        return self._stopped and self._task is None

    def __await__(self) -> Generator[Any, None, None]:
        return self._finished().__await__()

    async def _finished(self) -> None:
        task = self._task
        if task is not None:
            await asyncio.wait([task])

    async def aclose(self) -> None:
        """What `aclosing` around the result stream calls: nothing once parked (the
        operation goes on in the hub), else the stream is over (also if `run` never ran:
        the operation was cancelled first)."""
        if self._stopped:
            return
        if self._operation is None or cast("object", self._operation.task) is not self:
            await self._close()


async def _stepped(send: Coroutine[Any, Any, None], waits_on: Any) -> None:
    """The rest of a coroutine stepped by hand until it yielded `waits_on`: await what it
    waits on, then step it on, as its own task would have."""
    while True:
        try:
            if waits_on is None:  # a bare yield (asyncio.sleep(0)): let the loop run once
                await asyncio.sleep(0)
            else:
                # As a task does with the future its coroutine yields.
                waits_on._asyncio_future_blocking = False
                await cast("Awaitable[object]", waits_on)
        except asyncio.CancelledError:
            if _stopping():
                send.close()
                raise
            # Else what it waited on was cancelled: its own await raises that, stepped on.
        except Exception:  # noqa: S110  # the coroutine's own await raises it when stepped
            pass
        try:
            waits_on = send.send(None)
        except StopIteration:
            return
        except asyncio.CancelledError:
            if _stopping():
                raise
            # Its own await of what was cancelled, not this task: the send failed. Else
            # the task would end cancelled, with neither error nor `complete` sent, and
            # the operation would keep its id until the socket closes.
            raise _SendCancelled from None


async def _sent(send: Coroutine[Any, Any, None]) -> None:
    """A send awaited in the writer's task: what it waited on being cancelled (not the
    task) is the send failing, as in `_stepped`; the client gone, `_SocketGone`."""
    try:
        with _gone_on_failure():
            await send
    except asyncio.CancelledError:
        if _stopping():
            raise
        raise _SendCancelled from None


def _stopping() -> bool:
    """Whether this task is told to stop (else a CancelledError is of what it awaited)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


@contextmanager
def _gone_on_failure() -> Iterator[None]:
    """A send failing because the client is gone, as `_SocketGone`."""
    try:
        yield
    except _GONE as gone:
        raise _SocketGone from gone


def _logged(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("a framed subscription's writer failed", exc_info=error)


async def close_slow(socket: object) -> None:
    """Close a socket whose subscriber fell behind with 1013 (the client reconnects with
    `after`), and wait for the close to end the operation."""
    if isinstance(socket, WebSocket) and socket.application_state is WebSocketState.CONNECTED:
        SLOW_SUBSCRIBERS_CLOSED.inc()
        await socket.close(code=SLOW_CONSUMER, reason="Subscriber too slow; reconnect with after")
        # The close ends every operation of the connection, this one included. Until then,
        # neither end nor fail: either would be sent on the closed socket.
        await asyncio.Future()
