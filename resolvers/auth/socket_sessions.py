"""A GraphQL websocket is a session: it acts as the person who opened it only while that
person's session, account and access token allow it.

The token sent with `connection_init` names a session. Every operation started on the
socket is admitted as of that moment (`admit`): the token's expiry is checked each time
(TOKEN_EXPIRED; the client reconnects with a fresh token), and the session and account
as the database has them. Reading those twice per operation would cost more than the
operation itself, so the socket keeps the last answer and listens on its person's access
topic (realtime/signals.py), where every change to their sessions or account is
announced, on whichever instance it is made: a signal makes the socket read them again,
and end if its session is over. The kept answer is used only while no signal can have
gone unheard: the socket is listening, nothing it was sent waits unread, and the broker
has not lost its connection (after which it tells every listener to read again). At any
other time an operation reads the database itself.

Ending tells each running operation why and closes the socket with 4403; the client
reconnects with a fresh login.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from realtime.broker import Broker, Subscription
from realtime.topics import access_topic
from resolvers.auth.tokens import AccessClaims, AccessTokens
from resolvers.auth.viewer import Viewer, viewer_as_of_now

log = logging.getLogger(__name__)

SESSION_OVER = frozenset(
    {ErrorCode.SESSION_REVOKED, ErrorCode.ACCOUNT_SUSPENDED, ErrorCode.INVALID_TOKEN}
)
"""Refusals that no later operation on the socket could get past: the socket ends."""
SESSION_ENDED_CLOSE = 4403
"""The close code of a socket whose session is over, as for a refused `connection_init`."""
RESUBSCRIBE_BACKOFF = (0.5, 5.0)
"""Seconds between attempts to listen again while the broker is away: first, at most."""

EndSocket = Callable[[DomainError], Coroutine[Any, Any, None]]
"""Tells the socket's running operations why, then closes it (the protocol handler's job)."""


class SocketSession:
    def __init__(self, broker: Broker, access_token: str, claims: AccessClaims) -> None:
        self._broker = broker
        self._access_token = access_token
        self._claims = claims
        self._signals: Subscription | None = None
        self._known: Viewer | None = None
        """The caller as of the last read, for as long as no signal can have gone unheard."""
        self._reads = 0
        """Signals taken so far: a read begun before one must not be kept after it."""
        self._watcher: asyncio.Task[None] | None = None
        self._ending: asyncio.Task[None] | None = None
        self._end: EndSocket | None = None

    @classmethod
    async def open(cls, tokens: AccessTokens, broker: Broker, access_token: str) -> SocketSession:
        """The session a `connection_init` token names; raises if it may not connect."""
        claims = tokens.verify(access_token)
        await viewer_as_of_now(claims)
        return cls(broker, access_token, claims)

    @property
    def access_token(self) -> str:
        return self._access_token

    async def admit(self) -> Viewer:
        """The caller as of now, for an operation about to start on the socket.

        Raises TOKEN_EXPIRED once the token has run out (the socket stays: the client
        reconnects at its pace); any refusal that no operation could get past also ends
        the socket.
        """
        viewer = self._known if self._nothing_unheard() else None
        if viewer is None:
            viewer = await self._read()
        if utcnow() >= self._claims.expires_at:
            # As the subscriptions it opened end (realtime/streams.py): no leeway here, the
            # token was verified, with it, when the socket opened.
            raise DomainError(ErrorCode.TOKEN_EXPIRED, "The access token has expired.")
        return viewer

    def watch(self, end: EndSocket) -> None:
        """From now until `stop`, end the socket with `end` as soon as its session is over."""
        if self._watcher is None:
            self._end = end
            self._watcher = asyncio.create_task(self._watch(), name="socket-session")

    async def stop(self) -> None:
        for task in (self._watcher, self._ending):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _nothing_unheard(self) -> bool:
        signals = self._signals
        return signals is not None and not signals.pending and self._broker.connected

    async def _read(self) -> Viewer:
        """The session and account from the database; kept unless a signal came meanwhile."""
        reads = self._reads
        try:
            viewer = await viewer_as_of_now(self._claims)
        except DomainError as error:
            if error.code in SESSION_OVER:
                self._end_soon(error)
            raise
        if reads == self._reads:
            self._known = viewer
        return viewer

    async def _watch(self) -> None:
        backoff, most = RESUBSCRIBE_BACKOFF
        while True:
            try:
                signals = await self._broker.subscribe(access_topic(self._claims.user_id))
            except Exception:
                # The broker is away: operations read the database meanwhile; try again.
                log.warning("cannot listen for session changes; retrying", exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, most)
                continue
            async with signals:
                self._signals = signals
                try:
                    # A change made before the socket listened went unheard: read anyway.
                    await self._reread()
                    # Each signal (or RESYNC, after the broker lost some) means: read again.
                    async for _ in signals:
                        await self._reread()
                finally:
                    self._signals = None
            return

    async def _reread(self) -> None:
        self._reads += 1
        self._known = None
        with contextlib.suppress(DomainError):  # `_read` ends the socket if it must
            await self._read()

    def _end_soon(self, error: DomainError) -> None:
        """Once, in a task of its own: ending cancels the socket's operations, which may
        include the one that noticed."""
        if self._ending is None and self._end is not None:
            self._ending = asyncio.create_task(self._end(error), name="socket-session-end")
