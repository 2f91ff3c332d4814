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
same, a sweep every `RECHECK_EVERY` that reads the sessions and accounts of all the
process's sockets, a few dozen a query, and ends those that are over.

While idle a socket's session holds no task: signals reach it in the broker's own call
(`Subscription.on_message`), and a task lives only while it reads in answer.

Ending tells each running operation why and closes the socket with 4403; the client
reconnects with a fresh login.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

from bson import ObjectId

from documents.accounts.sessions import Session
from documents.accounts.users import User
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from realtime.broker import RESYNC, Broker, Message, Subscription
from realtime.topics import access_topic
from resolvers.accounts.auth.tokens import AccessClaims, AccessTokens
from resolvers.accounts.auth.viewer import Viewer, viewer_as_of_now, viewer_of

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
"""Seconds between sweeps (`_Sweep`): what bounds a running subscription's life after
its session ended, if the signal was lost."""
RETRY_BACKOFF = (0.5, 5.0)
"""Seconds before listening again after the broker or the database failed: first, at most."""

EndSocket = Callable[[DomainError], Coroutine[Any, Any, None]]
"""Tells the socket's running operations why, then closes it (the protocol handler's job)."""


class SocketSession:
    """One socket's session. While idle it holds no task: signals come to `_heard` in the
    broker's own call, and the backstop read is every socket's at once (`_Sweep`).
    Slotted: one per socket, for its life."""

    __slots__ = (
        "_access_token",
        "_broker",
        "_claims",
        "_end",
        "_ending",
        "_known",
        "_known_until",
        "_reads",
        "_signals",
        "_task",
        "_unheard",
    )

    def __init__(self, broker: Broker, access_token: str, claims: AccessClaims) -> None:
        self._broker = broker
        self._access_token = access_token
        self._claims = claims
        self._signals: Subscription | None = None
        """The access topic, once listened to: until then nothing read is trusted."""
        self._known: Viewer | None = None
        """The caller as last read, trusted until `_known_until` while nothing is unheard."""
        self._known_until = 0.0
        self._reads = 0
        """Signals heard so far: a read begun before one must not be kept after it."""
        self._unheard: Message | None = None
        """The latest signal not answered by a read yet (any one means: read again)."""
        self._task: asyncio.Task[None] | None = None
        """Listening, or reading in answer to signals; None while idle."""
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
        if self._end is None:
            self._end = end
            self._task = asyncio.create_task(self._listen(), name="socket-session")

    async def stop(self) -> None:
        _Sweep.of_this_loop().discard(self)
        signals, self._signals = self._signals, None  # and `_heard` starts nothing more
        for task in (self._task, self._ending):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                # Whatever it died of was logged where it happened; the socket is closing.
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if signals is not None:
            await signals.__aexit__()

    def _nothing_unheard(self) -> bool:
        # A signal heard clears `_known` at once (`_heard`); what remains is whether one
        # could have gone unheard.
        return (
            self._signals is not None
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
        self._keep(reads, viewer)
        return viewer

    def _keep(self, reads: int, viewer: Viewer) -> None:
        """Trust `viewer` for a while, if no signal came since the read began (`reads`)."""
        if reads == self._reads:
            self._known, self._known_until = viewer, time.monotonic() + KNOWN_FOR
            # Not kept past its use: an idle socket holds no account document.
            asyncio.get_running_loop().call_later(KNOWN_FOR, self._forget, viewer)

    def _forget(self, viewer: Viewer) -> None:
        if self._known is viewer:
            self._known = None

    async def _listen(self) -> None:
        """Listen on the access topic (retrying while the broker fails), then read once:
        a change made before the socket listened went unheard."""
        backoff, most = RETRY_BACKOFF
        topic = access_topic(self._claims.user_id)
        while True:
            try:
                signals = await self._broker.subscribe(topic)
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                # Operations read for themselves meanwhile (nothing is trusted while the
                # socket is not listening).
                log.warning("a socket could not listen for session changes; again", exc_info=True)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, most)
        self._signals = signals
        _Sweep.of_this_loop().add(self)
        self._unheard = RESYNC  # read once, as after a signal
        self._reads += 1
        self._known = None
        signals.on_message(self._heard)
        await self._answer()

    def _heard(self, signal: Message) -> None:
        """A signal (or RESYNC): forget what was read, and read again in a task that lives
        until it has answered every signal heard meanwhile."""
        self._reads += 1
        self._known = None
        if self._signals is None:
            return  # stopping
        self._unheard = signal
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._answer(), name="socket-session-read")

    async def _answer(self) -> None:
        backoff, most = RETRY_BACKOFF
        while (signal := self._unheard) is not None:
            self._unheard = None
            try:
                with contextlib.suppress(DomainError):  # `_read` ends the socket if it must
                    await self._read(after=signal if signal is not RESYNC else None)
                backoff = RETRY_BACKOFF[0]
            except Exception:
                # The database failed: nothing is trusted (`_known` stays None until a read
                # succeeds); try again.
                log.warning("a socket could not re-read its session; again", exc_info=True)
                if self._unheard is None:
                    self._unheard = signal
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, most)
        self._task = None

    def _end_soon(self, error: DomainError) -> None:
        """Once, in a task of its own: ending cancels the socket's operations, which may
        include the one that noticed."""
        if self._ending is None and self._end is not None:
            self._ending = asyncio.create_task(self._end(error), name="socket-session-end")


class _Sweep:
    """The backstop, should a signal be lost: every `RECHECK_EVERY`, the sessions and
    accounts of all the sockets listening in this process, read in one query each
    (instead of a read per socket and a task per socket waiting for its turn)."""

    BATCH = 20
    """Sockets per read. Decoding the documents read (an account and a session each) is
    CPU on the event loop: a thousand at once held every delivery up for hundreds of
    milliseconds on a loaded machine; twenty, a millisecond or two."""
    PAUSE = 0.01
    """Seconds between reads: what else waits runs in between (a thousand sockets take
    half a second)."""

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Sweep] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self) -> None:
        self.sessions: dict[SocketSession, None] = {}
        """The listening sockets, in the order they came (a dict as an ordered set): a
        sweep reads them in that order, the same from one sweep to the next."""
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of_this_loop(cls) -> _Sweep:
        loop = asyncio.get_running_loop()
        sweep = cls._by_loop.get(loop)
        if sweep is None:
            sweep = cls._by_loop[loop] = cls()
        return sweep

    def add(self, session: SocketSession) -> None:
        self.sessions[session] = None
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="socket-session-sweep")

    def discard(self, session: SocketSession) -> None:
        self.sessions.pop(session, None)
        if not self.sessions and self._task is not None:
            # Nothing to sweep: no task left waiting (a process's last socket closed).
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while self.sessions:
            await asyncio.sleep(RECHECK_EVERY)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The database failed: the next sweep reads again (and signals still work).
                log.warning("the sockets' session sweep failed", exc_info=True)

    async def sweep(self) -> None:
        """Read every listening socket's session and account; end those that are over."""
        sessions = list(self.sessions)
        for start in range(0, len(sessions), self.BATCH):
            if start:
                await asyncio.sleep(self.PAUSE)
            # Those closed meanwhile are not read for.
            batch = [s for s in sessions[start : start + self.BATCH] if s in self.sessions]
            try:
                await _sweep(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                # One batch's failure (a stored account that no longer reads) must not
                # leave every batch after it unswept, sweep after sweep.
                log.warning("the session sweep of %d sockets failed", len(batch), exc_info=True)


async def _sweep(sockets: list[SocketSession]) -> None:
    """End the sockets whose session is over. What it read is not kept for operations
    to come (`_keep`): a thousand accounts held for a second, for operations that
    seldom start just then."""
    if not sockets:
        return
    user_ids = list({socket._claims.user_id for socket in sockets})
    session_ids = list({socket._claims.session_id for socket in sockets})
    users, sessions = await asyncio.gather(
        User.find({"_id": {"$in": user_ids}}).to_list(),
        Session.find({"_id": {"$in": session_ids}}).to_list(),
    )
    user_by_id: dict[ObjectId | None, User] = {user.id: user for user in users}
    session_by_id: dict[ObjectId | None, Session] = {s.id: s for s in sessions}
    for socket in sockets:
        claims = socket._claims
        try:
            viewer_of(claims, user_by_id.get(claims.user_id), session_by_id.get(claims.session_id))
        except DomainError as error:
            if error.code in SESSION_OVER:
                socket._end_soon(error)


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
