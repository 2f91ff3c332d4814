"""The subscribers of bench/chat_fanout.py: many websockets in each of a few processes.

Every socket is a minimal graphql-transport-ws client: `connection_init` with the
subscriber's bearer token, then one `subscribe` to its conversation. Frames are parsed by
hand on uvloop, without a websocket library, so that a delivered message costs the
clients a small fraction of what it costs the servers measured. No compression is
offered, so neither server compresses.

Each socket checks what it receives: consecutive `seq` numbers from its first message on
(a jump is a loss, a repeat or step back a duplicate). A message's text is
`bench <step> <publication time>`, from which the publish-to-receive latency is taken.
The parent drives each process through a pipe (`Clients`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import multiprocessing
import os
import time
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, cast

import uvloop

SUBSCRIBE = "subscription($c: ID!) { messageAdded(conversationId: $c) { %s } }"
CONNECTING = 32
"""Sockets opening at once in each process: gigql authenticates each before its ack."""
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


@dataclass(frozen=True)
class Subscriber:
    token: str
    conversation: str
    """The conversation's global id."""
    index: int
    """The conversation's place in the benchmark's list."""


@dataclass
class Step:
    """What the sockets of one process received of one step."""

    received: int = 0
    last: float = 0.0
    """When the last message arrived."""
    latencies_ms: array[float] = field(default_factory=lambda: array("d"))

    def merge(self, other: Step) -> None:
        self.received += other.received
        self.last = max(self.last, other.last)
        self.latencies_ms.extend(other.latencies_ms)


@dataclass
class Integrity:
    """Every socket's record: what it missed, saw twice, or was told on closing."""

    lost: int = 0
    duplicated: int = 0
    closed: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def merge(self, other: Integrity) -> None:
        self.lost += other.lost
        self.duplicated += other.duplicated
        self.closed.update(other.closed)
        self.errors.update(other.errors)


def _frame(opcode: int, payload: bytes) -> bytes:
    """A client frame: masked, as the protocol requires. Only a few are ever sent."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = bytes([0x80 | opcode, 0x80 | size])
    else:
        head = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(payload))


class Socket(asyncio.Protocol):
    def __init__(self, owner: Sockets, subscriber: Subscriber, ready: asyncio.Future[None]):
        self.owner = owner
        self.subscriber = subscriber
        self.ready = ready
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.next_seq: int | None = None
        self.received = 0
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's own class
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /graphql HTTP/1.1\r\nHost: {self.owner.host}:{self.owner.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
        )
        self.transport.write(request.encode())

    def send(self, message: dict[str, Any]) -> None:
        assert self.transport is not None
        self.transport.write(_frame(TEXT, json.dumps(message).encode()))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.fail("handshake: " + buffer[: buffer.find(b"\r\n")].decode(errors="replace"))
                return
            del buffer[: end + 4]
            self.upgraded = True
            token = {"Authorization": f"Bearer {self.subscriber.token}"}
            self.send({"type": "connection_init", "payload": token})
        at, size = 0, len(buffer)
        while size - at >= 2:
            first, length, head = buffer[at], buffer[at + 1] & 0x7F, 2
            if length == 126:
                length, head = int.from_bytes(buffer[at + 2 : at + 4], "big"), 4
            elif length == 127:
                length, head = int.from_bytes(buffer[at + 2 : at + 10], "big"), 10
            end = at + head + length
            if end > size:
                break
            payload = bytes(buffer[at + head : end])
            at = end
            if not first & 0x80:
                self.fail("fragmented frame")  # neither server fragments its messages
                return
            opcode = first & 0x0F
            if opcode == TEXT:
                self.owner.on_text(self, payload)
            elif opcode == PING:
                assert self.transport is not None
                self.transport.write(_frame(PONG, payload))
            elif opcode == CLOSE:
                code = int.from_bytes(payload[:2], "big") if payload else 1005
                self.fail(f"closed {code} {payload[2:].decode(errors='replace')}".strip())
                return
        del buffer[:at]

    def fail(self, why: str) -> None:
        self.owner.integrity.closed[why] += 1
        self.close()

    def close(self, frame: bytes = b"") -> None:
        self.closing = True
        if not self.ready.done():
            self.ready.set_result(None)
        if self.transport is not None:
            self.transport.write(frame)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            self.fail(f"connection lost: {exc}")
        self.owner.sockets.discard(self)


class Sockets:
    """One process's sockets, what they received, and what went wrong."""

    def __init__(self, host: str, port: int, selection: str) -> None:
        self.host = host
        self.port = port
        self.query = SUBSCRIBE % selection
        self.sockets: set[Socket] = set()
        self.steps: defaultdict[int, Step] = defaultdict(Step)
        self.integrity = Integrity()

    async def connect(self, subscribers: list[Subscriber]) -> int:
        """Open every socket, a few at a time; the number subscribed."""
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(CONNECTING)

        async def open_one(subscriber: Subscriber) -> None:
            async with gate:
                ready: asyncio.Future[None] = loop.create_future()
                try:
                    _, socket = await loop.create_connection(
                        lambda: Socket(self, subscriber, ready), self.host, self.port
                    )
                except OSError as error:
                    self.integrity.closed[f"connect: {error}"] += 1
                    return
                self.sockets.add(socket)
                await ready

        await asyncio.gather(*(open_one(s) for s in subscribers))
        return len(self.sockets)

    def on_text(self, socket: Socket, payload: bytes) -> None:
        message = json.loads(payload)
        kind = message.get("type")
        if kind == "next":  # gigql: the subscription's result
            result = message["payload"]
            if "errors" in result:
                self.integrity.errors[json.dumps(result["errors"])[:200]] += 1
                return
            self.deliver(socket, result["data"]["messageAdded"])
        elif message.get("kind") == "added":  # raw: the broker's payload, as is
            self.deliver(socket, message["message"])
        elif kind == "connection_ack":
            socket.send(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {
                        "query": self.query,
                        "variables": {"c": socket.subscriber.conversation},
                    },
                }
            )
            socket.ready.set_result(None)
        elif kind == "ping":
            socket.send({"type": "pong"})
        else:  # error, complete: the subscription is over
            self.integrity.errors[payload.decode(errors="replace")[:200]] += 1

    def deliver(self, socket: Socket, item: dict[str, Any]) -> None:
        now = time.time()
        seq: int = item["seq"]
        _, step, sent = item["text"].split(" ")
        record = self.steps[int(step)]
        record.received += 1
        record.last = now
        record.latencies_ms.append((now - float(sent)) * 1000)
        socket.received += 1
        expected = socket.next_seq
        if expected is not None and seq != expected:
            if seq < expected:
                self.integrity.duplicated += 1
                return
            self.integrity.lost += seq - expected
        socket.next_seq = seq + 1

    def counts(self, step: int) -> tuple[int, int]:
        """Received in the step, and sockets that have received anything at all."""
        return self.steps[step].received, sum(1 for s in self.sockets if s.received)

    def integrity_against(self, last_seqs: dict[int, int]) -> Integrity:
        """The record so far, counting as lost what a socket never got after its last."""
        report = Integrity(
            self.integrity.lost, self.integrity.duplicated, self.integrity.closed.copy()
        )
        report.errors.update(self.integrity.errors)
        for socket in self.sockets:
            final = last_seqs.get(socket.subscriber.index, 0)
            expected = socket.next_seq if socket.next_seq is not None else 1
            report.lost += max(final + 1 - expected, 0)
        return report


# --- the process ------------------------------------------------------------------------


def _serve(
    host: str, port: int, selection: str, subscribers: list[Subscriber], pipe: Connection
) -> None:
    """A client process: commands from the parent on the pipe, answers on the same."""

    async def main() -> None:
        sockets = Sockets(host, port, selection)
        loop = asyncio.get_running_loop()
        commands: dict[str, Callable[..., Any]] = {
            "counts": sockets.counts,
            "step": lambda step: sockets.steps.pop(step, Step()),
            "integrity": sockets.integrity_against,
        }
        # The pipe is read in a thread: blocking, it takes answers of any size.
        while (command := await loop.run_in_executor(None, pipe.recv))[0] != "close":
            name, *args = command
            if name == "connect":
                pipe.send(await sockets.connect(subscribers))
            else:
                pipe.send(commands[name](*args))
        for socket in list(sockets.sockets):
            socket.close(_frame(CLOSE, (1000).to_bytes(2, "big")))
        await asyncio.sleep(0.1)

    uvloop.run(main())


class Clients:
    """The client processes, each with its share of the subscribers."""

    def __init__(
        self, host: str, port: int, selection: str, subscribers: list[Subscriber], processes: int
    ) -> None:
        context = multiprocessing.get_context("spawn")  # nothing of the parent's state
        self._pipes: list[Connection] = []
        self._processes = []
        self.subscribers = len(subscribers)
        for share in range(processes):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_serve,
                args=(host, port, selection, subscribers[share::processes], theirs),
                daemon=True,
            )
            process.start()
            self._pipes.append(ours)
            self._processes.append(process)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p.pid is not None]

    def ask(self, *command: Any) -> list[Any]:
        for pipe in self._pipes:
            pipe.send(command)
        return [pipe.recv() for pipe in self._pipes]

    def connect(self) -> int:
        return sum(self.ask("connect"))

    def counts(self, step: int) -> tuple[int, int]:
        answers = self.ask("counts", step)
        return sum(a[0] for a in answers), sum(a[1] for a in answers)

    def step(self, step: int) -> Step:
        merged = Step()
        for part in self.ask("step", step):
            merged.merge(part)
        return merged

    def integrity(self, last_seqs: dict[int, int]) -> Integrity:
        merged = Integrity()
        for part in self.ask("integrity", last_seqs):
            merged.merge(part)
        return merged

    def close(self) -> None:
        for pipe in self._pipes:
            pipe.send(("close",))
        for process in self._processes:
            process.join(10)
            if process.is_alive():
                process.kill()
