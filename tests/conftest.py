"""Fixtures: one SecantusDB process and one Redis per test session, the app served by
uvicorn on a loopback port in the test's own event loop, and a clean database per test."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from beanie import Document
from pydantic import SecretStr
from pymongo.errors import AutoReconnect
from starlette.types import ASGIApp

from documents import ALL_DOCUMENTS
from documents.settings import Settings
from integrations.mail import MemoryMailer
from server.app import create_app
from server.embedded import IN_MEMORY, EmbeddedMongo
from server.runtime import Runtime, make_services, open_runtime
from tests.support.command_log import COMMAND_LOG, CommandLog
from tests.support.graphql_client import GraphQLClient
from tests.support.redis_cluster import OwnCluster, own_cluster
from tests.support.services import redis_server

TEST_JWT_SECRET = "test-secret-long-enough-for-every-hmac-algorithm-0123456789abcdef"
GENEROUS_RATE_LIMIT = 1_000_000_000
"""Every test client is 127.0.0.1: rate limits that count every request but never refuse
one (tests/api/test_rate_limits.py tests the limits themselves at small ones)."""


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("secantus") / "secantusdb.log"
    with EmbeddedMongo(IN_MEMORY, log_path=log) as database:
        yield database.url


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnCluster]:
    """A three-node Redis Cluster of the session's own (tests that stop a node start one
    of their own instead)."""
    with own_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def settings(mongo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        _env_file=None,
        mongodb_url=mongo_url,
        mongodb_database="gigql_test",
        redis_url=None,
        data_dir=tmp_path_factory.mktemp("data"),
        jwt_secret=SecretStr(TEST_JWT_SECRET),
        mail_backend="memory",
        # Cheap hashing keeps the suite fast; the production cost is measured in bench/.
        argon2_time_cost=1,
        argon2_memory_cost_kib=1024,
        argon2_parallelism=1,
        rate_limit_ip_requests=GENEROUS_RATE_LIMIT,
        rate_limit_ip_cost=GENEROUS_RATE_LIMIT,
        rate_limit_account_requests=GENEROUS_RATE_LIMIT,
        rate_limit_account_cost=GENEROUS_RATE_LIMIT,
    )


@pytest.fixture(scope="session")
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    async with open_runtime(settings) as opened:
        yield opened


def with_settings(runtime: Runtime, **changes: Any) -> Runtime:
    """The same database and broker, with some settings of the use cases changed."""
    services = runtime.services
    settings = services.settings.model_copy(update=changes)
    return dataclasses.replace(
        runtime,
        services=make_services(settings, services.postman, services.broker, services.payments),
    )


class _InLoopServer(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Leave Ctrl-C to pytest.
        yield


@asynccontextmanager
async def serve(runtime: Runtime, **changes: Any) -> AsyncIterator[str]:
    """Serve the app on a free loopback port; yield its base URL."""
    runtime = with_settings(runtime, **changes) if changes else runtime
    settings = runtime.services.settings
    app = create_app(settings, runtime)
    # uvicorn's limit set as `gigql serve` sets it.
    async with serve_asgi(app, ws_max_size=settings.max_body_bytes) as url:
        yield url


@asynccontextmanager
async def serve_asgi(app: ASGIApp, **uvicorn_options: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port; yield its base URL."""
    options = {"log_config": None, "access_log": False, "lifespan": "on", **uvicorn_options}
    server = _InLoopServer(uvicorn.Config(app, **options))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture(scope="session")
async def base_url(runtime: Runtime) -> AsyncIterator[str]:
    async with serve(runtime) as url:
        yield url


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        yield GraphQLClient(http)


@pytest.fixture
def command_log() -> CommandLog:
    return COMMAND_LOG


@pytest.fixture
def outbox(runtime: Runtime) -> MemoryMailer:
    mailer = runtime.services.postman.mailer
    assert isinstance(mailer, MemoryMailer)
    return mailer


@pytest.fixture(autouse=True)
async def clean_state(runtime: Runtime) -> AsyncIterator[None]:
    """Every test starts with empty collections (indexes kept) and an empty outbox."""
    for model in ALL_DOCUMENTS:
        await _emptied(model)
    mailer = runtime.services.postman.mailer
    if isinstance(mailer, MemoryMailer):
        mailer.outbox.clear()
    yield
    await runtime.services.postman.drain()


async def _emptied(model: type[Document]) -> None:
    """Delete every document of `model`, again if the connection dropped: the test
    database now and then closes a pooled connection under load, and AutoReconnect is
    PyMongo's word for "this one failed, the next may not" (deleting all is idempotent)."""
    for attempt in range(3):
        try:
            await model.get_pymongo_collection().delete_many({})
            return
        except AutoReconnect:
            if attempt == 2:
                raise
