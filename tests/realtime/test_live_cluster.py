"""Live chat between two `gigql serve` processes on a three-node Redis Cluster, through
the node carrying the conversation being killed and started again mid-stream.

Each test runs a cluster of its own (it kills a node), so they need the `redis-server`
and `redis-cli` binaries rather than a Redis somewhere.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.crc import key_slot

from documents.settings import Settings
from realtime.topics import conversation_topic
from server.embedded import free_port
from tests.realtime.test_cluster_broker import shard_subscribers
from tests.realtime.test_live_redis import WAIT, promptly, received
from tests.support.chat import MESSAGE_ADDED, sent, task_chat
from tests.support.gigql_process import (
    assert_one_line_error,
    gigql_env,
    graphql,
    run_gigql,
    sharing_the_test_database,
)
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import object_id
from tests.support.redis_cluster import ClusterNode, own_cluster
from tests.support.ws_client import ws


async def subscribed_on_shard(node: ClusterNode, topic: str, instances: int) -> None:
    """Wait until the node owning `topic` has as many sharded subscribers of it."""
    async with asyncio.timeout(WAIT):
        while await shard_subscribers(node, topic) < instances:
            await asyncio.sleep(0.02)


async def test_a_cluster_node_restarting_mid_conversation_loses_no_message_and_repeats_none(
    tmp_path: Path, settings: Settings, client: GraphQLClient
) -> None:
    chat = await task_chat(client)
    ann, tom, conversation = chat.poster, chat.tasker, chat.conversation_id
    since = {"c": conversation}
    topic = conversation_topic(object_id(conversation))
    with own_cluster(tmp_path / "cluster") as cluster:
        owner = cluster.node_owning(key_slot(topic.encode()))
        async with (
            sharing_the_test_database(tmp_path / "a", settings, REDIS_URL=cluster.url) as a,
            sharing_the_test_database(tmp_path / "b", settings, REDIS_URL=cluster.url) as b,
            graphql(b) as on_b,
            ws(a.base_url) as ann_on_a,
        ):
            await ann_on_a.init(ann.access)
            await ann_on_a.subscribe("chat", MESSAGE_ADDED, since)
            await subscribed_on_shard(owner, topic, 1)
            messages = [await sent(on_b, tom, conversation, "before")]
            assert (await received(ann_on_a, {"chat": 1}))["chat"] == messages
            last_seen = messages[-1]["seq"]

            await asyncio.to_thread(owner.kill)
            for who, text in ((tom, "during 1"), (ann, "during 2"), (tom, "during 3")):
                messages.append(await promptly(sent(on_b, who, conversation, text)))
            assert await ann_on_a.silent(0.3)

            await asyncio.to_thread(owner.start)  # the same port and slots, nobody subscribed
            await asyncio.to_thread(cluster.wait_until_ok)
            # A subscribes again on the node by itself, and Ann's subscription re-reads what
            # the node never carried; Tom, connecting to B, resumes by `after`.
            async with ws(b.base_url) as tom_on_b:
                await tom_on_b.init(tom.access)
                await tom_on_b.subscribe("chat", MESSAGE_ADDED, {**since, "after": last_seen})
                for socket in (ann_on_a, tom_on_b):
                    assert (await received(socket, {"chat": 3}))["chat"] == messages[1:]
                await subscribed_on_shard(owner, topic, 2)
                messages.append(await sent(on_b, tom, conversation, "after"))
                for socket in (ann_on_a, tom_on_b):
                    assert (await received(socket, {"chat": 1}))["chat"] == messages[-1:]
                    assert await socket.silent()
            assert (await on_b.http.get(f"{a.base_url}/readyz")).status_code == 200
    assert [(m["seq"], m["text"]) for m in messages] == [
        (1, "before"),
        (2, "during 1"),
        (3, "during 2"),
        (4, "during 3"),
        (5, "after"),
    ]


async def test_a_cluster_url_naming_no_node_is_one_clear_error(tmp_path: Path) -> None:
    env = gigql_env(tmp_path / "data", REDIS_URL="redis+cluster://")
    result = await asyncio.to_thread(
        run_gigql, "serve", "--port", str(free_port()), env=env, cwd=tmp_path
    )
    assert_one_line_error(result, "REDIS_URL: redis+cluster:// needs at least one host:port")
