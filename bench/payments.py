"""Payments under load: webhook events processed per second, and ledger transactions
posted per second, each with p50/p99 latency.

Run from the repository root: `python -m bench.payments` (about a minute; `--help` for
the knobs). Webhooks: signed events, each with a new id, POSTed by concurrent clients
over keep-alive HTTP to a real `gigql` in a uvicorn child process (the harness's
`serve`, production settings, the sandbox gateway with a known webhook secret). Two
rows: an event type gigql does not act on (verify, store, claim, mark ignored), and
`payment_intent.succeeded` for escrows seeded awaiting payment (the same, plus the
handler's transaction: the escrow becomes held and the payment is posted to the
ledger). Ledger: `resolvers.payments.ledger.post` in transactions from concurrent tasks in this
process, on separate accounts, with the sharded platform revenue account shared, and
on one hot wallet. Afterwards every answer, stored event, escrow and the ledger
(`resolvers.payments.ledger_check.verify`) are checked; a wrong one fails the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from bench.chat_fanout import percentile
from bench.harness import (
    HOST,
    Server,
    Workspace,
    cpu_seconds,
    fail,
    host_facts,
    load_average_before,
    machine_markdown,
    run_and_report,
    serve,
    workspace,
)
from documents.events import EventKind, Notification
from documents.money import Money
from documents.payments import ledger_accounts
from documents.payments.escrow import Escrow, EscrowStatus, FeeBreakdown
from documents.payments.ledger import Entry, MovementKind, transfer
from documents.payments.webhooks import WebhookEvent, WebhookStatus
from documents.transactions import run_in_transaction
from integrations.payments.webhooks import sign_payload
from resolvers.payments import ledger
from resolvers.payments.ledger_check import verify
from server.runtime import open_runtime

GIGQL = "gigql"
LOG_LEVEL = "WARNING"
WEBHOOK_SECRET = f"whsec_bench_{secrets.token_hex(16)}"
METRICS_TOKEN = secrets.token_hex(16)
"""Lets the benchmark read gigql's `/metrics`: its MongoDB command counts per row."""
COMMAND_COUNT = "gigql_mongodb_command_duration_seconds_count"
IGNORED_TYPE = "customer.tax_id.created"
PRICE, FEE, COMMISSION = 10_000, 1_000, 1_000


def usd(amount: int) -> Money:
    return Money(amount=amount, currency="USD")


@dataclass
class Row:
    what: str
    concurrency: int
    done: int
    seconds: float
    latencies_ms: list[float] = field(repr=False)
    attempts: int = 0
    """Transaction attempts: more than `done` means write conflicts (for webhook rows,
    every transaction the server began, from its command counts)."""
    commands: int = 0
    """Database commands gigql sent during the row (webhook rows, from `/metrics`)."""
    server_cpu: float = 0.0
    database_cpu: float = 0.0
    """CPU seconds gigql's process and the embedded database's used during the row
    (webhook rows; background jobs included): per event, they move far less with the
    machine's other load than the rate does."""

    @property
    def per_s(self) -> float:
        return self.done / self.seconds

    def as_json(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "concurrency": self.concurrency,
            "done": self.done,
            "seconds": round(self.seconds, 3),
            "per_s": round(self.per_s, 1),
            "p50_ms": round(percentile(self.latencies_ms, 0.5), 2),
            "p99_ms": round(percentile(self.latencies_ms, 0.99), 2),
            "attempts": self.attempts,
            "commands": self.commands,
            "server_cpu_ms_per_event": round(self.server_cpu * 1000 / max(self.done, 1), 2),
            "database_cpu_ms_per_event": round(self.database_cpu * 1000 / max(self.done, 1), 2),
        }


async def timed(
    what: str,
    concurrency: int,
    seconds: float,
    step: Callable[[int], Awaitable[bool]],
    attempts: Callable[[], int] = lambda: 0,
) -> Row:
    """`concurrency` workers calling `step(worker)` until `seconds` pass or it returns
    False (nothing left to do); each call's latency is recorded."""
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + seconds

    async def worker(number: int) -> None:
        while time.perf_counter() < deadline:
            begun = time.perf_counter()
            if not await step(number):
                return
            latencies.append((time.perf_counter() - begun) * 1000)

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    row = Row(what, concurrency, len(latencies), time.perf_counter() - started, latencies)
    row.attempts = attempts()
    print(
        f"bench: {what:<44} {row.per_s:8.0f}/s  p50 {percentile(latencies, 0.5):7.2f} ms  "
        f"p99 {percentile(latencies, 0.99):7.2f} ms",
        file=sys.stderr,
    )
    return row


# --- webhooks -------------------------------------------------------------------------


def event_body(event_type: str, data_object: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "id": f"evt_{secrets.token_hex(12)}",
            "object": "event",
            "api_version": "2024-06-20",
            "created": int(time.time()),
            "data": {"object": data_object},
            "livemode": False,
            "pending_webhooks": 1,
            "type": event_type,
        }
    ).encode()


def ignored_events() -> Iterator[bytes]:
    while True:
        yield event_body(IGNORED_TYPE, {"id": f"txi_{secrets.token_hex(8)}"})


def payment_events(escrows: list[Escrow]) -> Iterator[bytes]:
    for escrow in escrows:
        intent = {
            "id": escrow.payment_intent_id,
            "object": "payment_intent",
            "amount": PRICE + FEE,
            "currency": "usd",
            "status": "succeeded",
            "capture_method": "automatic",
            "latest_charge": f"ch_{secrets.token_hex(12)}",
            "transfer_group": escrow.gateway_group,
            "metadata": {"escrow_id": str(escrow.id)},
            "created": int(time.time()),
        }
        yield event_body("payment_intent.succeeded", intent)


async def command_counts(http: httpx.AsyncClient) -> Counter[str]:
    """How many database commands gigql has sent so far, by command name (all outcomes;
    background jobs and the scrape's own count included, a few per row)."""
    response = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    if response.status_code != 200:
        fail(f"/metrics: HTTP {response.status_code} {response.text}")
    counts: Counter[str] = Counter()
    for line in response.text.splitlines():
        if line.startswith(COMMAND_COUNT + "{"):
            labels, _, value = line.rpartition(" ")
            command = labels.split('command="', 1)[1].split('"', 1)[0]
            counts[command] += int(float(value))
    return counts


async def post_events(
    server: Server,
    what: str,
    events: Iterator[bytes],
    expected: str,
    args: argparse.Namespace,
    database_pid: int | None = None,
) -> Row:
    limits = httpx.Limits(max_connections=args.webhook_concurrency + 1)
    async with httpx.AsyncClient(
        base_url=f"http://{HOST}:{server.port}", limits=limits, timeout=30
    ) as http:

        async def step(_: int) -> bool:
            body = next(events, None)
            if body is None:
                return False
            header = sign_payload(body, WEBHOOK_SECRET, int(time.time()))
            response = await http.post(
                "/webhooks/stripe",
                content=body,
                headers={"Stripe-Signature": header, "Content-Type": "application/json"},
            )
            if response.status_code != 200 or response.json()["status"] != expected:
                fail(f"{what}: HTTP {response.status_code} {response.text}")
            return True

        before = await command_counts(http)
        server_before = cpu_seconds(server.pid)
        database_before = cpu_seconds(database_pid) if database_pid else 0.0
        row = await timed(what, args.webhook_concurrency, args.duration, step)
        row.server_cpu = cpu_seconds(server.pid) - server_before
        if database_pid:
            row.database_cpu = cpu_seconds(database_pid) - database_before
        sent = await command_counts(http) - before
        row.commands = sum(sent.values())
        # Every transaction ends in one commit or one abort (a write conflict: retried).
        row.attempts = sent["commitTransaction"] + sent["abortTransaction"]
        return row


async def seed_escrows(count: int) -> list[Escrow]:
    """Escrows awaiting payment, as accepting offers leaves them (fees: 10 % on top,
    10 % commission on release)."""
    fees = FeeBreakdown(
        price=usd(PRICE),
        customer_fee=usd(FEE),
        commission_on_hold=usd(0),
        commission_on_release=usd(COMMISSION),
        provider_share=usd(PRICE - COMMISSION),
    )
    escrows = [
        Escrow(
            # Ids chosen here: insert_many does not set them on the objects, and the
            # events name each escrow in their metadata, which the handler checks.
            id=ObjectId(),
            deal=f"task:{ObjectId()}",
            payer_id=ObjectId(),
            provider_id=ObjectId(),
            fees=fees,
            payment_intent_id=f"pi_{secrets.token_hex(12)}",
            refunded=usd(0),
            transfer_reversed=usd(0),
        )
        for _ in range(count)
    ]
    await Escrow.insert_many(escrows)
    return escrows


async def count_events() -> dict[str, int]:
    collection = WebhookEvent.get_pymongo_collection()
    return {s.value: await collection.count_documents({"status": s.value}) for s in WebhookStatus}


# --- ledger ---------------------------------------------------------------------------


class Poster:
    """Postings in their own transactions, counting every attempt (retries included)."""

    def __init__(self) -> None:
        self.attempts = 0

    async def post(self, key: str, kind: MovementKind, entries: list[Entry]) -> None:
        async def work(session: AsyncClientSession) -> None:
            self.attempts += 1
            await ledger.post(session, key=key, kind=kind, entries=entries)

        await run_in_transaction(work)


async def ledger_rows(args: argparse.Namespace) -> list[Row]:
    concurrency = args.ledger_concurrency
    rows = []
    payers = [ObjectId() for _ in range(concurrency)]

    separate = Poster()

    async def pay_into_new_escrow(worker: int) -> bool:
        escrow = ObjectId()
        entries = transfer(
            ledger_accounts.funding(payers[worker]), ledger_accounts.escrow(escrow), usd(PRICE)
        )
        await separate.post(f"bench:{escrow}:paid", MovementKind.PAYMENT_RECEIVED, entries)
        return True

    rows.append(
        await timed(
            "payments, separate accounts",
            concurrency,
            args.duration,
            pay_into_new_escrow,
            lambda: separate.attempts,
        )
    )

    shared = Poster()

    async def pay_with_fee(worker: int) -> bool:
        escrow = ObjectId()
        entries = [
            Entry(
                account=ledger_accounts.funding(payers[worker]), currency="USD", amount=-PRICE - FEE
            ),
            Entry(account=ledger_accounts.escrow(escrow), currency="USD", amount=PRICE),
            Entry(account=ledger_accounts.platform_revenue(), currency="USD", amount=FEE),
        ]
        await shared.post(f"bench:{escrow}:paid", MovementKind.PAYMENT_RECEIVED, entries)
        return True

    rows.append(
        await timed(
            "payments + fee to shared platform revenue",
            concurrency,
            args.duration,
            pay_with_fee,
            lambda: shared.attempts,
        )
    )

    # One provider's wallet, debited by every posting: the guarded single document.
    provider, source = ObjectId(), ObjectId()
    funding = Poster()
    budget = usd(10_000_000)
    await funding.post(
        f"bench:{source}:paid",
        MovementKind.PAYMENT_RECEIVED,
        transfer(ledger_accounts.funding(ObjectId()), ledger_accounts.escrow(source), budget),
    )
    await funding.post(
        f"bench:{source}:released",
        MovementKind.ESCROW_RELEASED,
        transfer(ledger_accounts.escrow(source), ledger_accounts.wallet(provider), budget),
    )
    hot = Poster()

    async def withdraw(worker: int) -> bool:
        entries = transfer(
            ledger_accounts.wallet(provider), ledger_accounts.payout_in_flight(provider), usd(1)
        )
        await hot.post(f"bench:withdrawal:{ObjectId()}", MovementKind.PAYOUT_REQUESTED, entries)
        return True

    rows.append(
        await timed(
            "withdrawals from one hot wallet",
            concurrency,
            args.duration,
            withdraw,
            lambda: hot.attempts,
        )
    )
    return rows


# --- the run --------------------------------------------------------------------------


@dataclass
class Report:
    machine: dict[str, str]
    webhooks: list[Row]
    postings: list[Row]
    stored: dict[str, int]
    escrows_held: int
    verification: str


async def prepare(space: Workspace, count: int) -> list[Escrow]:
    async with open_runtime(space.gigql_settings(LOG_LEVEL)):
        return await seed_escrows(count)


async def check_and_post(space: Workspace, args: argparse.Namespace) -> tuple[Any, ...]:
    async with open_runtime(space.gigql_settings(LOG_LEVEL)):
        stored = await count_events()
        held = await Escrow.get_pymongo_collection().count_documents(
            {"status": EscrowStatus.HELD.value}
        )
        # Each payment tells its payer and its provider, once each.
        notified = await Notification.get_pymongo_collection().count_documents(
            {"kind": EventKind.PAYMENT_SUCCEEDED.value}
        )
        if notified != 2 * held:
            fail(f"{held} escrows held, {notified} payment notifications (expected 2 each)")
        rows = await ledger_rows(args)
        result = await verify()
    if not result.ok:
        fail(f"the ledger does not verify:\n{result.as_text()}")
    return stored, held, rows, result.as_text()


async def drive_webhooks(
    server: Server, escrows: list[Escrow], args: argparse.Namespace, database_pid: int | None
) -> tuple[Row, list[Row]]:
    """An unmeasured second of ignored events first (connections, caches), then the rows."""
    warm_up = argparse.Namespace(**{**vars(args), "duration": 1})
    warm = await post_events(server, "warm-up", ignored_events(), "ignored", warm_up)
    rows = [
        await post_events(
            server, "event gigql ignores", ignored_events(), "ignored", args, database_pid
        ),
        await post_events(
            server,
            "payment_intent.succeeded (escrow held)",
            payment_events(escrows),
            "processed",
            args,
            database_pid,
        ),
    ]
    return warm, rows


def run(args: argparse.Namespace) -> Report:
    load_before = load_average_before()
    with workspace() as space:
        escrows = asyncio.run(prepare(space, args.escrows))
        env = {
            **space.gigql_environment(LOG_LEVEL),
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "GIGQL_METRICS_TOKEN": METRICS_TOKEN,
        }
        if args.notification_send_interval:
            env["GIGQL_NOTIFICATION_SEND_INTERVAL"] = args.notification_send_interval
        app = "server.cli:app_from_environment"
        with serve(GIGQL, app, space.workdir, env, factory=True) as server:
            warm, webhooks = asyncio.run(drive_webhooks(server, escrows, args, space.database_pid))
        stored, held, postings, verification = asyncio.run(check_and_post(space, args))
    ignored, payments = webhooks
    expected = {
        **{status.value: 0 for status in WebhookStatus},
        "ignored": warm.done + ignored.done,
        "processed": payments.done,
    }
    # Every acknowledged event stored once and finished; every payment held the escrow.
    if stored != expected or held != payments.done:
        fail(f"acknowledged {expected}, stored {stored}; {held} escrows held")
    load = (
        f"{args.webhook_concurrency} concurrent HTTP clients (httpx, keep-alive) and "
        f"{args.ledger_concurrency} concurrent posting tasks, up to {args.duration:g} s per "
        "row, in one benchmark process on the same machine; notifications sent every "
        f"{args.notification_send_interval or 'PT5S (the default)'}"
    )
    machine = host_facts(load_before, load)
    return Report(machine, webhooks, postings, stored, held, verification)


def _table(rows: list[Row], unit: str, attempts: bool, commands: bool = False) -> list[str]:
    extra = " attempts per posting |" if attempts else ""
    if commands:
        extra = (
            " database commands per event | transactions per event |"
            " gigql CPU ms per event | database CPU ms per event |"
        )
    columns = 4 if commands else 1 if attempts else 0
    lines = [
        f"| what | concurrency | {unit} | {unit}/s | p50 ms | p99 ms |{extra}",
        "| --- | ---: | ---: | ---: | ---: | ---: |" + " ---: |" * columns,
    ]
    for row in rows:
        cells = [
            row.what,
            str(row.concurrency),
            f"{row.done:,}",
            f"{row.per_s:,.0f}",
            f"{percentile(row.latencies_ms, 0.5):.2f}",
            f"{percentile(row.latencies_ms, 0.99):.2f}",
        ]
        if commands:
            cells.append(f"{row.commands / max(row.done, 1):.1f}")
        if attempts or commands:
            cells.append(f"{row.attempts / max(row.done, 1):.2f}")
        if commands:
            cells.append(f"{row.server_cpu * 1000 / max(row.done, 1):.1f}")
            cells.append(f"{row.database_cpu * 1000 / max(row.done, 1):.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(report: Report) -> str:
    lines = machine_markdown(report.machine)
    lines += ["", "### Webhook events over HTTP", ""]
    lines += _table(report.webhooks, "events", attempts=False, commands=True)
    lines += [
        "",
        f"Stored afterwards: {report.stored}; escrows held: {report.escrows_held}.",
        "",
        "### Ledger postings",
        "",
    ]
    lines += _table(report.postings, "postings", attempts=True)
    lines += ["", f"`gigql ledger verify` afterwards: {report.verification.splitlines()[0]}."]
    return "\n".join(lines)


def as_json(report: Report) -> dict[str, Any]:
    return {
        "machine": report.machine,
        "webhooks": [row.as_json() for row in report.webhooks],
        "postings": [row.as_json() for row in report.postings],
        "stored": report.stored,
        "escrows_held": report.escrows_held,
        "verification": report.verification,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.payments", description=__doc__)
    parser.add_argument("--duration", type=float, default=10, help="seconds per row (10)")
    parser.add_argument("--webhook-concurrency", type=int, default=16, help="HTTP clients (16)")
    parser.add_argument("--ledger-concurrency", type=int, default=16, help="posting tasks (16)")
    parser.add_argument(
        "--escrows", type=int, default=5000, help="escrows seeded for payment events (5000)"
    )
    parser.add_argument(
        "--notification-send-interval",
        metavar="DURATION",
        help="GIGQL_NOTIFICATION_SEND_INTERVAL for the server (ISO 8601, such as PT1H: the "
        "payments' e-mails are then sent after the rows, not during them; default the "
        "server's own, PT5S)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = parser.parse_args(argv)
    if min(args.duration, args.webhook_concurrency, args.ledger_concurrency, args.escrows) < 1:
        parser.error("durations and counts must be positive")
    run_and_report(lambda: run(args), markdown, as_json, args.json)


if __name__ == "__main__":
    main()
