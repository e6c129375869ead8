"""PostgreSQL keeps using the indexes on a database that started empty.

A prepared statement run more than five times may get a generic plan from the statistics of that
moment and keep it until the table is next analyzed. On a fresh database the plan for "the events
of these claimed tasks" was a sequential scan, and every claim then read the whole events table
(delivery fell to 899 events/s with a 30 s p99 in the benchmark's first 40,000 events). This
asks PostgreSQL which plan it kept, on the server's own connections: no timing involved.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from support.postgres import create_database, drop_database

from outpost.storage.log_queries import SELECT_EVENTS
from outpost.storage.postgres.backend import PostgresBackend
from outpost.storage.sealing import Sealer

pytestmark = pytest.mark.anyio


@pytest.fixture
def database_url() -> Iterator[str]:
    name, url = create_database("outpost_plans")
    yield url
    drop_database(name)


@pytest.fixture
async def fresh(database_url: str) -> AsyncIterator[PostgresBackend]:
    backend = PostgresBackend(database_url, sealer=Sealer("plans"))
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


async def test_claims_find_their_events_by_index_on_a_database_that_started_empty(
    fresh: PostgresBackend,
) -> None:
    async with fresh._db.pool.acquire() as conn:
        await conn.execute(f"PREPARE events_of(text[]) AS {SELECT_EVENTS} WHERE id = ANY($1)")
        for start in range(0, 20_000, 1000):  # a table growing while claims run
            await conn.execute(
                "INSERT INTO events SELECT 'e' || n, 't', 'a', n, TRUE, '{}', '\\x7b7d', '[]', "
                "'', n FROM generate_series($1::int, $1::int + 999) AS n",
                start,
            )
            for _ in range(8):  # past the five runs after which a generic plan may be kept
                await conn.execute("EXECUTE events_of('{e1,e2}')")
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN EXECUTE events_of('{e7}')"))
    assert "Index Scan" in plan and "Seq Scan" not in plan, plan
