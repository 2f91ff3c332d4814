"""Real outside services for the tests: a SecantusDB process and a Redis server, and a
proxy to make a connection to one go silent."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import redis

from server.embedded import free_port

LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def _answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """REDIS_URL if set; else a local Redis if one answers; else a redis-server we start."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    if _answers(LOCAL_REDIS):
        yield LOCAL_REDIS
        return
    with OwnRedis(workdir) as own:
        yield own.url


class OwnRedis:
    """A redis-server process of our own on a free port, which a test may stop and start
    again on the same port (the binary must be installed)."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("the tests need Redis: set REDIS_URL or install redis-server")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.process is None, "already running"
        # No persistence: a restart comes back empty, as after losing the machine.
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _answers(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def __enter__(self) -> OwnRedis:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class SilentProxy:
    """A TCP proxy whose connections can go silent without closing: what a network
    partition, or a host gone without a word, looks like from a client (a half-open
    connection).

    Bytes pass both ways until `silence()`; from then on the connections open so far
    stay open and carry nothing either way, while connections opened afterwards pass
    bytes again, so a client that gives up on a silent connection and reconnects gets
    through."""

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
