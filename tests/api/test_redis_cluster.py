"""Every Redis user of ours on a Redis Cluster (`redis+cluster://` in REDIS_URL): the
rate limits' shared counters, the shared persisted queries, and the readiness probe.
The broker's own tests are in tests/realtime/test_cluster_broker.py."""

from __future__ import annotations

import dataclasses

import httpx
import redis.asyncio as redis

from realtime.cluster import ClusterBroker
from server.runtime import Runtime, create_broker, make_services
from tests.api.edge.test_persisted_queries import NOT_FOUND_BODY, hashed
from tests.api.test_rate_limits import TYPENAME, an_address, assert_rate_limited, coming_from
from tests.conftest import serve
from tests.support.redis_cluster import OwnCluster


async def keys_on_each_node(cluster: OwnCluster, pattern: str) -> list[list[bytes]]:
    found = []
    for node in cluster.nodes:
        client = redis.Redis(port=node.port)
        try:
            found.append([key async for key in client.scan_iter(pattern)])
        finally:
            await client.aclose()
    return found


async def test_instances_share_rate_limits_through_a_cluster(
    runtime: Runtime, redis_cluster: OwnCluster
) -> None:
    address = an_address()
    headers = coming_from(address)
    url = redis_cluster.url
    async with (
        serve(runtime, redis_url=url, rate_limit_ip_requests=3) as a,
        serve(runtime, redis_url=url, rate_limit_ip_requests=3) as b,
        httpx.AsyncClient() as http,
    ):
        for instance in (a, b, a):
            response = await http.post(f"{instance}/graphql", json=TYPENAME, headers=headers)
            assert response.status_code == 200
        assert_rate_limited(await http.post(f"{b}/graphql", json=TYPENAME, headers=headers))
    # Counted in the cluster, not in each instance's memory: the address's counter keys
    # (this window's and the last one's share a hash tag) are all on one node.
    counters = await keys_on_each_node(redis_cluster, f"gigql:rate:*{address}*")
    assert sorted(len(keys) for keys in counters)[:-1] == [0, 0] and any(counters)


async def test_instances_share_persisted_queries_through_a_cluster(
    runtime: Runtime, redis_cluster: OwnCluster
) -> None:
    text = "query Settings { marketplaceSettings { categories } } # on a cluster"
    url = redis_cluster.url
    async with (
        serve(runtime, redis_url=url) as first,
        serve(runtime, redis_url=url) as second,
        httpx.AsyncClient() as http,
    ):
        assert (await http.post(f"{second}/graphql", json=hashed(text))).json() == NOT_FOUND_BODY
        registered = await http.post(f"{first}/graphql", json=hashed(text, query=text))
        assert "data" in registered.json(), registered.text
        found = await http.post(f"{second}/graphql", json=hashed(text))
        assert "marketplaceSettings" in found.json()["data"], found.text
    # One graph's bookkeeping is one hash tag, so its script's keys share a slot and node.
    kept = await keys_on_each_node(redis_cluster, "gigql:apq:{main}:*")
    assert sorted(len(keys) for keys in kept) == [0, 0, 4], kept


async def test_an_instance_on_a_cluster_is_ready(
    runtime: Runtime, redis_cluster: OwnCluster
) -> None:
    """Its broker is the cluster's, and answers the readiness probe's ping."""
    services = runtime.services
    settings = services.settings.model_copy(update={"redis_url": redis_cluster.url})
    broker = create_broker(settings)
    assert isinstance(broker, ClusterBroker)
    on_cluster = dataclasses.replace(
        runtime, services=make_services(settings, services.postman, broker, services.payments)
    )
    try:
        async with serve(on_cluster) as url, httpx.AsyncClient() as http:
            response = await http.get(f"{url}/readyz")
            assert response.status_code == 200, response.text
            assert response.json()["checks"]["broker"] == "ok", response.text
    finally:
        await broker.close()
