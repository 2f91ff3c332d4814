"""Rate limits per client: requests and query cost a window, per IP and per account.

Every GraphQL operation, over HTTP (each one of a batch) or websocket (queries,
mutations and subscription starts), counts one request and its cost, as the limits
measure it (schema/common/limits.py), against the budgets of the client's IP address and, with
a valid access token, of its account. The address is the one uvicorn took from a trusted
proxy's `X-Forwarded-For` (`GIGQL_TRUSTED_PROXIES`), as for every other per-IP rule; IPv6
addresses count per /64, the block one subscriber gets. The account is read from the
token's verified claims, without a database round trip. A request over a budget is
refused whole: HTTP 429 with `Retry-After`, or an `error` message for the operation's id
over websocket, with `extensions.code` `RATE_LIMITED`. The health probes and the gateway's
webhooks are other routes and never counted.

The windows slide (`limits`' sliding window counter). With `REDIS_URL` the counters are
shared by every instance (through one Redis or a Redis Cluster); when Redis does not
answer, each instance counts on its own in memory for `SHARED_RETRY_SECONDS`, then tries
Redis again: an outage loosens the limits to per instance rather than lifting them, and
never fails a request.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from graphql import GraphQLError
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import RedisClusterStorage, RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from starlette.responses import JSONResponse

from documents.errors import DomainError
from documents.metrics import RATE_LIMITED as RATE_LIMITED_COUNT
from documents.metrics import redis_round_trip
from documents.settings import Settings
from realtime.redis_urls import cluster_address, quick_retry
from resolvers.common.client_addresses import address_key

if TYPE_CHECKING:
    from strawberry.http import GraphQLRequestData

    from resolvers.accounts.auth.tokens import AccessTokens
    from schema.common.context import Context
    from schema.common.prepared import Prepared
    from schema.schema import GigqlSchema

log = logging.getLogger(__name__)

RATE_LIMITED = "RATE_LIMITED"
SHARED_RETRY_SECONDS = 5.0
"""How long an instance counts in memory after Redis failed to answer."""
REDIS_TIMEOUT_SECONDS = 0.5
"""How long a request may wait for Redis before it is counted in memory instead."""
KEY_PREFIX = "gigql:rate"
KNOWN_TOKENS = 10_000
"""Access tokens whose verified account is remembered, so that each is verified once."""


@dataclass(frozen=True, slots=True)
class Client:
    ip: str
    account: str | None


@dataclass(frozen=True, slots=True)
class _Budget:
    item: RateLimitItem
    per_account: bool
    of_cost: bool
    """Of query cost, else of requests."""
    holder: str | None = None
    """How a refusal names whose budget it is, if not "this account" or "your address"."""

    def key(self, client: Client) -> str | None:
        return client.account if self.per_account else client.ip

    def refusal(self, window: str, retry_after: int) -> RateLimited:
        holder = self.holder or ("this account" if self.per_account else "your address")
        spent = (
            f"Queries from {holder} cost too much: at most {self.item.amount} cost units"
            if self.of_cost
            else f"Too many requests from {holder}: at most {self.item.amount}"
        )
        return RateLimited(f"{spent} {window}. Retry in {retry_after} seconds.", retry_after)


class RateLimited(Exception):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after

    def error(self) -> GraphQLError:
        return GraphQLError(
            self.message, extensions={"code": RATE_LIMITED, "retryAfter": self.retry_after}
        )

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"errors": [self.error().formatted]},
            status_code=429,
            headers={"Retry-After": str(self.retry_after)},
        )


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        window = max(int(settings.rate_limit_window.total_seconds()), 1)
        self._window = _describe(window)
        self._request_budgets = _budgets(
            window,
            of_cost=False,
            ip=settings.rate_limit_ip_requests,
            account=settings.rate_limit_account_requests,
        )
        self._cost_budgets = _budgets(
            window,
            of_cost=True,
            ip=settings.rate_limit_ip_cost,
            account=settings.rate_limit_account_cost,
        )
        self._partner_key_budget = (
            _Budget(
                RateLimitItemPerSecond(
                    settings.rate_limit_partner_key_requests, window, namespace="key-requests"
                ),
                per_account=True,
                of_cost=False,
                holder="this API key",
            )
            if settings.rate_limit_partner_key_requests > 0
            else None
        )
        budgets = self._request_budgets + self._cost_budgets
        self._per_account = any(budget.per_account for budget in budgets)
        self._local = InProcessWindows()
        self._redis: Redis | RedisCluster | None = None
        self._shared: SlidingWindowCounterRateLimiter | None = None
        if settings.redis_url and budgets:
            storage, self._redis = _shared_storage(settings.redis_url)
            self._shared = SlidingWindowCounterRateLimiter(storage)
        self._shared_down_until = 0.0
        self._accounts: OrderedDict[str, tuple[str, float]] = OrderedDict()

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    def client(self, context: Context) -> Client:
        return self.client_of(context.meta.ip, context.access_token, context.services.tokens)

    def client_of(self, ip: str | None, access_token: str | None, tokens: AccessTokens) -> Client:
        return Client(address_key(ip), self._account(access_token, tokens))

    async def admit(self, client: Client, operations: int) -> None:
        """Count `operations` requests; raises RateLimited when a budget has not room."""
        for budget in self._request_budgets:
            await self._spend(budget, client, operations)

    async def admit_partner_key(self, key_id: str, operations: int) -> None:
        """Count `operations` requests against a partner API key's own budget, shared by
        every instance like the others; raises RateLimited."""
        if self._partner_key_budget is not None:
            client = Client(ip="", account=f"partner-key:{key_id}")
            await self._spend(self._partner_key_budget, client, operations)

    async def charge_partner_key(self, key_id: str, cost: int) -> None:
        """Count the cost of a partner key's admitted operations against the per-account
        cost budget, kept for the key; raises RateLimited."""
        client = Client(ip="", account=f"partner-key:{key_id}")
        for budget in self._cost_budgets:
            if budget.per_account and cost > 0:
                await self._spend(budget, client, cost)

    async def charge(self, client: Client, cost: int) -> None:
        """Count the cost of admitted operations; raises RateLimited when a budget has
        not room, and the operations are not run."""
        if cost <= 0:
            return
        for budget in self._cost_budgets:
            await self._spend(budget, client, cost)

    async def _spend(self, budget: _Budget, client: Client, amount: int) -> None:
        key = budget.key(client)
        if key is None:
            return  # an anonymous client has no account budget
        # No request costs more than a whole budget (documents/settings.py sees to it): each
        # is charged what it costs, and refused whole when that does not fit.
        shared = self._shared_limiter()
        if shared is None:
            if self._local.hit(budget.item, key, amount):
                return
            reset_time = self._local.reset_time(budget.item, key)
        else:
            try:
                with redis_round_trip("rate_limit"):
                    if await shared.hit(budget.item, key, cost=amount):
                        return
                    reset_time = (await shared.get_window_stats(budget.item, key)).reset_time
            except StorageError as error:
                self._redis_failed(error)
                await self._spend(budget, client, amount)
                return
        retry_after = max(math.ceil(reset_time - time.time()), 1)
        # The budget's namespace (ip-requests, account-cost, key-requests, ...) names it.
        RATE_LIMITED_COUNT.labels(budget.item.namespace).inc()
        raise budget.refusal(self._window, retry_after)

    def _shared_limiter(self) -> SlidingWindowCounterRateLimiter | None:
        """Redis's counters, unless there is no Redis or it failed a moment ago."""
        if self._shared is not None and time.monotonic() >= self._shared_down_until:
            return self._shared
        return None

    def _redis_failed(self, error: StorageError) -> None:
        if self._shared_down_until == 0.0 or time.monotonic() >= self._shared_down_until:
            log.warning(
                "rate limits counted in this instance's memory for %.0f s: Redis failed (%s)",
                SHARED_RETRY_SECONDS,
                error.storage_error,
            )
        self._shared_down_until = time.monotonic() + SHARED_RETRY_SECONDS

    def _account(self, token: str | None, tokens: AccessTokens) -> str | None:
        if not token or not self._per_account:
            return None
        known = self._accounts.get(token)
        if known is not None:
            account, expires_at = known
            if expires_at > time.time():
                return account
        account_and_expiry = _verified_account(tokens, token)
        if account_and_expiry is None:
            return None  # an invalid token is refused on its own; count the address only
        self._accounts[token] = account_and_expiry
        if len(self._accounts) > KNOWN_TOKENS:
            self._accounts.popitem(last=False)
        return account_and_expiry[0]


async def count_http_operations(
    schema: GigqlSchema, context: Context, operations: list[GraphQLRequestData]
) -> None:
    """Count the operations of an HTTP request (each one of a batch): as requests before
    any work is done on them, then, prepared, their cost. Raises RateLimited."""
    limits = schema.rate_limits
    if limits is None:
        return
    client = limits.client(context)
    await limits.admit(client, len(operations))
    await limits.charge(client, await _cost(schema, operations))


async def count_partner_operations(
    schema: GigqlSchema, key_id: str, operations: list[GraphQLRequestData]
) -> None:
    """Count a partner key's operations, as requests then, prepared, their cost, against
    the key's own budgets (GIGQL_RATE_LIMIT_PARTNER_KEY_REQUESTS and the per-account cost
    budget). Raises RateLimited."""
    limits = schema.rate_limits
    if limits is None:
        return
    await limits.admit_partner_key(key_id, len(operations))
    await limits.charge_partner_key(key_id, await _cost(schema, operations))


async def _cost(schema: GigqlSchema, operations: list[GraphQLRequestData]) -> int:
    cost = 0
    for operation in operations:
        prepared = await schema.prepared(operation.query)
        if prepared is not None:
            cost += prepared.cost(operation.operation_name)
    return cost


async def count_socket_connection(
    schema: GigqlSchema, context: Context, access_token: str | None
) -> None:
    """Count a websocket's `connection_init` as a request, before its session is looked
    up: opening sockets costs work too. Raises RateLimited."""
    limits = schema.rate_limits
    if limits is not None:
        tokens = context.services.tokens
        await limits.admit(limits.client_of(context.meta.ip, access_token, tokens), 1)


async def count_socket_operation(
    schema: GigqlSchema, context: Context, query: str | None, operation_name: str | None
) -> Prepared | None:
    """Count an operation over websocket: as a request before any work is done on it,
    then, prepared, its cost. Raises RateLimited."""
    limits = schema.rate_limits
    if limits is None:
        return await schema.prepared(query)
    client = limits.client(context)
    await limits.admit(client, 1)
    prepared = await schema.prepared(query)
    if prepared is not None:
        await limits.charge(client, prepared.cost(operation_name))
    return prepared


class InProcessWindows:
    """Sliding window counters in this process's memory, counted as `limits`' sliding
    window counter counts them (`MemoryStorage.acquire_sliding_window_entry` and
    `SlidingWindowCounterRateLimiter.get_window_stats`: the same windows, weights,
    refusals and reset times), without its storage interface.

    Every request counts here when there is no Redis, twice at least (its request, then
    its cost); through `limits`' asynchronous storage, with its error wrappers, locks and
    string keys, that was about a tenth of a `{ __typename }` request's CPU
    (bench/README.md, "Issue 16: per-request cost"). Here a hit is a few dict operations.

    Every counter lives as long (twice its window, from its first hit) and all budgets
    share one window length, so counters expire in the order they were made: each hit
    drops the expired ones at the front of that order, in constant time per hit, as no
    sweep of every counter does (1.9 ms a hit with 10,000 clients in the window).
    """

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, int], int] = {}
        self._expirations: OrderedDict[tuple[str, str, int], float] = OrderedDict()

    def hit(self, item: RateLimitItem, key: str, cost: int) -> bool:
        """Count `cost` against `key`'s budget `item`, or False (counting nothing) when
        the budget has not room for it."""
        limit, expiry = item.amount, item.get_expiry()
        if cost > limit:
            return False
        now = time.time()
        self._drop_expired(now)
        previous, current = self._windows(item, key, expiry, now)
        previous_count, current_count = self._count(previous, now), self._count(current, now)
        weighted = previous_count * _previous_ttl(previous_count, expiry, now) / expiry
        if math.floor(weighted + current_count) + cost > limit:
            return False
        if current_count == 0:
            self._expirations[current] = now + 2 * expiry
        self._counts[current] = current_count + cost
        return True

    def reset_time(self, item: RateLimitItem, key: str) -> float:
        """When `key`'s budget `item` next has room for one more, as a timestamp."""
        expiry, now = item.get_expiry(), time.time()
        previous, current = self._windows(item, key, expiry, now)
        previous_count, current_count = self._count(previous, now), self._count(current, now)
        previous_reset_in = current_reset_in = math.inf
        if previous_count:
            previous_reset_in = _previous_ttl(previous_count, expiry, now) % (
                expiry / previous_count
            )
        if current_count:
            current_reset_in = ((1 - ((now / expiry) % 1)) * expiry + expiry) % expiry
        if not (previous_count or current_count):
            return now
        return now + min(previous_reset_in, current_reset_in)

    @staticmethod
    def _windows(
        item: RateLimitItem, key: str, expiry: int, now: float
    ) -> tuple[tuple[str, str, int], tuple[str, str, int]]:
        """The counters of the previous and the current window (numbered as `limits`
        numbers them)."""
        namespace = item.namespace
        return (namespace, key, int((now - expiry) / expiry)), (namespace, key, int(now / expiry))

    def _count(self, counter: tuple[str, str, int], now: float) -> int:
        if self._expirations.get(counter, 0.0) <= now:
            return 0
        return self._counts.get(counter, 0)

    def _drop_expired(self, now: float) -> None:
        expirations = self._expirations
        while expirations:
            counter, expires_at = next(iter(expirations.items()))
            if expires_at > now:
                return
            del expirations[counter]
            self._counts.pop(counter, None)


def _previous_ttl(previous_count: int, expiry: int, now: float) -> float:
    """How much of the previous window still weighs on the current one, in seconds."""
    if previous_count == 0:
        return 0.0
    return (1 - (((now - expiry) / expiry) % 1)) * expiry


def _shared_storage(redis_url: str) -> tuple[RedisStorage, Redis | RedisCluster]:
    """`limits`' storage on the Redis `redis_url` names, and the client it uses (which
    `close` closes). On a cluster, `limits` makes its own client and puts each counter's
    keys (this window's and the last one's) under one hash tag, in one slot, as its
    sliding-window script needs."""
    timeouts: dict[str, Any] = {
        "socket_timeout": REDIS_TIMEOUT_SECONDS,
        "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
    }
    cluster = cluster_address(redis_url)
    if cluster is not None:
        storage: RedisStorage = RedisClusterStorage(
            cluster.limits_uri(),
            implementation="redispy",
            wrap_exceptions=True,
            key_prefix=KEY_PREFIX,
            # limits' options are typed as scalars; redis-py's client takes a Retry too.
            **{**timeouts, "retry": quick_retry()},
            **cluster.options(),
        )
        # The bridge's client is not in its declared type (each implementation has its own).
        return storage, cast("RedisCluster", cast("Any", storage.bridge).get_connection())
    redis = Redis.from_url(redis_url, **timeouts)
    storage = RedisStorage(
        "async+" + redis_url,
        implementation="redispy",
        wrap_exceptions=True,
        key_prefix=KEY_PREFIX,
        # Our pool, which `close` closes (typed narrower than the options it takes).
        connection_pool=cast("Any", redis.connection_pool),
    )
    return storage, redis


def _budgets(window: int, *, of_cost: bool, ip: int, account: int) -> tuple[_Budget, ...]:
    """The budgets of one kind in force (a limit of 0 is off), the address's first."""
    kind = "cost" if of_cost else "requests"
    return tuple(
        _Budget(
            RateLimitItemPerSecond(amount, window, namespace=f"{holder}-{kind}"),
            per_account,
            of_cost,
        )
        for amount, per_account, holder in ((ip, False, "ip"), (account, True, "account"))
        if amount > 0
    )


def _verified_account(tokens: AccessTokens, token: str) -> tuple[str, float] | None:
    try:
        claims = tokens.verify(token)
    except DomainError:
        return None
    return str(claims.user_id), claims.expires_at.timestamp()


def _describe(seconds: int) -> str:
    return {60: "a minute", 3600: "an hour"}.get(seconds, f"every {seconds} seconds")
