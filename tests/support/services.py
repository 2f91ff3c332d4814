"""Real outside services for the tests: a SecantusDB process and a Redis server."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
