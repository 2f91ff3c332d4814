"""Every metric family gigql counts into, in one place, for `/metrics` (Prometheus).

Defined in the lowest layer so that each layer counts where the thing happens: the
broker in realtime/, the rate limits and operations in schema/, HTTP and the database in
server/. The families are `prometheus_client`'s; with several workers (`gigql serve
--workers N`) each process writes its values to files in `PROMETHEUS_MULTIPROC_DIR` and
the worker that answers a scrape adds them up (server/observability/exposition.py), which
is why the gauges name a multiprocess mode. What is counted in the database (inboxes,
outboxes, the escrow sweep) is read at scrape time instead (server/observability/
database.py).

Labels are few and bounded: operation names are the prepared documents' own, at most
`schema/common/operation_metrics.py` `MOST_OPERATION_NAMES` per graph; commands are from
fixed lists; never a raw request value.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds: from a cached `{ __typename }` (well under a millisecond) to a slow report."""
COMMAND_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
"""Seconds of one database or Redis round trip."""

HTTP_REQUESTS = Counter(
    "gigql_http_requests",
    "HTTP requests answered, by route and status code.",
    ["route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "gigql_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by route.",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
GRAPHQL_OPERATIONS = Counter(
    "gigql_graphql_operations",
    "GraphQL operations by graph, transport, operation name and type, and outcome: ok, "
    "errors (ran, with errors), invalid (did not parse or validate, or asked for what the "
    "transport does not run), refused (by a limit on documents), rate_limited.",
    ["graph", "transport", "operation", "type", "outcome"],
)
GRAPHQL_OPERATION_DURATION = Histogram(
    "gigql_graphql_operation_duration_seconds",
    "Time to answer one GraphQL operation over HTTP, from preparing its document to its "
    "result, by graph, operation name and type, and outcome.",
    ["graph", "operation", "type", "outcome"],
    buckets=LATENCY_BUCKETS,
)
LIMIT_REFUSALS = Counter(
    "gigql_limit_refusals",
    "Operations refused by a limit on documents (depth, cost, aliases, tokens, length, "
    "field comparisons), by its error code, and request bodies refused for their size.",
    ["limit"],
)
RATE_LIMITED = Counter(
    "gigql_rate_limited",
    "Requests and websocket operations refused by a rate limit, by budget.",
    ["budget"],
)
WEBSOCKETS_OPEN = Gauge(
    "gigql_websockets_open",
    "Websockets accepted and not yet closed.",
    multiprocess_mode="livesum",
)
SUBSCRIPTIONS_LIVE = Gauge(
    "gigql_subscriptions_live",
    "GraphQL subscriptions running over websockets.",
    multiprocess_mode="livesum",
)
BROKER_MESSAGES_DELIVERED = Counter(
    "gigql_broker_messages_delivered",
    "Broker messages queued for a local subscriber (one per subscriber).",
)
BROKER_MESSAGES_DROPPED = Counter(
    "gigql_broker_messages_dropped",
    "Broker messages not queued for a subscriber whose queue was full.",
)
SLOW_SUBSCRIBERS_CLOSED = Counter(
    "gigql_slow_subscribers_closed",
    "Websockets closed with 1013 because a subscription fell too far behind.",
)
BROKER_RECONNECTS = Counter(
    "gigql_broker_reconnects",
    "Times the Redis subscriber connection came back after it was lost.",
)
MONGODB_COMMAND_DURATION = Histogram(
    "gigql_mongodb_command_duration_seconds",
    "MongoDB command round trips, by command and outcome (ok, failed).",
    ["command", "outcome"],
    buckets=COMMAND_BUCKETS,
)
REDIS_COMMAND_DURATION = Histogram(
    "gigql_redis_command_duration_seconds",
    "Redis round trips, by what they do (publish, subscribe, ping, rate_limit) and "
    "outcome (ok, failed).",
    ["command", "outcome"],
    buckets=COMMAND_BUCKETS,
)

_REDIS_OK = {
    command: REDIS_COMMAND_DURATION.labels(command, "ok")
    for command in ("publish", "subscribe", "ping", "rate_limit")
}


@contextmanager
def redis_round_trip(command: str) -> Iterator[None]:
    """Time one Redis round trip of ours. Timed where we make them (the broker, the rate
    limits): redis-py's only command hook feeds OpenTelemetry's metrics pipeline, not
    Prometheus."""
    started = time.perf_counter()
    try:
        yield
    except BaseException:
        REDIS_COMMAND_DURATION.labels(command, "failed").observe(time.perf_counter() - started)
        raise
    _REDIS_OK[command].observe(time.perf_counter() - started)
