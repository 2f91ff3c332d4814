"""The per-request context every resolver receives."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import TypeAlias

import strawberry
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from documents.errors import DomainError, ErrorCode
from realtime.going_away import OpenSocket
from resolvers.accounts.auth.socket_sessions import SocketSession
from resolvers.accounts.auth.viewer import Viewer, authenticate
from resolvers.common.services import RequestMeta, Services
from schema.common.loaders import Loaders
from schema.common.prepared import Prepared


@dataclass(slots=True)
class Context:
    """Slotted: a websocket keeps one for its life, and each subscription on it one or two
    of its own (`for_operation`, `without_caller`); without a `__dict__` each is about
    0.3 KB smaller."""

    services: Services
    meta: RequestMeta
    request: Request | WebSocket
    response: Response | None
    access_token: str | None
    loaders: Loaders = field(default_factory=Loaders)
    connection_params: dict[str, object] | None = None
    """What a websocket client sent with `connection_init`, until the view has read it
    (server/graphql_view.py `on_ws_connect`): not kept for the socket's life."""
    socket: OpenSocket | None = None
    """The websocket this runs on, whose work a graceful shutdown waits for."""
    session: SocketSession | None = None
    """The session a websocket was opened with; None over HTTP, or on an anonymous socket."""
    prepared: Prepared | None = None
    """A websocket operation's document, prepared off the event loop before it runs."""
    _viewer: asyncio.Future[Viewer | None] | None = None

    async def for_operation(self) -> Context:
        """A websocket's context for one operation started on it: the caller as of now
        (raises if their session, account or token no longer allows it) and data loaders
        of its own, so that nothing read for an earlier operation is taken for current."""
        viewer = await self.session.admit() if self.session is not None else None
        known: asyncio.Future[Viewer | None] = asyncio.get_running_loop().create_future()
        known.set_result(viewer)
        return dataclasses.replace(self, loaders=Loaders(), _viewer=known)

    def without_caller(self) -> Context:
        """The same, less what was read for the operation's start (the caller, the
        prepared document): for a stream kept for the socket's life, which reads the
        caller afresh whenever it checks again, and need not keep them meanwhile."""
        return dataclasses.replace(self, _viewer=None, prepared=None)

    async def viewer(self) -> Viewer | None:
        """The authenticated caller, or None without a token; raises if the token is bad.

        Looked up once per request, on first use, so that queries needing no identity
        cost no database round trip for it.
        """
        if self._viewer is None:
            self._viewer = asyncio.ensure_future(self._authenticate())
        return await asyncio.shield(self._viewer)

    async def _authenticate(self) -> Viewer | None:
        if not self.access_token:
            return None
        return await authenticate(self.services.tokens, self.access_token)

    async def require_viewer(self) -> Viewer:
        viewer = await self.viewer()
        if viewer is None:
            raise DomainError(ErrorCode.UNAUTHENTICATED, "Log in to do this.")
        return viewer


Info: TypeAlias = strawberry.Info[Context, None]
