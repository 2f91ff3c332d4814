"""The `gigql` command: serve, export-schema, create-admin, seed, ledger verify, reconcile,
generate-vapid-keys."""

from __future__ import annotations

import argparse
import asyncio
import errno
import getpass
import json
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

import uvicorn
from pydantic import ValidationError
from pymongo import MongoClient
from pymongo.errors import PyMongoError
from starlette.applications import Starlette
from uvicorn.supervisors import Multiprocess

from documents.settings import Settings
from realtime.redis_urls import cluster_address
from server.embedded import EmbeddedDatabaseError, EmbeddedMongo
from server.observability.multiprocess import metrics_folder
from server.private_files import private_folder, replace_private

if TYPE_CHECKING:
    from resolvers.payments.report import Report
    from server.runtime import Runtime

PROG = "gigql"
# Where a running `gigql serve` tells other commands how to reach its embedded database.
EMBEDDED_URL_FILE = "secantusdb.url"
# `gigql ledger verify` found problems (1: the command failed; 2: argparse's usage error).
LEDGER_PROBLEMS_EXIT = 3
# `gigql reconcile` found mismatches.
RECONCILE_MISMATCHES_EXIT = 3


def fail(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(1)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or 'settings'}: {e['msg']}"
            for e in error.errors()
        )
        fail(f"invalid settings: {problems}")


def app_from_environment() -> Starlette:
    """The uvicorn factory each worker process calls; settings come from the environment."""
    from server.app import create_app
    from server.logging import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            fail(f"{host}:{port} is already in use; stop the other server or choose --port")
        fail(f"cannot listen on {host}:{port}: {error.strerror}")
    sock.set_inheritable(True)
    return sock


def _database_error(url: str, timeout_ms: int) -> str | None:
    """Why the database at `url` does not answer, or None when it does."""
    try:
        client: MongoClient[dict[str, object]]
        with MongoClient(url, serverSelectionTimeoutMS=timeout_ms) as client:
            client.admin.command("ping")
    except PyMongoError as error:
        return str(error).split(" (configured timeouts")[0]
    return None


def _check_database(url: str) -> None:
    reason = _database_error(url, timeout_ms=5000)
    if reason is not None:
        fail(f"cannot reach the database at MONGODB_URL: {reason}")


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Uvicorn re-raises SIGTERM after its graceful shutdown; exit through `finally` blocks.
    raise SystemExit(0)


def _embedded_database(settings: Settings) -> EmbeddedMongo:
    data_dir = private_folder(Path(settings.data_dir))
    return EmbeddedMongo(data_dir / "db", log_path=data_dir / "secantusdb.log")


def serve(args: argparse.Namespace) -> None:
    # Flags win over the environment; workers read their settings from it too.
    for flag, name in (
        ("host", "HOST"),
        ("port", "PORT"),
        ("workers", "WORKERS"),
        ("data_dir", "DATA_DIR"),
    ):
        value = getattr(args, flag)
        if value is not None:
            os.environ[f"GIGQL_{name}"] = str(value)
    settings = load_settings()
    if settings.workers > 1 and not settings.redis_url:
        fail("several workers need REDIS_URL: the in-process broker cannot reach other workers")
    if settings.redis_url:
        try:
            cluster_address(settings.redis_url)
        except ValueError as error:
            fail(f"REDIS_URL: {error}")
    on_network = not settings.production and not settings.listens_on_loopback
    if on_network and not settings.allow_development_on_network:
        fail(
            "development mode serves GraphiQL, introspection and sandbox payments to whoever "
            f"reaches it: it listens on {settings.host} only with "
            "GIGQL_ALLOW_DEVELOPMENT_ON_NETWORK=true (or set GIGQL_ENVIRONMENT=production)"
        )
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    sock = _bind(settings.host, settings.port)
    sockets = [sock]
    if settings.metrics_port is not None:
        # Served by the same workers; only `/metrics` answers on it (server/observability/).
        sockets.append(_bind(settings.metrics_host or settings.host, settings.metrics_port))
    embedded: EmbeddedMongo | None = None
    url_file = Path(settings.data_dir) / EMBEDDED_URL_FILE
    try:
        if settings.mongodb_url:
            _check_database(settings.mongodb_url)
        else:
            database = _embedded_database(settings)
            try:
                os.environ["MONGODB_URL"] = database.start()
            except EmbeddedDatabaseError as error:
                fail(str(error))  # the folder may be another server's: leave its files alone
            embedded = database
            replace_private(url_file, embedded.url)
        # Before anything imports prometheus-client: a process's metric files go to the
        # folder named when its first metric is made, and it must be this run's.
        with metrics_folder(settings.workers, settings.metrics):
            _check_trusted_documents(settings)
            _run(settings, sockets, embedded is not None)
    finally:
        for bound in sockets:
            bound.close()
        if embedded is not None:
            url_file.unlink(missing_ok=True)
            embedded.stop()


def _check_trusted_documents(settings: Settings) -> None:
    """Every manifest entry prepared against the schema before anything starts: one that
    would not run stops `serve` with the file and entry (each worker loads them again)."""
    if not settings.trusted_documents or settings.trusted_documents_mode == "off":
        return
    from schema.persisted.manifest import ManifestError
    from schema.persisted.setup import persisted_documents
    from schema.schema import build_schema

    try:
        persisted_documents(build_schema(settings), settings, graph="main")
    except ManifestError as error:
        fail(f"GIGQL_TRUSTED_DOCUMENTS: {error}")


def _run(settings: Settings, sockets: list[socket.socket], embedded: bool) -> None:
    """Serve until stopped: one uvicorn server in this process, or its worker processes."""
    from server.runtime import jwt_secret, vapid_keys

    # Created once here, before any worker needs them.
    jwt_secret(settings)
    if settings.push_backend == "vapid":
        try:
            vapid_keys(settings)
        except RuntimeError as error:
            fail(str(error))
    _announce(settings, sockets, embedded)
    config = uvicorn.Config(
        "server.cli:app_from_environment",
        factory=True,
        workers=settings.workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=",".join(settings.trusted_proxies),
        lifespan="on",
        # A websocket message is held whole like a request body: the same limit.
        ws_max_size=settings.max_body_bytes,
    )
    if settings.workers > 1:
        Multiprocess(config, sockets=sockets).run()
        return
    server = uvicorn.Server(config)
    server.run(sockets=sockets)
    if not server.started:
        fail("the server did not start; see the log above")


def _announce(settings: Settings, sockets: list[socket.socket], embedded: bool) -> None:
    base = _base_url(settings.host, sockets[0])
    database = f"embedded SecantusDB in {settings.data_dir}" if embedded else "MONGODB_URL"
    broker = "in-process broker"
    if settings.redis_url:
        broker = "Redis" if cluster_address(settings.redis_url) is None else "Redis Cluster"
    print(f"{PROG}: serving on {base} ({database}, {broker})", file=sys.stderr)
    if settings.graphiql_enabled:
        print(f"{PROG}: GraphiQL at {base}/graphql", file=sys.stderr)
    if settings.metrics:
        print(f"{PROG}: metrics at {_metrics_url(settings, sockets)}", file=sys.stderr)


def _metrics_url(settings: Settings, sockets: list[socket.socket]) -> str:
    """Where `/metrics` answers (server/observability/exposition.py), and how."""
    if settings.metrics_port is not None:
        host = settings.metrics_host or settings.host
        return f"{_base_url(host, sockets[-1])}/metrics"
    url = f"{_base_url(settings.host, sockets[0])}/metrics"
    if settings.metrics_token is not None:
        return f"{url} (with GIGQL_METRICS_TOKEN)"
    if settings.production:
        return f"{url} answers 404 in production: set GIGQL_METRICS_PORT or GIGQL_METRICS_TOKEN"
    return url


def _base_url(host: str, sock: socket.socket) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{sock.getsockname()[1]}"


_SCHEMA_FILES = {"main": "schema.graphql", "partner": "partner-schema.graphql"}


def export_schema(args: argparse.Namespace) -> None:
    from schema.partners.schema import build_partner_schema
    from schema.schema import build_schema

    build = build_partner_schema if args.graph == "partner" else build_schema
    sdl = build(Settings(environment="development")).as_str() + "\n"
    output = Path(args.output or _SCHEMA_FILES[args.graph])
    if args.check:
        if not output.exists() or output.read_text() != sdl:
            again = "" if args.graph == "main" else f" --graph {args.graph}"
            fail(f"{output} is out of date; run `gigql export-schema{again}`")
        return
    output.write_text(sdl)
    print(f"{PROG}: wrote {output}", file=sys.stderr)


@contextmanager
def _database_url(settings: Settings) -> Iterator[str]:
    """MONGODB_URL; else the embedded database of a running server; else start it briefly."""
    if settings.mongodb_url:
        _check_database(settings.mongodb_url)
        yield settings.mongodb_url
        return
    url_file = Path(settings.data_dir) / EMBEDDED_URL_FILE
    if url_file.exists():
        url = url_file.read_text().strip()
        if _database_error(url, timeout_ms=1000) is None:
            yield url
            return
        # Left behind by a server that was killed; its database died with it.
        url_file.unlink(missing_ok=True)
    try:
        with _embedded_database(settings) as embedded:
            yield embedded.url
    except EmbeddedDatabaseError as error:
        fail(str(error))


def create_admin(args: argparse.Namespace) -> None:
    from documents.errors import DomainError
    from resolvers.accounts.admin import create_admin as create
    from resolvers.common.services import RequestMeta
    from server.runtime import open_runtime

    settings = load_settings()
    password = (
        sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
    )

    async def run(url: str) -> None:
        async with open_runtime(settings.model_copy(update={"mongodb_url": url})) as runtime:
            user = await create(
                runtime.services,
                RequestMeta(user_agent="gigql create-admin"),
                name=args.name,
                email=args.email,
                password=password,
            )
            print(f"{PROG}: {user.email} is an admin", file=sys.stderr)

    with _database_url(settings) as url:
        try:
            asyncio.run(run(url))
        except DomainError as error:
            fail("; ".join(p.message for p in error.problems))


def seed(args: argparse.Namespace) -> None:
    from server.demo_data import DEMO_PASSWORD, DemoDataExists, seed_demo
    from server.runtime import open_runtime

    if not args.demo:
        fail("say what to seed: --demo")
    settings = load_settings()

    async def run(url: str) -> None:
        async with open_runtime(settings.model_copy(update={"mongodb_url": url})) as runtime:
            counts = await seed_demo(
                runtime.services, tasks=args.tasks, providers=args.providers, posters=args.posters
            )
        print(
            f"{PROG}: seeded {counts.posters} posters, {counts.providers} providers, "
            f"{counts.packages} packages, {counts.tasks} tasks and {counts.offers} offers; "
            f"every demo account's password is {DEMO_PASSWORD}",
            file=sys.stderr,
        )

    with _database_url(settings) as url:
        try:
            asyncio.run(run(url))
        except DemoDataExists as error:
            fail(str(error))


def ledger_verify(args: argparse.Namespace) -> None:
    from resolvers.payments.ledger_check import verify

    async def check(_runtime: Runtime) -> Report:
        # The runtime binds the documents to the database; verify reads through them.
        return await verify()

    _report(load_settings(), check, LEDGER_PROBLEMS_EXIT)


def _report(
    settings: Settings,
    check: Callable[[Runtime], Awaitable[Report]],
    problems_exit: int,
    *,
    as_json: bool = False,
) -> None:
    """Run `check` on the database, print its report (as text, or as JSON), and exit
    with `problems_exit` when it found any problem."""
    from server.runtime import open_runtime

    async def run(url: str) -> Report:
        async with open_runtime(settings.model_copy(update={"mongodb_url": url})) as runtime:
            return await check(runtime)

    with _database_url(settings) as url:
        report = asyncio.run(run(url))
    print(json.dumps(report.as_json(), indent=2) if as_json else report.as_text())
    if not report.ok:
        raise SystemExit(problems_exit)


def _moment(value: str, *, end_of_day: bool = False) -> datetime:
    """An ISO date (its midnight, UTC; with `end_of_day` the next one, so that the day is
    included) or date and time (UTC unless it names an offset)."""
    try:
        if len(value) == len("2026-01-31"):
            day = datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
            return day + timedelta(days=1) if end_of_day else day
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"not an ISO date or date and time: {value!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def reconcile(args: argparse.Namespace) -> None:
    from resolvers.payments.reconcile.against_gateway import reconcile as compare

    settings = load_settings()
    created_from = _moment(args.created_from)
    created_until = _moment(args.created_until, end_of_day=True)
    if created_until <= created_from:
        fail("--to must be later than --from")

    async def check(runtime: Runtime) -> Report:
        return await compare(runtime.services.payments, created_from, created_until)

    _report(settings, check, RECONCILE_MISMATCHES_EXIT, as_json=args.json)


def generate_vapid_keys(args: argparse.Namespace) -> None:
    """A new VAPID key pair, as production's environment takes it."""
    from documents.notifications.push_keys import generate_private_key
    from integrations.push import VapidKeys

    keys = VapidKeys.of(generate_private_key())
    print(f"GIGQL_VAPID_PRIVATE_KEY={keys.private_key}")
    print(f"GIGQL_VAPID_PUBLIC_KEY={keys.public_key}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=PROG, description="GraphQL backend for gig marketplaces.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser("serve", help="run the API server")
    serve_parser.add_argument(
        "--host", help="interface to listen on (GIGQL_HOST, default 127.0.0.1)"
    )
    serve_parser.add_argument(
        "--port", type=int, help="port to listen on (GIGQL_PORT, default 8000)"
    )
    serve_parser.add_argument(
        "--workers", type=int, help="worker processes (GIGQL_WORKERS, default 1)"
    )
    serve_parser.add_argument("--data-dir", help="embedded database folder (GIGQL_DATA_DIR)")
    serve_parser.set_defaults(run=serve)

    export_parser = commands.add_parser("export-schema", help="write the GraphQL SDL")
    export_parser.add_argument(
        "--graph",
        choices=sorted(_SCHEMA_FILES),
        default="main",
        help="the main graph, or the one partner API keys reach",
    )
    export_parser.add_argument(
        "--output", help="default: schema.graphql, or partner-schema.graphql for --graph partner"
    )
    export_parser.add_argument(
        "--check", action="store_true", help="fail if the file is out of date"
    )
    export_parser.set_defaults(run=export_schema)

    admin_parser = commands.add_parser(
        "create-admin", help="create an admin, or promote an account"
    )
    admin_parser.add_argument("--email", required=True)
    admin_parser.add_argument("--name", default="Admin")
    admin_parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    admin_parser.set_defaults(run=create_admin)

    seed_parser = commands.add_parser("seed", help="fill the database with demo data")
    seed_parser.add_argument("--demo", action="store_true", help="a demo marketplace")
    seed_parser.add_argument("--tasks", type=int, default=10_000)
    seed_parser.add_argument("--providers", type=int, default=1_000)
    seed_parser.add_argument("--posters", type=int, default=500)
    seed_parser.set_defaults(run=seed)

    ledger_parser = commands.add_parser("ledger", help="ledger maintenance")
    ledger_commands = ledger_parser.add_subparsers(dest="ledger_command", required=True)
    verify_parser = ledger_commands.add_parser(
        "verify",
        help=f"check every ledger invariant; exit status {LEDGER_PROBLEMS_EXIT} on problems",
    )
    verify_parser.set_defaults(run=ledger_verify)

    reconcile_parser = commands.add_parser(
        "reconcile",
        help="compare our payments, refunds, transfers and payouts with Stripe's for a period; "
        f"exit status {RECONCILE_MISMATCHES_EXIT} on mismatches",
    )
    reconcile_parser.add_argument(
        "--from", dest="created_from", required=True, help="ISO date or date and time (UTC)"
    )
    reconcile_parser.add_argument(
        "--to",
        dest="created_until",
        required=True,
        help="ISO date (included) or date and time (excluded)",
    )
    reconcile_parser.add_argument("--json", action="store_true", help="print a JSON report")
    reconcile_parser.set_defaults(run=reconcile)

    vapid_parser = commands.add_parser(
        "generate-vapid-keys",
        help="print a new web push key pair (GIGQL_VAPID_PRIVATE_KEY, GIGQL_VAPID_PUBLIC_KEY)",
    )
    vapid_parser.set_defaults(run=generate_vapid_keys)

    args = parser.parse_args(argv)
    try:
        args.run(args)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
