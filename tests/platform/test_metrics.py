"""`/metrics` over real HTTP: every family, and what requests, refusals, rate limits,
websockets and subscriptions add to them; who may read it in production."""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from bson import ObjectId
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from strawberry.relay import GlobalID

from documents.clock import utcnow
from documents.notifications.push_keys import generate_private_key
from documents.payments.webhooks import WebhookEvent, WebhookStatus
from documents.settings import Settings
from integrations.push import VapidKeys
from realtime.signals import ACCESS_CHANGED
from realtime.topics import user_topic
from server.embedded import free_port
from server.runtime import Runtime
from tests.conftest import serve
from tests.support.gigql_process import children_of, sharing_the_test_database
from tests.support.graphql_client import GraphQLClient
from tests.support.ws_client import ws

FAMILIES = {
    "gigql_http_requests",
    "gigql_http_request_duration_seconds",
    "gigql_graphql_operations",
    "gigql_graphql_operation_duration_seconds",
    "gigql_limit_refusals",
    "gigql_rate_limited",
    "gigql_websockets_open",
    "gigql_subscriptions_live",
    "gigql_broker_messages_delivered",
    "gigql_broker_messages_dropped",
    "gigql_slow_subscribers_closed",
    "gigql_broker_reconnects",
    "gigql_mongodb_command_duration_seconds",
    "gigql_redis_command_duration_seconds",
    "gigql_webhook_inbox_events",
    "gigql_webhook_inbox_oldest_age_seconds",
    "gigql_escrows_due_for_release",
    "gigql_escrow_release_lag_seconds",
    "gigql_notification_outbox_deliveries",
    "gigql_partner_webhook_outbox_deliveries",
}
LIVE = "subscription { myEvents { id kind } }"


def parsed(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(http: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parsed(response.text)


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def operation(name: str, outcome: str, kind: str = "query", **more: str) -> dict[str, str]:
    labels = {"graph": "main", "transport": "http", "operation": name, "type": kind}
    return labels | {"outcome": outcome} | more


def an_address() -> str:
    return str(ipaddress.IPv4Address("198.18.0.0") + secrets.randbelow(2**17))


async def test_metrics_expose_every_family_and_the_database_backlogs(runtime: Runtime) -> None:
    await WebhookEvent(
        event_id="evt_metrics",
        type="payment_intent.succeeded",
        created=utcnow(),
        payload="{}",
        status=WebhookStatus.FAILED,
        received_at=utcnow() - timedelta(minutes=5),
    ).insert()
    async with serve(runtime) as url, httpx.AsyncClient(base_url=url) as http:
        response = await http.get("/metrics")
        assert response.status_code == 200
        names = {family.name for family in text_string_to_metric_families(response.text)}
        assert names >= FAMILIES, FAMILIES - names
        samples = parsed(response.text)
    assert value(samples, "gigql_webhook_inbox_events", status="failed") == 1
    assert value(samples, "gigql_webhook_inbox_events", status="received") == 0
    assert value(samples, "gigql_webhook_inbox_oldest_age_seconds", status="failed") >= 299
    assert value(samples, "gigql_escrow_release_lag_seconds") == 0
    assert (
        value(samples, "gigql_mongodb_command_duration_seconds_count", command="find", outcome="ok")
        > 0
    )


async def test_a_request_is_counted_under_its_operation_name(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        before = await scrape(http)
        response = await http.post("/graphql", json={"query": "query Probe { __typename }"})
        assert response.status_code == 200
        await http.post("/graphql", json={"query": "{ nope }"})
        after = await scrape(http)
    ok = operation("Probe", "ok")
    assert value(after, "gigql_graphql_operations_total", **ok) == (
        value(before, "gigql_graphql_operations_total", **ok) + 1
    )
    timed = {k: v for k, v in ok.items() if k != "transport"}
    assert value(after, "gigql_graphql_operation_duration_seconds_count", **timed) == (
        value(before, "gigql_graphql_operation_duration_seconds_count", **timed) + 1
    )
    # A document that does not validate has no name of its own: the client's text is no label.
    invalid = operation("(invalid)", "invalid", kind="(none)")
    assert value(after, "gigql_graphql_operations_total", **invalid) == (
        value(before, "gigql_graphql_operations_total", **invalid) + 1
    )
    route = {"route": "/graphql", "status": "200"}
    assert value(after, "gigql_http_requests_total", **route) >= (
        value(before, "gigql_http_requests_total", **route) + 2
    )


async def test_requests_that_do_not_run_are_invalid_whatever_their_media_type(
    base_url: str,
) -> None:
    """The GraphQL-over-HTTP statuses (400 without `data`, 405 with Allow) and the counts
    agree: nothing ran, so each is `invalid`, under its name when the document has one."""
    answer_new = {"accept": "application/graphql-response+json"}
    async with httpx.AsyncClient(base_url=base_url) as http:
        before = await scrape(http)
        unknown = await http.post(
            "/graphql",
            json={"query": "query Known { __typename }", "operationName": "Unknown"},
            headers=answer_new,
        )
        assert unknown.status_code == 400 and "data" not in unknown.json()
        uncoerced = await http.post(
            "/graphql",
            json={
                "query": "query Typed($b: Boolean!) { __typename @include(if: $b) }",
                "variables": {"b": "x"},
            },
            headers=answer_new,
        )
        assert uncoerced.status_code == 400 and "data" not in uncoerced.json()
        by_get = await http.get(
            "/graphql", params={"query": "mutation ByGet { __typename }"}, headers=answer_new
        )
        assert by_get.status_code == 405 and by_get.headers["allow"] == "POST"
        after = await scrape(http)

    def added(labels: dict[str, str]) -> float:
        total = "gigql_graphql_operations_total"
        return value(after, total, **labels) - value(before, total, **labels)

    assert added(operation("(invalid)", "invalid", kind="(none)")) == 1
    assert added(operation("Typed", "invalid")) == 1
    assert added(operation("ByGet", "invalid", kind="mutation")) == 1
    assert added(operation("Known", "ok")) == 0


async def test_a_refused_and_a_rate_limited_request_are_counted(runtime: Runtime) -> None:
    async with (
        serve(runtime, max_aliases=1, rate_limit_ip_requests=1) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        before = await scrape(http)
        address = {"X-Forwarded-For": an_address()}
        aliased = {"query": "query Aliased { a: __typename b: __typename }"}
        refused = await http.post("/graphql", json=aliased, headers=address)
        assert refused.json()["errors"][0]["extensions"]["code"] == "TOO_MANY_ALIASES"
        again = await http.post("/graphql", json=aliased, headers=address)
        assert again.status_code == 429
        after = await scrape(http)
    invalid = operation("(invalid)", "refused", kind="(none)")
    assert value(after, "gigql_graphql_operations_total", **invalid) == (
        value(before, "gigql_graphql_operations_total", **invalid) + 1
    )
    assert value(after, "gigql_limit_refusals_total", limit="aliases") == (
        value(before, "gigql_limit_refusals_total", limit="aliases") + 1
    )
    assert value(after, "gigql_rate_limited_total", budget="ip-requests") == (
        value(before, "gigql_rate_limited_total", budget="ip-requests") + 1
    )
    limited = operation("(invalid)", "rate_limited", kind="(none)")
    assert value(after, "gigql_graphql_operations_total", **limited) == (
        value(before, "gigql_graphql_operations_total", **limited) + 1
    )


async def test_websockets_and_subscriptions_count_while_open(
    runtime: Runtime, base_url: str, client: GraphQLClient
) -> None:
    ann = await client.member("metrics-ws@example.com")
    async with httpx.AsyncClient(base_url=base_url) as http:
        before = await scrape(http)
        async with ws(base_url) as socket:
            assert (await socket.init(ann.access))["type"] == "connection_ack"
            await socket.subscribe("live", LIVE)
            during = await _eventually(
                http,
                lambda s: (
                    value(s, "gigql_subscriptions_live") > value(before, "gigql_subscriptions_live")
                ),
            )
            topic = user_topic(ObjectId(GlobalID.from_id(ann.user_id).node_id))

            async def published_and_delivered(s: dict[Any, float]) -> bool:
                # The gauge counts the subscription as it starts, which may be a moment
                # before the broker listens on its topic; a message published in that
                # moment reaches nobody, so it is published again until one arrives.
                if value(s, "gigql_broker_messages_delivered_total") > value(
                    during, "gigql_broker_messages_delivered_total"
                ):
                    return True
                await runtime.services.broker.publish(topic, ACCESS_CHANGED)
                return False

            delivered = await _eventually_async(http, published_and_delivered)
        assert value(during, "gigql_websockets_open") == value(before, "gigql_websockets_open") + 1
        subscribed = operation("(anonymous)", "ok", kind="subscription", transport="websocket")
        assert value(delivered, "gigql_graphql_operations_total", **subscribed) == (
            value(before, "gigql_graphql_operations_total", **subscribed) + 1
        )
        after = await _eventually(
            http,
            lambda s: (
                value(s, "gigql_websockets_open") == value(before, "gigql_websockets_open")
                and value(s, "gigql_subscriptions_live")
                == value(before, "gigql_subscriptions_live")
            ),
        )
    assert value(after, "gigql_websockets_open") == value(before, "gigql_websockets_open")


async def _eventually_async(
    http: httpx.AsyncClient, condition: Callable[[dict[Any, float]], Awaitable[bool]]
) -> dict[Any, float]:
    """The first scrape that meets `condition`, which may act between scrapes."""
    samples: dict[Any, float] = {}
    for _ in range(200):
        samples = await scrape(http)
        if await condition(samples):
            return samples
        await asyncio.sleep(0.05)
    raise AssertionError("the metrics never met the condition")


async def _eventually(http: httpx.AsyncClient, condition: Any) -> dict[Any, float]:
    """The first scrape that meets `condition` (the server counts as it gets to it)."""
    samples: dict[Any, float] = {}
    for _ in range(200):
        samples = await scrape(http)
        if condition(samples):
            return samples
        await asyncio.sleep(0.05)
    gauges = {key: v for key, v in samples.items() if "open" in key[0] or "live" in key[0]}
    raise AssertionError(f"the metrics never met the condition: {gauges}")


async def test_production_serves_metrics_only_with_the_token(runtime: Runtime) -> None:
    async with (
        serve(runtime, environment="production") as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        assert (await http.get("/metrics")).status_code == 404
    token = secrets.token_urlsafe(24)
    async with (
        serve(runtime, environment="production", metrics_token=SecretStr(token)) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        refused = await http.get("/metrics")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer " + "x" * 32})
        assert wrong.status_code == 401
        served = await http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert served.status_code == 200
        assert "gigql_graphql_operations_total" in served.text
        assert token not in served.text


async def test_metrics_switched_off_are_not_served(runtime: Runtime) -> None:
    async with serve(runtime, metrics=False) as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/metrics")).status_code == 404


# --- `gigql serve` as a real process ------------------------------------------------

SPREAD = "query Spread { __typename }"
SPREAD_OK = operation("Spread", "ok")


async def test_several_workers_add_up_to_one_scrape(
    settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    """`--workers 2`: requests served by either worker are counted in each worker's own
    files, and a scrape, whichever worker answers it, adds them all up."""
    parent = tmp_path / "multiproc"
    parent.mkdir()
    async with sharing_the_test_database(
        tmp_path,
        settings,
        ("--workers", "2"),
        REDIS_URL=redis_url,
        PROMETHEUS_MULTIPROC_DIR=str(parent),
    ) as server:
        (folder,) = parent.iterdir()  # the run's own, made by gigql serve
        sent = 0
        # A connection per request, many at once, so that both workers accept some.
        fresh = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.base_url, limits=fresh) as http:
            # The second worker may still be starting when the first answers /healthz:
            # rounds go on, a moment apart, until both have served some (or 15 s).
            for _ in range(60):
                answers = await asyncio.gather(
                    *(http.post("/graphql", json={"query": SPREAD}) for _ in range(20))
                )
                assert all(answer.status_code == 200 for answer in answers)
                sent += len(answers)
                if len(_per_worker(folder)) == 2:
                    break
                await asyncio.sleep(0.25)
            per_worker = _per_worker(folder)
            total = value(await scrape(http), "gigql_graphql_operations_total", **SPREAD_OK)
        assert len(per_worker) == 2, per_worker
        assert set(per_worker) <= set(children_of(server.pid)), (per_worker, server.pid)
        assert all(count > 0 for count in per_worker.values()), per_worker
        assert sum(per_worker.values()) == total == sent
    # Removed when the run ends, so the next starts from nothing, and nothing else was
    # left in the operator's folder (by the supervising process, say).
    assert list(parent.iterdir()) == []


async def test_one_worker_counts_in_the_operators_multiprocess_folder(
    settings: Settings, tmp_path: Path
) -> None:
    """PROMETHEUS_MULTIPROC_DIR set for one worker: its counts go to the run's folder,
    the one a scrape reads, not beside it."""
    parent = tmp_path / "multiproc"
    parent.mkdir()
    async with (
        sharing_the_test_database(
            tmp_path, settings, PROMETHEUS_MULTIPROC_DIR=str(parent)
        ) as server,
        httpx.AsyncClient(base_url=server.base_url) as http,
    ):
        assert (await http.post("/graphql", json={"query": SPREAD})).status_code == 200
        samples = await scrape(http)
        assert value(samples, "gigql_graphql_operations_total", **SPREAD_OK) == 1
        assert [path.name for path in parent.iterdir()] == [
            path.name for path in parent.glob("gigql-metrics-*")
        ]
    assert list(parent.iterdir()) == []


def _per_worker(folder: Path) -> dict[int, float]:
    """Each worker's own count of `SPREAD`, from its file alone."""
    counts = {}
    for path in folder.glob("counter_*.db"):
        samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
            for sample in family.samples
        }
        count = value(samples, "gigql_graphql_operations_total", **SPREAD_OK)
        if count:
            counts[int(path.stem.removeprefix("counter_"))] = count
    return counts


async def test_production_serves_metrics_on_the_metrics_port_only(
    settings: Settings, tmp_path: Path
) -> None:
    keys = VapidKeys.of(generate_private_key())
    metrics_port = free_port()
    async with sharing_the_test_database(
        tmp_path,
        settings,
        GIGQL_ENVIRONMENT="production",
        GIGQL_ALLOW_SANDBOX_PAYMENTS="true",
        GIGQL_VAPID_PRIVATE_KEY=keys.private_key,
        GIGQL_VAPID_PUBLIC_KEY=keys.public_key,
        GIGQL_VAPID_SUBJECT="mailto:ops@example.com",
        GIGQL_METRICS_PORT=str(metrics_port),
    ) as server:
        lines = server.stderr().splitlines()
        assert f"gigql: metrics at http://127.0.0.1:{metrics_port}/metrics" in lines, lines
        async with httpx.AsyncClient(base_url=server.base_url) as main:
            assert (await main.get("/metrics")).status_code == 404
            served = await main.post("/graphql", json={"query": SPREAD})
            assert served.status_code == 200
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{metrics_port}") as side:
            samples = await scrape(side)
            assert value(samples, "gigql_graphql_operations_total", **SPREAD_OK) == 1
            # The metrics port serves nothing else.
            graphql = await side.post("/graphql", json={"query": SPREAD})
            assert graphql.status_code == 404
            assert (await side.get("/healthz")).status_code == 404
