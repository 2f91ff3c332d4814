"""argon2's memory stays bounded however many password checks arrive at once.

A `gigql serve` process with the production argon2 cost (64 MiB a hash) gets a burst of
concurrent logins. The kernel's peak resident size of the process (VmHWM) shows how many
hashes ran at once, whatever the timing on a busy machine: it may grow by at most
GIGQL_ARGON2_MAX_CONCURRENT hashes (plus slack for the requests themselves) over what
the process held before the burst.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from documents.settings import Settings
from tests.support.gigql_process import graphql, sharing_the_test_database
from tests.support.graphql_client import error_codes

MEMORY_COST_KIB = Settings.model_fields["argon2_memory_cost_kib"].default
MAX_CONCURRENT = 2
BURST = 24
SLACK_KIB = 48 * 1024  # Python's share of two dozen requests in flight, and then some


def memory_kib(pid: int, field: str) -> int:
    """A size from /proc/<pid>/status: VmRSS now, or VmHWM, the peak so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


async def test_a_burst_of_password_checks_hashes_a_few_at_a_time(
    tmp_path: Path, settings: Settings
) -> None:
    production_cost = {
        "GIGQL_ARGON2_MEMORY_COST_KIB": str(MEMORY_COST_KIB),
        "GIGQL_ARGON2_TIME_COST": str(Settings.model_fields["argon2_time_cost"].default),
        "GIGQL_ARGON2_PARALLELISM": str(Settings.model_fields["argon2_parallelism"].default),
        "GIGQL_ARGON2_MAX_CONCURRENT": str(MAX_CONCURRENT),
        "GIGQL_LOGIN_IP_MAX_FAILURES": "1000",
    }
    async with (
        sharing_the_test_database(tmp_path, settings, **production_cost) as server,
        graphql(server) as client,
    ):

        async def guess(n: int) -> list[str]:
            payload = await client.mutate(
                "login", {"email": f"guess{n}@example.com", "password": "Wrong-Pass-1!"}
            )
            return error_codes(payload)

        assert await guess(-1) == ["INVALID_CREDENTIALS"]  # warmed up: one hash done
        before = memory_kib(server.pid, "VmRSS")
        client.http.timeout = httpx.Timeout(120)
        answers = await asyncio.gather(*(guess(n) for n in range(BURST)))
        peak = memory_kib(server.pid, "VmHWM")

    assert answers == [["INVALID_CREDENTIALS"]] * BURST
    grown = peak - before
    assert grown <= MAX_CONCURRENT * MEMORY_COST_KIB + SLACK_KIB, (
        f"grew {grown // 1024} MiB during {BURST} concurrent checks"
    )
