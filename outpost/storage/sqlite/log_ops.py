"""The event and attempt log: synchronous operations on a connection (run by `Database`)."""

from __future__ import annotations

import sqlite3

from outpost.core.models import Attempt, Event
from outpost.core.paging import AttemptQuery, EventQuery, Page, PageRequest
from outpost.storage import keyset, rows
from outpost.storage.keyset import Where

_SELECT_EVENTS = "SELECT " + rows.EVENT_COLUMNS + " FROM events"
_SELECT_ATTEMPTS = "SELECT " + rows.ATTEMPT_COLUMNS + " FROM attempts"


def get_event(conn: sqlite3.Connection, event_id: str, tenant_id: str | None) -> Event | None:
    where = Where().add("id = ?", event_id)
    if tenant_id is not None:
        where = where.add("tenant_id = ?", tenant_id)
    row = conn.execute(f"{_SELECT_EVENTS} WHERE {where.sql()}", where.params).fetchone()
    return rows.event(row) if row else None


def get_events(conn: sqlite3.Connection, ids: list[str]) -> dict[str, Event]:
    if not ids:
        return {}
    where = Where().any_of("id", ids)
    found = conn.execute(f"{_SELECT_EVENTS} WHERE {where.sql()}", where.params)
    return {e.id: e for e in map(rows.event, found)}


def list_events(conn: sqlite3.Connection, query: EventQuery, request: PageRequest) -> Page[Event]:
    where = (
        Where()
        .any_of("tenant_id", query.tenant_ids)
        .any_of("id", query.ids)
        .any_of("topic", query.topics)
    )
    if query.destination_ids:
        marks = ",".join("?" * len(query.destination_ids))
        where = where.add(
            f"EXISTS (SELECT 1 FROM json_each(matched_destination_ids) WHERE value IN ({marks}))",
            *query.destination_ids,
        )
    plan = keyset.plan(
        kind="evt",
        select=_SELECT_EVENTS,
        where=where.within("time", query.time),
        sort="time",
        id_column="id",
        request=request,
    )
    found = conn.execute(plan.sql, plan.params).fetchall()
    return keyset.page(plan, found, rows.event, lambda e: (e.time, e.id))


def list_attempts(
    conn: sqlite3.Connection, query: AttemptQuery, request: PageRequest
) -> Page[Attempt]:
    where = (
        Where()
        .any_of("tenant_id", query.tenant_ids)
        .any_of("event_id", query.event_ids)
        .any_of("destination_id", query.destination_ids)
        .any_of("destination_type", query.destination_types)
        .any_of("topic", query.topics)
    )
    if query.status:
        where = where.add("status = ?", query.status)
    plan = keyset.plan(
        kind="att",
        select=_SELECT_ATTEMPTS,
        where=where.within("time", query.time),
        sort="time",
        id_column="id",
        request=request,
    )
    found = conn.execute(plan.sql, plan.params).fetchall()
    return keyset.page(plan, found, rows.attempt, lambda a: (a.time, a.id))


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


def insert_attempts(conn: sqlite3.Connection, attempts: list[Attempt]) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO attempts (" + rows.ATTEMPT_COLUMNS + ") "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [rows.attempt_values(a) for a in attempts],
    )
