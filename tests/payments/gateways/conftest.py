"""Fixtures for the payment gateways: localstripe as a process for the session, the
Stripe stub in front of it, and each gateway with the test controls that drive it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from integrations.payments.sandbox import SandboxGateway
from integrations.payments.sandbox_store import COLLECTIONS
from integrations.payments.stripe_gateway import StripeGateway
from server.embedded import free_port
from server.runtime import mongo_client
from tests.payments.gateways.harness import (
    SECRET_KEY,
    WEBHOOK_SECRET,
    Harness,
    SandboxHarness,
    StripeHarness,
)
from tests.payments.gateways.stripe_stub import StripeStub, serve_stub

SANDBOX_DATABASE = "gigql_sandbox_gateway"


@pytest.fixture(autouse=True)
def clean_state() -> None:
    """Nothing of the app's is stored here: no per-test cleanup of its collections."""


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/balance", auth=(SECRET_KEY, ""), timeout=1).is_success
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def localstripe_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A localstripe of our own on a free port, empty (`--from-scratch`)."""
    log_path: Path = tmp_path_factory.mktemp("localstripe") / "localstripe.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "localstripe", "--port", str(port), "--from-scratch"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 20
            while not _answers(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"localstripe did not start; see {log_path}")
                time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(10)


@pytest.fixture(scope="session")
async def stripe_stub(localstripe_url: str) -> AsyncIterator[StripeStub]:
    async with serve_stub(localstripe_url) as stub, httpx.AsyncClient() as http:
        # localstripe signs its webhooks with the secret given here, as Stripe does with
        # an endpoint's signing secret.
        registered = await http.post(
            f"{localstripe_url}/_config/webhooks/gigql",
            data={"url": f"{stub.url}/_webhooks", "secret": WEBHOOK_SECRET},
        )
        registered.raise_for_status()
        yield stub


@pytest.fixture
async def stripe_gateway(stripe_stub: StripeStub) -> AsyncIterator[StripeGateway]:
    # Pages of two make every listing test cross pages.
    gateway = StripeGateway(SECRET_KEY, WEBHOOK_SECRET, api_base=stripe_stub.url, page_size=2)
    yield gateway
    await gateway.aclose()


@pytest.fixture
def deliveries() -> list[tuple[bytes, str]]:
    """The sandbox's webhook bodies and signatures, as the app's handler would get them."""
    return []


@pytest.fixture
async def sandbox_database(mongo_url: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    """A database for the sandbox's state alone, emptied for each test (as the tests
    reuse idempotency keys)."""
    client = mongo_client(mongo_url)
    database = client[SANDBOX_DATABASE]
    for name in COLLECTIONS:
        await database[name].delete_many({})
    yield database
    await client.close()


@pytest.fixture
async def sandbox(
    deliveries: list[tuple[bytes, str]], sandbox_database: AsyncDatabase[dict[str, Any]]
) -> AsyncIterator[SandboxGateway]:
    async def deliver(payload: bytes, signature: str) -> None:
        deliveries.append((payload, signature))

    gateway = SandboxGateway(WEBHOOK_SECRET, deliver, sandbox_database)
    yield gateway
    await gateway.aclose()


@pytest.fixture(params=["stripe", "sandbox"])
def harness(request: pytest.FixtureRequest) -> Harness:
    """Each contract test runs against the Stripe adapter (on localstripe and the stub)
    and against the sandbox."""
    if request.param == "stripe":
        return StripeHarness(
            request.getfixturevalue("stripe_gateway"), request.getfixturevalue("stripe_stub")
        )
    return SandboxHarness(request.getfixturevalue("sandbox"), request.getfixturevalue("deliveries"))
