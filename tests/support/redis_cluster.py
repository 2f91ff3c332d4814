"""A three-node Redis Cluster of our own, started from the `redis-server` binary.

No replicas: each node owns a third of the slots, and a test may stop one and start it
again on the same port (it keeps its `nodes.conf`, so it comes back as the same node
with the same slots, as a restarted machine does).
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

START_TIMEOUT = 20.0
CLUSTER_BUS_OFFSET = 10_000
"""Redis Cluster's node-to-node bus listens on the client port plus this."""


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_node_port() -> int:
    """A port free both for clients and, 10000 above it, for the cluster bus (so below
    the ephemeral range the kernel hands out, and well below 65535 - 10000)."""
    for _ in range(200):
        port = random.randint(20_000, 30_000)  # noqa: S311 (not a secret)
        if _free(port) and _free(port + CLUSTER_BUS_OFFSET):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def _answers(port: int) -> bool:
    try:
        client = redis.Redis(port=port, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def _command(client: redis.Redis, *args: str) -> Any:
    """A command the plain client has no method for (CLUSTER ... on one node)."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


class ClusterNode:
    """One redis-server in cluster mode, in a folder of its own."""

    def __init__(self, binary: str, workdir: Path, port: int) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.process is None, "already running"
        # No persistence of data: a restarted node comes back empty, its slots kept.
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
                # The other shards keep serving while one is down, as production should.
                "--cluster-require-full-coverage",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on {self.port} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def kill(self) -> None:
        """Gone at once, as a crashed machine: no goodbye to its clients."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=1)

    def owns(self, slot: int) -> bool:
        client = self.client()
        try:
            for start, end, primary, *_replicas in _command(client, "CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return int(primary[1]) == self.port
            return False
        finally:
            client.close()


class OwnCluster:
    """Three redis-server nodes made into a cluster with `redis-cli --cluster create`."""

    def __init__(self, workdir: Path, nodes: int = 3) -> None:
        server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if server is None or cli is None:
            raise RuntimeError("the cluster tests need the redis-server and redis-cli binaries")
        self.cli = cli
        ports: list[int] = []
        while len(ports) < nodes:
            port = _free_node_port()
            if port not in ports:
                ports.append(port)
        self.nodes = [ClusterNode(server, workdir / f"node-{port}", port) for port in ports]

    @property
    def url(self) -> str:
        """REDIS_URL for it: every node as a seed (one would do; the others are found)."""
        return "redis+cluster://" + ",".join(node.address for node in self.nodes)

    def node_owning(self, slot: int) -> ClusterNode:
        return next(node for node in self.nodes if node.owns(slot))

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        subprocess.run(
            [
                self.cli,
                "--cluster",
                "create",
                *(node.address for node in self.nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=START_TIMEOUT,
        )
        self.wait_until_ok()

    def wait_until_ok(self) -> None:
        """Until every node says `cluster_state:ok` and knows every slot's owner."""
        deadline = time.monotonic() + START_TIMEOUT
        while not all(self._ok(node) for node in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not come up")
            time.sleep(0.1)

    @staticmethod
    def _ok(node: ClusterNode) -> bool:
        client = node.client()
        try:
            info = _command(client, "CLUSTER", "INFO")
        except redis.RedisError:
            return False
        finally:
            client.close()
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "cluster_state:ok" in text and "cluster_slots_assigned:16384" in text

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@contextmanager
def own_cluster(workdir: Path) -> Iterator[OwnCluster]:
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = OwnCluster(workdir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def move_slot(
    slot: int, source: ClusterNode, target: ClusterNode, everyone: list[ClusterNode]
) -> None:
    """Give a slot (with no keys in it) from one node to another, as resharding does:
    IMPORTING on the target, MIGRATING on the source, then NODE everywhere."""
    clients = {node.port: node.client() for node in everyone}
    try:
        target_id = _command(clients[target.port], "CLUSTER", "MYID")
        source_id = _command(clients[source.port], "CLUSTER", "MYID")
        _command(clients[target.port], "CLUSTER", "SETSLOT", str(slot), "IMPORTING", source_id)
        _command(clients[source.port], "CLUSTER", "SETSLOT", str(slot), "MIGRATING", target_id)
        for node in [target, source, *(n for n in everyone if n not in (source, target))]:
            _command(clients[node.port], "CLUSTER", "SETSLOT", str(slot), "NODE", target_id)
    finally:
        for client in clients.values():
            client.close()
