"""Retention on PostgreSQL: bounded batches, one process at a time (see storage/retention.py).

Each batch statement runs on its own (autocommit), outside the group commit, so a delete never
holds back publishes. `RETENTION_LOCK` is a session advisory lock held for a whole sweep: with
several processes sweeping on a timer, one does the work and the others skip that round.
"""

from __future__ import annotations

from waypost.storage.postgres.database import Conn
from waypost.storage.retention import Deleted

RETENTION_LOCK = 7_313_774  # pg_advisory_lock key (MIGRATION_LOCK + 1)

_KEEP_EVENT = (  # an event is its tenant's: tasks and attempts name it by (event, tenant)
    "(id, tenant_id) NOT IN (SELECT event_id, tenant_id FROM tasks) "
    "AND NOT EXISTS (SELECT 1 FROM attempts "
    "WHERE attempts.event_id = events.id AND attempts.tenant_id = events.tenant_id)"
)


async def try_lock(conn: Conn) -> bool:
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", RETENTION_LOCK))


async def unlock(conn: Conn) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1)", RETENTION_LOCK)


async def delete_before(conn: Conn, cutoff: int, limit: int) -> Deleted:
    return await _delete(conn, "time < $1", cutoff, "time", limit)


async def erase_tenant(conn: Conn, tenant_id: str, limit: int) -> Deleted:
    return await _delete(conn, "tenant_id = $1", tenant_id, "tenant_id, time", limit)


async def _delete(conn: Conn, condition: str, value: object, order: str, limit: int) -> Deleted:
    attempts = await conn.execute(
        f"DELETE FROM attempts WHERE id IN "
        f"(SELECT id FROM attempts WHERE {condition} ORDER BY {order} LIMIT $2)",
        value,
        limit,
    )
    events = await conn.execute(
        f"DELETE FROM events WHERE (id, tenant_id) IN (SELECT id, tenant_id FROM events "
        f"WHERE {condition} AND {_KEEP_EVENT} ORDER BY {order} LIMIT $2)",
        value,
        limit,
    )
    return Deleted(events=_count(events), attempts=_count(attempts))


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])  # "DELETE <n>"
