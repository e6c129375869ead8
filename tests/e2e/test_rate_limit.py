"""Two `waypost serve --service api` processes on one PostgreSQL database share one rate limit.

The limit is counted in PostgreSQL (`storage/postgres/ratelimit.py`), so a caller alternating
between the processes (as behind a load balancer) gets `API_RATE_LIMIT` requests per window in
all, not per process. Runs in PostgreSQL mode whatever `OUTPOST_TEST_BACKEND` says (the embedded
store is one process by design).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx
import pytest
from support import postgres
from support.server import ServerProcess

from waypost.storage.postgres.database import migrate
from waypost.storage.postgres.ratelimit import PostgresHitCounter

# PostgreSQL whatever the pass: once is enough.
pytestmark = [pytest.mark.e2e, pytest.mark.backends("sqlite"), pytest.mark.timeout(120)]

LIMIT = 10
ENV = {"SERVICE": "api", "API_RATE_LIMIT": str(LIMIT), "API_RATE_LIMIT_WINDOW_SECONDS": "3600"}


@pytest.fixture
def two_api_processes(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    name, url = postgres.create_database("outpost_ratelimit")
    servers = [
        ServerProcess(ENV, workdir=tmp_path / f"api{index}", postgres_url=url) for index in (0, 1)
    ]
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(ServerProcess.start, servers))
        yield servers
    finally:
        for srv in servers:
            srv.close()
        postgres.drop_database(name)


def test_two_api_processes_share_one_limit(two_api_processes: list[ServerProcess]) -> None:
    one, two = two_api_processes
    answers: list[httpx.Response] = []
    with one.http() as first, two.http() as second:
        for index in range(LIMIT + 4):
            client = first if index % 2 == 0 else second
            answers.append(client.get("/topics"))
        assert first.put("/tenants/rl-tenant").status_code == 429  # spent on both processes
        assert [r.status_code for r in answers] == [200] * LIMIT + [429] * 4

    remaining = [int(r.headers["x-ratelimit-remaining"]) for r in answers]
    assert remaining == list(range(LIMIT - 1, -1, -1)) + [0] * 4
    assert {r.headers["x-ratelimit-limit"] for r in answers} == {str(LIMIT)}
    assert len({r.headers["x-ratelimit-reset"] for r in answers}) == 1
    over = answers[-1]
    assert over.json() == {"status": 429, "message": "too many requests"}
    assert int(over.headers["retry-after"]) >= 1


def test_concurrent_hits_are_counted_once_each() -> None:
    """Requests arriving together are counted by shared upserts, yet each gets its own position,
    and two processes' counters (here: two counters) add up."""
    name, url = postgres.create_database("outpost_ratelimit")

    async def run() -> tuple[list[int], int]:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        one, two = PostgresHitCounter(url), PostgresHitCounter(url)
        try:
            hits = [c.hit("admin", 60, 60) for _ in range(150) for c in (one, two)]
            positions = await asyncio.gather(*hits)
            return sorted(positions), await one.hit("tenant:t", 60, 60)
        finally:
            await one.close()
            await two.close()

    try:
        positions, other = asyncio.run(run())
    finally:
        postgres.drop_database(name)
    assert positions == list(range(1, 301))
    assert other == 1
