"""A partner's webhook receiver: an aiohttp server on a loopback port that checks every
signature it gets with its own copy of the README's verification, and can be told to
fail for a while."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def verify(body: bytes, header: str, secret: str, tolerance: int = 300) -> bool:
    """The README's snippet, as a partner would write it."""
    items = [item.split("=", 1) for item in header.split(",")]
    timestamp = next(value for key, value in items if key == "t")
    signed = f"{timestamp}.".encode() + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(timestamp)) <= tolerance
    return fresh and any(
        hmac.compare_digest(value, expected) for key, value in items if key == "v1"
    )


@dataclass
class Post:
    """One post received, whatever was answered."""

    event: dict[str, Any]
    body: bytes
    signature: str
    headers: dict[str, str]
    answered: int


@dataclass
class Receiver:
    secret: str = ""
    """The secret the partner checks with; every post must verify under it."""
    failing: int | None = None
    """While set, every post is answered with this status (after being checked)."""
    delay: float = 0
    """Seconds each answer takes."""
    posts: list[Post] = field(default_factory=list)
    unverified: list[bytes] = field(default_factory=list)

    @property
    def accepted(self) -> list[dict[str, Any]]:
        """The events answered 2xx, in the order they came."""
        return [p.event for p in self.posts if p.answered == 200]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        header = request.headers.get("Gigql-Signature", "")
        if not header or not verify(body, header, self.secret):
            self.unverified.append(body)
            return web.Response(status=400, text="bad signature")
        event = json.loads(body)
        assert request.headers["Gigql-Event-Id"] == event["id"]
        answered = self.failing or 200
        self.posts.append(Post(event, body, header, dict(request.headers), answered))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failing is not None:
            return web.Response(status=self.failing, text="receiver is down for maintenance")
        return web.Response(text="thanks")


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[str]:
    """Serve `receiver` on a free loopback port; yield its webhook URL."""
    app = web.Application()
    app.router.add_post("/hooks", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    site = web.SockSite(runner, sock)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}/hooks"
    finally:
        await runner.cleanup()
        sock.close()
