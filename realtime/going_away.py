"""Closing GraphQL websockets with 1001 "going away" when the server is told to stop.

uvicorn's own shutdown closes every websocket at once with 1012, whatever it is doing.
So on SIGTERM each GraphQL websocket first finishes the work under way on it (queries
and mutations, the event being delivered), is closed with 1001, and only then does
uvicorn get the signal and stop the rest as usual. Clients reconnect, to this or another
instance, and resume their subscriptions with `after`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from starlette.websockets import WebSocket, WebSocketState

log = logging.getLogger(__name__)

GOING_AWAY = 1001
DRAIN_TIMEOUT = 10.0
"""Seconds a websocket's work may still take after SIGTERM before it is closed anyway."""


class OpenSocket:
    """One GraphQL websocket and the work under way on it.

    `working()` is the socket itself as a plain context manager, entered for every event
    delivered, and the future a closing waits on is made only when one waits: an
    asyncio.Event per socket and a generator per delivery cost memory and time for a
    shutdown that comes once."""

    __slots__ = ("_busy", "_idle", "websocket")

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self._busy = 0
        self._idle: asyncio.Future[None] | None = None

    def working(self) -> OpenSocket:
        """Hold off closing this websocket while the block runs."""
        return self

    def __enter__(self) -> None:
        self._busy += 1

    def __exit__(self, *_: object) -> None:
        self._busy -= 1
        idle = self._idle
        if not self._busy and idle is not None and not idle.done():
            idle.set_result(None)

    async def go_away(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                while self._busy:  # work may start again before this task resumes
                    self._idle = asyncio.get_running_loop().create_future()
                    await self._idle
        except TimeoutError:
            log.warning("closing a websocket whose work did not finish in %.0f s", timeout)
        if self.websocket.application_state is WebSocketState.CONNECTED:
            await self.websocket.close(GOING_AWAY, "Server shutting down")


class OpenSockets:
    """The GraphQL websockets an app has open."""

    def __init__(self) -> None:
        self._open: dict[WebSocket, OpenSocket] = {}

    def opened(self, websocket: WebSocket) -> _Opened:
        """`websocket` is open while the block runs (it yields its OpenSocket)."""
        return _Opened(self._open, websocket)

    def of(self, websocket: WebSocket) -> OpenSocket | None:
        return self._open.get(websocket)

    async def go_away(self, timeout: float = DRAIN_TIMEOUT) -> None:
        sockets = list(self._open.values())
        if sockets:
            log.info("closing %d websockets before stopping", len(sockets))
        await asyncio.gather(*(socket.go_away(timeout) for socket in sockets))


class _Opened:
    """`OpenSockets.opened`: a plain context manager rather than a generator, for it is
    kept for the socket's whole life (a generator, its frame and the context manager
    around it cost about 0.4 KB per socket; bench/README.md, "Issue 16, third pass:
    per-connection memory")."""

    __slots__ = ("_open", "_websocket")

    def __init__(self, open_sockets: dict[WebSocket, OpenSocket], websocket: WebSocket) -> None:
        self._open = open_sockets
        self._websocket = websocket

    def __enter__(self) -> OpenSocket:
        socket = self._open[self._websocket] = OpenSocket(self._websocket)
        return socket

    def __exit__(self, *_: object) -> None:
        del self._open[self._websocket]


@contextlib.contextmanager
def close_before_sigterm(sockets: OpenSockets) -> Iterator[None]:
    """While the block runs, SIGTERM closes `sockets` first and then reaches the handler
    it replaced (uvicorn's, which stops the server). Without a Python handler in place
    (not served by uvicorn) or off the main thread, signals are left alone."""
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous) or threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    closing: list[asyncio.Task[None]] = []

    async def close_then_stop(signum: int, frame: FrameType | None) -> None:
        try:
            await sockets.go_away()
        finally:
            previous(signum, frame)

    def start(signum: int, frame: FrameType | None) -> None:
        if not closing:  # a second SIGTERM changes nothing: closing is under way
            closing.append(loop.create_task(close_then_stop(signum, frame)))

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        # A signal handler may interrupt the loop anywhere (in any request's context
        # too): only hand the work over, in a context of its own.
        loop.call_soon_threadsafe(start, signum, frame, context=contextvars.Context())

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is on_sigterm:
            signal.signal(signal.SIGTERM, previous)
