"""What `REDIS_URL` names: one Redis server, or a Redis Cluster.

- `redis://`, `rediss://` (TLS), `unix://`: one server, in redis-py's own URL format.
- `redis+cluster://[user:password@]host:port[,host:port...]`, `rediss+cluster://` (TLS): a
  Redis Cluster (7 or later), named by one or more of its nodes; the others, and which
  node owns which slot, are asked of them. The scheme is the one the `limits` library
  gives its cluster storage, so the same URL serves every Redis user of ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
"""Cluster URL schemes, and whether each speaks TLS."""
DEFAULT_PORT = 6379


@dataclass(frozen=True, slots=True)
class ClusterAddress:
    """A Redis Cluster as `REDIS_URL` names it: seed nodes and how to log in."""

    seeds: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None
    tls: bool

    def options(self) -> dict[str, Any]:
        """Connection options every node shares (credentials, TLS)."""
        options: dict[str, Any] = {}
        if self.username:
            options["username"] = self.username
        if self.password:
            options["password"] = self.password
        if self.tls:
            options["ssl"] = True
        return options

    def client(self, **options: Any) -> RedisCluster:
        """A cluster client: routes each command to its key's (or channel's) slot owner.

        One retry, soon, after reading the slot map again (enough to follow a slot that
        moved or a replica that took over), rather than redis-py's default three with
        up to 10 s of backoff: each of our uses has something better to do than wait for
        a node that is down (an event stays unpublished and is sent later, a rate limit
        counts in memory, a persisted query is a miss). With the default, a publish to a
        killed node took 3.5 s, and a mutation publishes several."""
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in self.seeds],
            **{"retry": quick_retry(), **options},
            **self.options(),
        )

    def node_client(self, host: str, port: int, **options: Any) -> Redis:
        """A plain client of one node, for what a cluster client does not do (a pub/sub
        connection of our own per node)."""
        return Redis(host=host, port=port, **self.options(), **options)

    def limits_uri(self) -> str:
        """The URI `limits`' cluster storage takes: the nodes alone. The login goes as
        options (`options()`): put back into a URI, a password with `/`, `?` or `#` would
        not parse, and the parse error would print it. TLS goes as an option too (its
        scheme list has no `rediss+cluster`)."""
        nodes = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.seeds)
        return f"async+redis+cluster://{nodes}"


def quick_retry() -> Retry:
    """What a cluster client of ours retries: once, soon (see `ClusterAddress.client`)."""
    return Retry(ExponentialBackoff(cap=0.25, base=0.05), 1)


def cluster_address(url: str) -> ClusterAddress | None:
    """The cluster `url` names, or None when it names one server."""
    scheme, separator, rest = url.partition("://")
    tls = CLUSTER_SCHEMES.get(scheme.lower())
    if not separator or tls is None:
        return None
    # urlsplit cannot take several host:port pairs: split the login off by hand.
    login, _, hosts = rest.rpartition("@")
    if "?" in hosts:
        # Silently dropping `?ssl_cert_reqs=...` and the like would connect otherwise than
        # asked. (No part of the URL goes into the message: it may hold the password.)
        raise ValueError(f"{scheme}:// takes no ?options; TLS is rediss+cluster://")
    hosts = hosts.split("/", 1)[0]
    username, _, password = login.partition(":") if login else ("", "", "")
    seeds = tuple(_host_and_port(part) for part in hosts.split(",") if part.strip())
    if not seeds:
        raise ValueError(f"{scheme}:// needs at least one host:port of the cluster")
    return ClusterAddress(
        seeds=seeds,
        username=unquote(username) or None,
        password=unquote(password) or None,
        tls=tls,
    )


def _host_and_port(part: str) -> tuple[str, int]:
    parsed = urlsplit(f"//{part.strip()}")
    if not parsed.hostname:
        raise ValueError(f"not a host:port of a Redis Cluster node: {part!r}")
    return parsed.hostname, parsed.port or DEFAULT_PORT


def connect(url: str, **options: Any) -> Redis | RedisCluster:
    """A client for whatever `url` names: one server's, or a cluster's."""
    cluster = cluster_address(url)
    if cluster is not None:
        return cluster.client(**options)
    return Redis.from_url(url, **options)
