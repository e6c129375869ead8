"""Retention on the embedded store: one bounded batch per call (see storage/retention.py).

Each batch walks an index in time order (`attempts_by_time`, `events_by_time`, or the tenant
ones) and stops after `limit` rows; `NOT IN (SELECT event_id, tenant_id FROM tasks)` is evaluated
once per statement, and `attempts_by_event` answers whether an event still has an attempt.
"""

from __future__ import annotations

import sqlite3

from waypost.storage.retention import Deleted

_KEEP_EVENT = (  # an event is its tenant's: tasks and attempts name it by (event, tenant)
    "(id, tenant_id) NOT IN (SELECT event_id, tenant_id FROM tasks) "
    "AND NOT EXISTS (SELECT 1 FROM attempts "
    "WHERE attempts.event_id = events.id AND attempts.tenant_id = events.tenant_id)"
)


def delete_before(conn: sqlite3.Connection, cutoff: int, limit: int) -> Deleted:
    return _delete(conn, "time < ?", cutoff, "time", limit)


def erase_tenant(conn: sqlite3.Connection, tenant_id: str, limit: int) -> Deleted:
    return _delete(conn, "tenant_id = ?", tenant_id, "tenant_id, time", limit)


def _delete(
    conn: sqlite3.Connection, condition: str, value: object, order: str, limit: int
) -> Deleted:
    attempts = conn.execute(
        f"DELETE FROM attempts WHERE id IN "
        f"(SELECT id FROM attempts WHERE {condition} ORDER BY {order} LIMIT ?)",
        (value, limit),
    ).rowcount
    events = conn.execute(
        f"DELETE FROM events WHERE rowid IN (SELECT rowid FROM events "
        f"WHERE {condition} AND {_KEEP_EVENT} ORDER BY {order} LIMIT ?)",
        (value, limit),
    ).rowcount
    return Deleted(events=events, attempts=attempts)
