"""A TCP proxy whose connections can go silent without closing: what a network partition,
or a host gone without a word, looks like from a client (a half-open connection).

Bytes pass both ways until `silence()`; from then on the connections open so far stay
open and carry nothing either way, while connections opened afterwards pass bytes again,
so a client that gives up on a silent connection and reconnects gets through.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType


class SilentProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._server: asyncio.Server | None = None
        self._generation = 0
        self._pumps: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.connections = 0
        """Connections accepted so far."""

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.sockets[0].getsockname()[1])

    def silence(self) -> None:
        """The connections open now carry nothing more, and are not closed."""
        self._generation += 1

    async def __aenter__(self) -> SilentProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for pump in self._pumps:
            pump.cancel()
        for writer in self._writers:
            writer.close()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._pumps, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        self._writers += [writer, up_writer]
        generation = self._generation
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            pump = asyncio.create_task(self._pump(source, sink, generation))
            self._pumps.add(pump)
            pump.add_done_callback(self._pumps.discard)

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, generation: int
    ) -> None:
        while data := await source.read(65536):
            if generation != self._generation:
                continue  # silenced: swallowed, and the connection left open
            sink.write(data)
            await sink.drain()
