"""A GraphQL websocket is a session: it acts as the person who opened it only while that
person's session, account and access token allow it.

The token sent with `connection_init` names a session. Every operation started on the
socket is admitted as of that moment (`admit`): the token's expiry is checked each time
(TOKEN_EXPIRED; the client reconnects with a fresh token), and the session and account
as the database has them. Reading those for every operation would cost more than most
operations, so the socket keeps what it read for at most `KNOWN_FOR`, and only while no
signal can have gone unheard: it listens on its person's access topic
(realtime/signals.py), where every change to their sessions or account is announced on
whichever instance it is made, nothing it was sent waits unread, and the broker has its
connection. A signal makes the socket read again at once, and end if its session is
over; so does RESYNC (the broker lost messages), and, should a signal be lost all the
same, a read every `RECHECK_EVERY` while the socket only runs subscriptions.

Ending tells each running operation why and closes the socket with 4403; the client
reconnects with a fresh login.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from bson import ObjectId

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from realtime.broker import Broker, Message, Subscription
from realtime.topics import access_topic
from resolvers.accounts.auth.tokens import AccessClaims, AccessTokens
from resolvers.accounts.auth.viewer import Viewer, viewer_as_of_now

log = logging.getLogger(__name__)

SESSION_OVER = frozenset(
    {ErrorCode.SESSION_REVOKED, ErrorCode.ACCOUNT_SUSPENDED, ErrorCode.INVALID_TOKEN}
)
"""Refusals that no later operation on the socket could get past: the socket ends."""
SESSION_ENDED_CLOSE = 4403
"""The close code of a socket whose session is over, as for a refused `connection_init`."""
KNOWN_FOR = 1.0
"""Seconds an operation may be admitted on what the socket last read: however signals
fare, a session that ends refuses every operation within this long."""
RECHECK_EVERY = 60.0
"""Seconds between reads of a socket that heard nothing: what bounds a running
subscription's life after its session ended, if the signal was lost."""
RETRY_BACKOFF = (0.5, 5.0)
"""Seconds before listening again after the broker or the database failed: first, at most."""

EndSocket = Callable[[DomainError], Coroutine[Any, Any, None]]
"""Tells the socket's running operations why, then closes it (the protocol handler's job)."""


class SocketSession:
    def __init__(self, broker: Broker, access_token: str, claims: AccessClaims) -> None:
        self._broker = broker
        self._access_token = access_token
        self._claims = claims
        self._signals: Subscription | None = None
        self._known: Viewer | None = None
        """The caller as last read, trusted until `_known_until` while nothing is unheard."""
        self._known_until = 0.0
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
                # Whatever it died of was logged where it happened; the socket is closing.
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _nothing_unheard(self) -> bool:
        signals = self._signals
        return (
            signals is not None
            and not signals.pending
            and self._broker.connected
            and time.monotonic() < self._known_until
        )

    async def _read(self, after: Message | None = None) -> Viewer:
        """The session and account from the database; kept unless a signal came meanwhile.
        `after`: the signal this read answers, which the socket's other listeners on this
        instance share it for."""
        reads = self._reads
        try:
            viewer = await _read_once(self._claims, after)
        except DomainError as error:
            if error.code in SESSION_OVER:
                self._end_soon(error)
            raise
        if reads == self._reads:
            self._known, self._known_until = viewer, time.monotonic() + KNOWN_FOR
        return viewer

    async def _watch(self) -> None:
        backoff, most = RETRY_BACKOFF
        while True:
            try:
                topic = access_topic(self._claims.user_id)
                async with await self._broker.subscribe(topic) as signals:
                    self._signals = signals
                    # A change made before the socket listened went unheard: read anyway.
                    await self._reread(None)
                    backoff = RETRY_BACKOFF[0]
                    while True:
                        try:
                            signal = await asyncio.wait_for(signals.get(), RECHECK_EVERY)
                        except TimeoutError:
                            signal = None
                        # Every signal waiting means the same: read once for all of them.
                        signals.discard_pending()
                        await self._reread(signal)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The broker or the database failed: operations read for themselves
                # meanwhile (nothing is trusted while the socket is not listening).
                log.warning("a socket stopped hearing of session changes; again", exc_info=True)
            finally:
                self._signals = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, most)

    async def _reread(self, signal: Message | None) -> None:
        self._reads += 1
        self._known = None
        with contextlib.suppress(DomainError):  # `_read` ends the socket if it must
            await self._read(after=signal)

    def _end_soon(self, error: DomainError) -> None:
        """Once, in a task of its own: ending cancels the socket's operations, which may
        include the one that noticed."""
        if self._ending is None and self._end is not None:
            self._ending = asyncio.create_task(self._end(error), name="socket-session-end")


_reading: dict[tuple[ObjectId, int], tuple[Message, asyncio.Future[Viewer]]] = {}
"""Reads under way in answer to one signal, by session and signal (the very message the
broker handed every listener, kept alive with its read so that its id stays its own):
every socket of a session on this instance hears it at once, and one read serves all."""


async def _read_once(claims: AccessClaims, after: Message | None) -> Viewer:
    if after is None:
        return await viewer_as_of_now(claims)
    key = (claims.session_id, id(after))
    found = _reading.get(key)
    under_way: asyncio.Future[Viewer]
    if found is None:
        under_way = asyncio.ensure_future(viewer_as_of_now(claims))
        _reading[key] = (after, under_way)
        under_way.add_done_callback(lambda _: _reading.pop(key, None))
    else:
        under_way = found[1]
    # Shielded: one socket closing must not cancel the read the others wait for.
    return await asyncio.shield(under_way)
