"""The event and attempt log: synchronous operations on a connection (run by `Database`)."""

from __future__ import annotations

import sqlite3
from typing import Any

from waypost.core.models import Attempt, Event, EventKey
from waypost.core.paging import AttemptQuery, EventQuery, Page, PageRequest
from waypost.storage import log_queries, rows
from waypost.storage.keyset import Where

_SELECT_EVENTS = log_queries.SELECT_EVENTS
_SELECT_ATTEMPTS = log_queries.SELECT_ATTEMPTS


def get_event(conn: sqlite3.Connection, event_id: str, tenant_id: str | None) -> Event | None:
    where = Where().add("id = ?", event_id)
    if tenant_id is not None:
        where = where.add("tenant_id = ?", tenant_id)
    found = conn.execute(f"{_SELECT_EVENTS} WHERE {where.sql()} LIMIT 2", where.params)
    return rows.the_event([rows.event(row) for row in found], event_id)


def get_events(conn: sqlite3.Connection, keys: list[EventKey]) -> dict[EventKey, Event]:
    """The events of these (tenant_id, id) pairs that exist. By ids and tenants, which the
    primary key (id, tenant_id) answers (a list of row values would be a scan of the table)."""
    if not keys:
        return {}
    where = (
        Where()
        .any_of("id", list({k[1] for k in keys}))
        .any_of("tenant_id", list({k[0] for k in keys}))
    )
    found = conn.execute(f"{_SELECT_EVENTS} WHERE {where.sql()}", where.params)
    return rows.keyed_events(map(rows.event, found), set(keys))


def _matched_any(ids: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    marks = ",".join("?" * len(ids))
    return (
        f"EXISTS (SELECT 1 FROM json_each(matched_destination_ids) WHERE value IN ({marks}))",
        ids,
    )


def list_events(conn: sqlite3.Connection, query: EventQuery, request: PageRequest) -> Page[Event]:
    plan = log_queries.events_plan(query, request, _matched_any)
    return log_queries.events_page(plan, conn.execute(plan.sql, plan.params).fetchall())


def list_attempts(
    conn: sqlite3.Connection, query: AttemptQuery, request: PageRequest
) -> Page[Attempt]:
    plan = log_queries.attempts_plan(query, request)
    return log_queries.attempts_page(plan, conn.execute(plan.sql, plan.params).fetchall())


def get_attempt(conn: sqlite3.Connection, attempt_id: str, tenant_id: str | None) -> Attempt | None:
    where = Where().add("id = ?", attempt_id)
    if tenant_id is not None:
        where = where.add("tenant_id = ?", tenant_id)
    row = conn.execute(f"{_SELECT_ATTEMPTS} WHERE {where.sql()}", where.params).fetchone()
    return rows.attempt(row) if row else None


def latest_attempt(
    conn: sqlite3.Connection, event_id: str, destination_id: str, tenant_id: str | None
) -> Attempt | None:
    where = Where().add("event_id = ?", event_id).add("destination_id = ?", destination_id)
    if tenant_id is not None:
        where = where.add("tenant_id = ?", tenant_id)
    row = conn.execute(
        f"{_SELECT_ATTEMPTS} WHERE {where.sql()} ORDER BY attempt_number DESC, time DESC LIMIT 1",
        where.params,
    ).fetchone()
    return rows.attempt(row) if row else None


def insert_attempt_values(conn: sqlite3.Connection, values: list[tuple[Any, ...]]) -> None:
    """Attempts as `rows.attempt_values` made them."""
    conn.executemany(
        "INSERT OR REPLACE INTO attempts (" + rows.ATTEMPT_COLUMNS + ") "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        values,
    )
