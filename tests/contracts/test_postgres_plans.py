"""PostgreSQL keeps using the indexes on a database that started empty.

A prepared statement run more than five times may get a generic plan from the statistics of that
moment and keep it until the table is next analyzed. On a fresh database the plan for "the events
of these claimed tasks" was a sequential scan, and every claim then read the whole events table
(delivery fell to 899 events/s with a 30 s p99 in the benchmark's first 40,000 events). These
ask PostgreSQL which plan it kept, on the server's own connections: no timing involved.
"""

from __future__ import annotations

import pytest

from waypost.storage.postgres import log_ops, task_ops
from waypost.storage.postgres.backend import PostgresBackend
from waypost.storage.postgres.database import Conn

pytestmark = [pytest.mark.anyio, pytest.mark.clean_database]

_EVENTS = (
    "INSERT INTO events SELECT 'e' || n, 't', 'a', n, TRUE, '{}', '\\x7b7d', '[]', "
    "'', n FROM generate_series($1::int, $1::int + 999) AS n"
)
_TASKS = (
    "INSERT INTO tasks (event_id, tenant_id, destination_id, attempt_number, manual, "
    "visible_at) SELECT 'e' || n, 't', 'd', 1, FALSE, 0 "
    "FROM generate_series($1::int, $1::int + 999) AS n"
)


async def _kept_plan(conn: Conn, execute: str, *, fills: tuple[str, ...]) -> str:
    """The plan PostgreSQL keeps for a prepared statement run while the tables grow."""
    for start in range(0, 20_000, 1000):  # tables growing while the statement runs
        for fill in fills:
            await conn.execute(fill, start)
        for _ in range(8):  # past the five runs after which a generic plan may be kept
            await conn.execute(execute)
    return "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN {execute}"))


async def test_the_events_of_attempts_are_found_by_index(
    postgres_backend: PostgresBackend,
) -> None:
    """get_events (include=event): (id, tenant_id) pairs, each found through the primary key."""
    async with postgres_backend._db.pool.acquire() as conn:
        await conn.execute(f"PREPARE events_of(text[], text[]) AS {log_ops.EVENTS_OF}")
        plan = await _kept_plan(conn, "EXECUTE events_of('{e1,e2}', '{t,t}')", fills=(_EVENTS,))
    assert "Index Scan" in plan and "Seq Scan" not in plan, plan


async def test_a_claim_joins_its_events_by_index(postgres_backend: PostgresBackend) -> None:
    async with postgres_backend._db.pool.acquire() as conn:
        await conn.execute(f"PREPARE claim(bigint, int, bigint) AS {task_ops._CLAIM}")
        plan = await _kept_plan(conn, "EXECUTE claim(1, 2, 0)", fills=(_EVENTS, _TASKS))
    assert "Index Scan using events_pkey" in plan and "Seq Scan" not in plan, plan


async def test_the_due_backlog_a_scrape_counts_walks_the_visibility_index(
    postgres_backend: PostgresBackend,
) -> None:
    """/metrics counts due tasks at every scrape: a bounded range of tasks_by_visibility."""
    async with postgres_backend._db.pool.acquire() as conn:
        await conn.execute(f"PREPARE count_due(bigint, int) AS {task_ops.COUNT_DUE}")
        plan = await _kept_plan(conn, "EXECUTE count_due(1, 10000)", fills=(_EVENTS, _TASKS))
    assert "tasks_by_visibility" in plan and "Seq Scan" not in plan, plan
    assert await postgres_backend.count_due(1, 10_000) == 10_000  # 20,000 due: the cap holds
