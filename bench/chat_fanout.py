"""Chat fan-out: 1,000 websocket subscribers of gigql's `messageAdded` receiving messages
published to Redis, against a raw Starlette websocket + Redis fan-out with the same
clients in the same run.

Run from the repository root: `python -m bench.chat_fanout` (about 5 minutes; `--help`
for the knobs). 500 task conversations with two members each are opened in-process
through gigql's own use cases; every member subscribes on a websocket of their own from
client processes (bench/chat_clients.py). A publisher puts messages on the conversations'
Redis channels in exactly the form `sendMessage` publishes, so what is measured is the
fan-out; one last row goes through the real `sendMessage` mutation instead.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import redis
from beanie import PydanticObjectId
from bson import ObjectId
from pydantic import TypeAdapter
from pymongo import MongoClient, UpdateOne
from strawberry.relay import to_base64

from bench.chat_clients import Clients, Integrity, Subscriber
from bench.harness import (
    HOST,
    Server,
    Workspace,
    cpu_seconds,
    fail,
    host_facts,
    load_average_before,
    machine_markdown,
    redis_server,
    rss_bytes,
    run_and_report,
    serve,
    settle,
    workspace,
)
from bench.harness import PACKAGES as HARNESS_PACKAGES
from documents.accounts.users import User
from documents.chat.conversations import ChatMessage, Conversation
from documents.clock import utcnow
from documents.marketplace.offers import Offer
from documents.marketplace.tasks import Task
from realtime.topics import conversation_topic
from resolvers.accounts.auth.sessions import start_session
from resolvers.accounts.auth.viewer import Viewer
from resolvers.chat import conversations as chat
from resolvers.chat.signals import MessageAdded, encode
from resolvers.common.services import RequestMeta
from server.demo_data import seed_demo
from server.runtime import open_runtime

GIGQL = "gigql"
RAW = "raw Starlette"
LOG_LEVEL = "WARNING"  # production's choice in bench/run.py: no access line per request
PACKAGES = (*HARNESS_PACKAGES, "redis", "websockets")
SELECTION = "id seq text sentAt"
SENDER = "sender { id name }"
"""Asked for in a second gigql pass: the sender's account is read for every delivery."""
# A long-lived token: a subscription ends when the token it was opened with runs out.
TOKEN_TTL = timedelta(hours=2)
TICK = 0.002
"""Seconds between the publisher's batches."""
KEPT_UP = 0.95
"""A step is kept up with when this share of its offered rate is delivered."""
RATES = [500, 1000, 2000, 3000, 4000, 5000, 6000, 8000, 10000, 12000, 16000, 20000, 24000]
RATES += [32000, 40000, 48000, 64000]
"""Deliveries a second, each at most 1.5 times the one before: a step the server cannot
keep up with queues at most a third of what it is offered, which Redis and the server's
queues hold without dropping anything. 500 is a message every 2 s in each conversation."""
STALL = 10.0
"""Seconds without a delivery after which a step's missing messages count as lost."""
PRIME = 0
"""The step number of the first messages, which only show that a subscription is live."""
SEND_MESSAGE = (
    "mutation($input: SendMessageInput!) "
    "{ sendMessage(input: $input) { errors { code message } message { seq } } }"
)


# --- the conversations ------------------------------------------------------------------


@dataclass(frozen=True)
class Chat:
    id: ObjectId
    members: tuple[ObjectId, ObjectId]
    tokens: tuple[str, str]
    """The members' access tokens, each from a session of its own."""

    @property
    def global_id(self) -> str:
        return to_base64("Conversation", str(self.id))


async def open_chats(space: Workspace, count: int) -> list[Chat]:
    """`count` task conversations between distinct people: a demo marketplace seeded as
    `gigql seed --demo` does, then, for tasks with offers, the poster opens a
    conversation with one tasker (`resolvers.chat.conversations`), neither in another one yet."""
    ttl = space.gigql_settings(LOG_LEVEL).model_copy(update={"access_token_ttl": TOKEN_TTL})
    async with open_runtime(ttl) as runtime:
        services = runtime.services
        await seed_demo(services, tasks=3 * count, providers=2 * count, posters=2 * count)
        users = {u.id: u for u in await User.find_all().to_list()}
        posters = {t.id: t.poster_id for t in await Task.find_all().to_list()}
        taken: set[ObjectId] = set()
        chats: list[Chat] = []
        for offer in await Offer.find_all().sort("_id").to_list():
            pair = (posters[offer.task_id], offer.tasker_id)
            if len(chats) == count or taken.intersection(pair):
                continue
            taken.update(pair)
            signed = [
                await start_session(services, RequestMeta(), users[member], "bench")
                for member in pair
            ]
            assert signed[0].session.id is not None
            viewer = Viewer(users[pair[0]], signed[0].session.id)
            conversation = await chat.open_task_conversation(viewer, offer.task_id, pair[1])
            assert conversation.id is not None
            tokens = (signed[0].access.token, signed[1].access.token)
            chats.append(Chat(conversation.id, pair, tokens))
    if len(chats) < count:
        fail(f"the demo marketplace gave only {len(chats)} conversations")
    return chats


def subscribers(chats: list[Chat]) -> list[Subscriber]:
    return [
        Subscriber(token, c.global_id, index) for index, c in enumerate(chats) for token in c.tokens
    ]


# --- the publisher ----------------------------------------------------------------------

_datetime: TypeAdapter[datetime] = TypeAdapter(datetime)


class Wire:
    """What `sendMessage` publishes for one sender in one conversation, from a template:
    pydantic's encoding costs about 13 µs a message, which at tens of thousands a second
    would take CPU from what is measured. The publisher compares each conversation's
    first message of every step with `encoded`, the real thing."""

    MARKS = ("ffffffffffffffffffffffff", "987654321", "@text@", "2001-02-03T04:05:06Z")
    """Stand-ins for the message's id, seq, text and time, in the order encoded."""
    _MARKED = re.compile("|".join(map(re.escape, MARKS)))

    def __init__(self, conversation_id: ObjectId, sender_id: ObjectId) -> None:
        self.conversation_id = conversation_id
        self.sender_id = sender_id
        marks = self.MARKS
        sample = self.encoded(
            ObjectId(marks[0]), int(marks[1]), marks[2], datetime.fromisoformat(marks[3])
        ).decode()
        if self._MARKED.findall(sample) != list(marks):
            fail(f"unexpected wire format: {sample}")
        self._parts = self._MARKED.split(sample)

    def encoded(self, message_id: ObjectId, seq: int, text: str, sent_at: datetime) -> bytes:
        """The real thing: resolvers.chat.signals, as resolvers.chat.conversations.send_message
        calls it."""
        message = ChatMessage(
            id=PydanticObjectId(message_id),
            conversation_id=PydanticObjectId(self.conversation_id),
            seq=seq,
            sender_id=PydanticObjectId(self.sender_id),
            text=text,
            sent_at=sent_at,
        )
        return encode(MessageAdded(message=message))

    def render(self, message_id: ObjectId, seq: int, text: str, sent_at: datetime) -> bytes:
        # `text` is plain ASCII without quotes or backslashes: the same in JSON.
        values = (str(message_id), str(seq), text, _datetime.dump_json(sent_at).decode()[1:-1])
        p = self._parts
        return "".join(
            (p[0], values[0], p[1], values[1], p[2], values[2], p[3], values[3], p[4])
        ).encode()


class Publisher:
    """Messages to the conversations in turn, at a steady rate, each conversation's
    `seq` counting up from 1; the text carries the step and the publication time."""

    def __init__(self, url: str, chats: list[Chat]) -> None:
        self._redis = redis.Redis.from_url(url)
        self._topics = [conversation_topic(c.id) for c in chats]
        self._wires = [(Wire(c.id, c.members[0]), Wire(c.id, c.members[1])) for c in chats]
        self.seqs = [0] * len(chats)
        self._next = 0
        self.unheard = 0
        """Publications no server process was subscribed to."""

    def publish(self, step: int, per_second: float, seconds: float) -> tuple[int, float]:
        """Publish for `seconds`; the number published and the time of the first."""
        total = max(round(per_second * seconds), 1)
        started, sent, checked = time.time(), 0, 0
        while sent < total:
            due = min(total, int((time.time() - started) * per_second) + 1)
            pipe = self._redis.pipeline(transaction=False)
            for _ in range(due - sent):
                verify = checked < len(self._topics)  # each conversation's first, once a step
                pipe.publish(*self._message(step, verify))
                checked += 1
            self.unheard += pipe.execute().count(0)
            sent = due
            time.sleep(TICK)
        return total, started

    def _message(self, step: int, verify: bool) -> tuple[str, bytes]:
        index = self._next
        self._next = (index + 1) % len(self._topics)
        self.seqs[index] = seq = self.seqs[index] + 1
        wire = self._wires[index][seq % 2]  # the two members take turns
        sent_at, text, message_id = utcnow(), f"bench {step} {time.time():.6f}", ObjectId()
        data = wire.render(message_id, seq, text, sent_at)
        if verify and data != wire.encoded(message_id, seq, text, sent_at):
            fail(f"the publisher's message differs from sendMessage's: {data!r}")
        return self._topics[index], data

    def redis_version(self) -> str:
        return str(self._redis.info("server")["redis_version"])

    def redis_cpu(self) -> float:
        info = self._redis.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    def close(self) -> None:
        self._redis.close()


# --- steps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepResult:
    name: str
    offered_per_s: float
    """Deliveries a second offered: messages published a second times two members."""
    expected: int
    delivered: int
    delivered_per_s: float
    """Deliveries over the time from the first publication to the last delivery."""
    p50_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_us: float
    """Server CPU per delivery, from the step's start until the server is idle again."""
    server_cores: float
    clients_cores: float
    publisher_redis_cores: float
    rss_mb: float
    """The server's resident memory once the step is over."""

    @property
    def kept_up(self) -> bool:
        return self.delivered_per_s >= KEPT_UP * self.offered_per_s


def percentile(values: list[float], share: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=1000, method="inclusive")[round(share * 1000) - 1]


class Run:
    """One server with its subscribers connected: steps of load, measured."""

    def __init__(self, server: Server, clients: Clients, publisher: Publisher) -> None:
        self.server = server
        self.clients = clients
        self.publisher = publisher
        self._steps = 0

    def wait_for(self, step: int, expected: int) -> None:
        """Until the clients received `expected` messages of the step or stalled."""
        received, progress = 0, time.monotonic()
        while received < expected and time.monotonic() - progress < STALL:
            time.sleep(0.05)
            now_received, _ = self.clients.counts(step)
            if now_received > received:
                received, progress = now_received, time.monotonic()

    def measure(
        self, name: str, per_second: float, send: Callable[[int], tuple[int, float]]
    ) -> StepResult:
        """One step: `send(step)` sends `per_second` messages a second and returns how
        many it sent and when it started; each reaches the conversation's two members."""
        self._steps += 1
        step = self._steps
        pids = [self.server.pid]
        settle(pids)
        cpu = cpu_seconds(self.server.pid)
        clients_cpu = sum(cpu_seconds(pid) for pid in self.clients.pids)
        other_cpu = time.process_time() + self.publisher.redis_cpu()
        published, started = send(step)
        expected = 2 * published
        self.wait_for(step, expected)
        settle(pids)
        received = self.clients.step(step)
        window = max(received.last - started, 1e-9)
        server_cpu = cpu_seconds(self.server.pid) - cpu
        clients_cpu = sum(cpu_seconds(pid) for pid in self.clients.pids) - clients_cpu
        other_cpu = time.process_time() + self.publisher.redis_cpu() - other_cpu
        latencies = list(received.latencies_ms)
        result = StepResult(
            name=name,
            offered_per_s=2 * per_second,
            expected=expected,
            delivered=received.received,
            delivered_per_s=received.received / window,
            p50_ms=percentile(latencies, 0.5),
            p99_ms=percentile(latencies, 0.99),
            max_ms=max(latencies, default=float("nan")),
            server_cpu_us=server_cpu / max(received.received, 1) * 1e6,
            server_cores=server_cpu / window,
            clients_cores=clients_cpu / window,
            publisher_redis_cores=other_cpu / window,
            rss_mb=rss_bytes(self.server.pid) / 2**20,
        )
        print(
            f"bench: {self.server.name:<13} {name:<22} offered {result.offered_per_s:6.0f}/s "
            f"delivered {result.delivered_per_s:6.0f}/s  p50 {result.p50_ms:7.1f} ms  "
            f"p99 {result.p99_ms:7.1f} ms  CPU: server {result.server_cores:4.0%} clients "
            f"{result.clients_cores:4.0%} others {result.publisher_redis_cores:4.0%}  "
            f"missing {expected - received.received}",
            file=sys.stderr,
        )
        return result

    def publish(self, name: str, deliveries_per_s: float, seconds: float) -> StepResult:
        rate = deliveries_per_s / 2
        return self.measure(name, rate, lambda step: self.publisher.publish(step, rate, seconds))

    def ladder(self, rates: list[int], seconds: float) -> list[StepResult]:
        """Step by step up the offered rates, until one is not kept up with."""
        steps: list[StepResult] = []
        for rate in rates:
            steps.append(self.publish(f"{rate:,} /s", rate, seconds))
            if not steps[-1].kept_up:
                break
        return steps

    def prime(self) -> None:
        """A message to every conversation until every socket has one: from then on each
        socket must receive every message of its conversation, in order."""
        deadline = time.monotonic() + 60
        conversations = len(self.publisher.seqs)
        while self.clients.counts(PRIME)[1] < self.clients.subscribers:
            if time.monotonic() > deadline:
                fail(f"{self.server.name}: not every subscription receives messages")
            self.publisher.publish(PRIME, conversations * 10, 0.1)
            time.sleep(1)
        self.clients.step(PRIME)
        self.publisher.unheard = 0  # what was published before the subscriptions were live


@dataclass(frozen=True)
class Memory:
    before_mb: float
    """Once one subscription has come and gone: what the first one loads is not per
    subscription."""
    idle_mb: float
    """With every subscriber connected and subscribed, before any message."""
    subscriptions: int

    @property
    def per_subscription_kb(self) -> float:
        return (self.idle_mb - self.before_mb) * 1024 / self.subscriptions


@dataclass
class Pass:
    """One server, with one selection, from connecting its subscribers to the end."""

    server: str
    selection: str
    steps: list[StepResult]
    memory: Memory | None = None
    soak: list[StepResult] = field(default_factory=list)
    end_to_end: StepResult | None = None
    round_trip_p50_ms: float | None = None
    """sendMessage's own HTTP round trip, in the end-to-end row."""
    integrity: Integrity = field(default_factory=Integrity)
    unheard: int = 0
    """Publications Redis delivered to no server process."""

    @property
    def saturation(self) -> StepResult:
        """The highest offered rate kept up with."""
        kept = [s for s in self.steps if s.kept_up] or self.steps[:1]
        return kept[-1]


@dataclass
class Report:
    machine: dict[str, str]
    chats: int
    setup_s: float
    passes: list[Pass] = field(default_factory=list)


# --- the run ----------------------------------------------------------------------------


@contextmanager
def connected(
    server: Server, subscribed: list[Subscriber], selection: str, processes: int
) -> Iterator[Clients]:
    clients = Clients(HOST, server.port, selection, subscribed, processes)
    try:
        count = clients.connect()
        if count < len(subscribed):
            why = clients.integrity({}).closed.most_common(3)
            fail(f"{server.name}: only {count} of {len(subscribed)} subscribed: {why}")
        yield clients
    finally:
        clients.close()


def measure_server(
    server: Server,
    chats: list[Chat],
    publisher: Publisher,
    args: argparse.Namespace,
    space: Workspace,
) -> Pass:
    """Memory per idle subscription, then the two memory steps, then the ladder."""
    subscribed = subscribers(chats)
    with connected(server, subscribed[:1], args.selection, 1):
        pass
    settle([server.pid])
    before = rss_bytes(server.pid)
    with connected(server, subscribed, args.selection, args.client_processes) as clients:
        settle([server.pid])
        memory = Memory(before / 2**20, rss_bytes(server.pid) / 2**20, len(subscribed))
        run = Run(server, clients, publisher)
        run.prime()
        soak = [run.publish(f"memory {n}", args.soak_rate, args.duration) for n in (1, 2)]
        result = Pass(server.name, args.selection, run.ladder(args.rates, args.duration))
        result.memory, result.soak = memory, soak
        if server.name == GIGQL and args.e2e_rate:
            result.end_to_end, result.round_trip_p50_ms = send_messages(run, chats, args, space)
        finish(result, clients, publisher)
    return result


def measure_selection(
    server: Server, chats: list[Chat], publisher: Publisher, args: argparse.Namespace
) -> Pass:
    """The ladder again, with the sender asked for too: a read of the sender per delivery."""
    selection = f"{args.selection} {SENDER}"
    with connected(server, subscribers(chats), selection, args.client_processes) as clients:
        run = Run(server, clients, publisher)
        run.prime()
        result = Pass(server.name, selection, run.ladder(args.rates, args.duration))
        finish(result, clients, publisher)
    return result


def finish(result: Pass, clients: Clients, publisher: Publisher) -> None:
    """Whether every socket got every message of its conversation since its first."""
    result.integrity = clients.integrity(dict(enumerate(publisher.seqs)))
    result.unheard, publisher.unheard = publisher.unheard, 0


def send_messages(
    run: Run, chats: list[Chat], args: argparse.Namespace, space: Workspace
) -> tuple[StepResult, float]:
    """The real thing: sendMessage over HTTP, the members of each conversation taking
    turns, at a modest rate; latency from just before the request to the delivery."""
    publisher = run.publisher
    # The stored conversations go on from where the publisher's messages left them.
    client: MongoClient[dict[str, Any]] = MongoClient(space.mongodb_url)
    with client:
        client[space.database_name][Conversation.Settings.name].bulk_write(
            [
                UpdateOne({"_id": c.id}, {"$set": {"last_seq": publisher.seqs[i]}})
                for i, c in enumerate(chats)
            ]
        )
    round_trips: list[float] = []
    url = f"http://{HOST}:{run.server.port}/graphql"

    async def send(http: httpx.AsyncClient, step: int, index: int) -> None:
        publisher.seqs[index] = seq = publisher.seqs[index] + 1
        started = time.time()
        text = f"bench {step} {started:.6f}"
        body = {"conversationId": chats[index].global_id, "text": text}
        token = chats[index].tokens[seq % 2]
        response = await http.post(
            url,
            json={"query": SEND_MESSAGE, "variables": {"input": body}},
            headers={"Authorization": f"Bearer {token}"},
        )
        round_trips.append((time.time() - started) * 1000)
        answer = response.json()
        payload = (answer.get("data") or {}).get("sendMessage") or {}
        if response.status_code != 200 or answer.get("errors") or payload.get("errors"):
            fail(f"sendMessage failed: HTTP {response.status_code}: {answer}")
        if payload["message"]["seq"] != seq:
            fail(f"sendMessage gave seq {payload['message']['seq']}, not {seq}")

    async def send_all(step: int) -> tuple[int, float]:
        total = max(round(args.e2e_rate * args.duration), 1)
        async with httpx.AsyncClient(timeout=30) as http:
            started, sending = time.time(), []
            for n in range(total):  # at a steady rate, whatever the answers take
                await asyncio.sleep(max(started + n / args.e2e_rate - time.time(), 0))
                sending.append(asyncio.create_task(send(http, step, n % len(chats))))
            await asyncio.gather(*sending)
        return total, started

    name = f"sendMessage {args.e2e_rate:g} /s"
    result = run.measure(name, args.e2e_rate, lambda step: asyncio.run(send_all(step)))
    return result, statistics.median(round_trips)


def run(args: argparse.Namespace) -> Report:
    load_before = load_average_before()
    with workspace() as space, redis_server(space.workdir) as redis_url:
        print(f"bench: opening {args.conversations} conversations", file=sys.stderr)
        started = time.perf_counter()
        chats = asyncio.run(open_chats(space, args.conversations))
        setup_s = time.perf_counter() - started
        print(f"bench: opened in {setup_s:.1f} s", file=sys.stderr)
        publisher = Publisher(redis_url, chats)
        machine = host_facts(load_before, load_description(args), PACKAGES)
        machine["redis-server"] = publisher.redis_version()
        report = Report(machine, len(chats), setup_s)
        try:
            gigql_env = {**space.gigql_environment(LOG_LEVEL), "REDIS_URL": redis_url}
            app = "server.cli:app_from_environment"
            with serve(GIGQL, app, space.workdir, gigql_env, factory=True) as server:
                report.passes.append(measure_server(server, chats, publisher, args, space))
                if args.sender:
                    report.passes.append(measure_selection(server, chats, publisher, args))
            app = "bench.raw_chat:app_from_environment"
            with serve(RAW, app, space.workdir, {"REDIS_URL": redis_url}, factory=True) as server:
                report.passes.append(measure_server(server, chats, publisher, args, space))
        finally:
            publisher.close()
    return report


def load_description(args: argparse.Namespace) -> str:
    return (
        f"{2 * args.conversations:,} websocket subscribers ({args.conversations:,} "
        f"conversations of two) in {args.client_processes} client processes and one "
        f"publisher, {args.duration} s per step, on the same machine"
    )


# --- output -----------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def markdown(report: Report) -> str:
    machine = report.machine
    lines = [
        *machine_markdown(machine, PACKAGES),
        f"- Redis {machine['redis-server']} (`redis-server`), on the same machine",
        f"- Data: {report.chats:,} task conversations opened in {report.setup_s:.1f} s "
        "(demo marketplace, sessions and conversations)",
        "",
        "## Throughput and latency",
        "",
        "| server | selection | offered /s | delivered /s | p50 ms | p99 ms | max ms "
        "| server CPU µs/delivery | server CPU | clients CPU | publisher + Redis CPU | missing |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for done in report.passes:
        for step in done.steps + ([done.end_to_end] if done.end_to_end else []):
            selection = "sendMessage" if step is done.end_to_end else f"`{done.selection}`"
            lines.append(
                f"| {done.server} | {selection} | {step.offered_per_s:,.0f} "
                f"| {step.delivered_per_s:,.0f} | {_ms(step.p50_ms)} | {_ms(step.p99_ms)} "
                f"| {_ms(step.max_ms)} | {step.server_cpu_us:.0f} | {step.server_cores:.0%} "
                f"| {step.clients_cores:.0%} | {step.publisher_redis_cores:.0%} "
                f"| {step.expected - step.delivered} |"
            )
    gigql, raw = report.passes[0], report.passes[-1]
    lines += [
        "",
        f"Highest offered rate kept up with (at least {KEPT_UP:.0%} of it delivered over "
        "the step), and what the server delivered at the next, which it could not:",
        "",
    ]
    for done in report.passes:
        top, over = done.saturation, done.steps[-1]
        beyond = (
            f"; offered {over.offered_per_s:,.0f}, it delivered {over.delivered_per_s:,.0f}/s"
            if not over.kept_up
            else ""
        )
        lines.append(
            f"- {done.server}, `{done.selection}`: **{top.offered_per_s:,.0f}** deliveries/s "
            f"(p99 {_ms(top.p99_ms)} ms){beyond}"
        )
    ratio = gigql.saturation.offered_per_s / raw.saturation.offered_per_s
    overloaded = ""
    if not (gigql.steps[-1].kept_up or raw.steps[-1].kept_up):
        delivered = gigql.steps[-1].delivered_per_s / raw.steps[-1].delivered_per_s
        overloaded = f", {delivered:.2f} delivered when overloaded"
    first = gigql.steps[0]
    lines += [
        f"- gigql / raw Starlette: **{ratio:.2f}** kept up with{overloaded} (target: at least 0.5)",
        f"- p99 at {first.offered_per_s:,.0f} deliveries/s: gigql **{_ms(first.p99_ms)} ms**, "
        f"raw Starlette {_ms(raw.steps[0].p99_ms)} ms (target: gigql under 100 ms)",
        "",
        "## Memory",
        "",
        "| server | RSS before MB | with subscribers idle MB | per idle subscription KB "
        "| after memory step 1 MB | after memory step 2 MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for done in report.passes:
        if done.memory is None:
            continue
        m = done.memory
        lines.append(
            f"| {done.server} | {m.before_mb:.1f} | {m.idle_mb:.1f} "
            f"| {m.per_subscription_kb:.1f} | {done.soak[0].rss_mb:.1f} "
            f"| {done.soak[1].rss_mb:.1f} |"
        )
    lines += ["", "## Every message, once, in order", ""]
    for done in report.passes:
        check = done.integrity
        delivered = sum(s.delivered for s in done.steps + done.soak) + (
            done.end_to_end.delivered if done.end_to_end else 0
        )
        closed = ", ".join(f"{why} ({n})" for why, n in check.closed.items()) or "none"
        errors = ", ".join(f"{why} ({n})" for why, n in check.errors.items()) or "none"
        lines.append(
            f"- {done.server}, `{done.selection}`: {delivered:,} deliveries measured; "
            f"{check.lost} lost, {check.duplicated} duplicated or out of order; "
            f"closed: {closed}; errors: {errors}; publications no server heard: "
            f"{done.unheard}"
        )
    if gigql.end_to_end and gigql.round_trip_p50_ms is not None:
        lines += [
            "",
            f"sendMessage's own HTTP round trip in the end-to-end row: p50 "
            f"{_ms(gigql.round_trip_p50_ms)} ms.",
        ]
    return "\n".join(lines) + "\n"


def as_json(report: Report) -> dict[str, Any]:
    found = asdict(report)
    for done, data in zip(report.passes, found["passes"], strict=True):
        data["saturation_per_s"] = done.saturation.offered_per_s
        if done.memory:
            data["memory"]["per_subscription_kb"] = done.memory.per_subscription_kb
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chat_fanout",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--duration", type=int, default=6, help="seconds per step (default 6)")
    parser.add_argument(
        "--rates",
        type=lambda text: [int(rate) for rate in text.split(",")],
        default=RATES,
        help="deliveries a second offered, step after step until one is not kept up with "
        f"(default {','.join(map(str, RATES))}); the first is the realistic one",
    )
    parser.add_argument(
        "--soak-rate",
        type=int,
        default=2000,
        help="deliveries a second in the two memory steps (default 2000)",
    )
    parser.add_argument(
        "--e2e-rate",
        type=float,
        default=20,
        help="sendMessage calls a second in the end-to-end row, 0 for none (default 20)",
    )
    parser.add_argument(
        "--conversations",
        type=int,
        default=500,
        help="conversations, each with two subscribers (default 500)",
    )
    parser.add_argument(
        "--client-processes", type=int, default=2, help="processes of subscribers (default 2)"
    )
    parser.add_argument(
        "--selection",
        default=SELECTION,
        help=f"fields of messageAdded to ask for (default {SELECTION!r})",
    )
    parser.add_argument(
        "--no-sender",
        dest="sender",
        action="store_false",
        help=f"skip the second gigql pass, which also asks for {SENDER!r}",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = parser.parse_args(argv)
    if min(args.duration, args.conversations, args.client_processes, *args.rates) < 1:
        parser.error("durations, rates and counts must be positive")
    if min(args.soak_rate, args.e2e_rate) < 0:
        parser.error("rates must not be negative")
    run_and_report(lambda: run(args), markdown, as_json, args.json)


if __name__ == "__main__":
    main()
