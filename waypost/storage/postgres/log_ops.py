"""The event and attempt log in PostgreSQL: async functions of a connection (run by `Database`).

The same queries as storage/sqlite/log_ops.py (log_queries.py builds both); events are written by
task_ops.py (with their tasks) and attempts by its `finish`.
"""

from __future__ import annotations

from waypost.core.models import Attempt, Event, EventKey
from waypost.core.paging import AttemptQuery, EventQuery, Page, PageRequest
from waypost.storage import log_queries, rows
from waypost.storage.keyset import Where
from waypost.storage.postgres.database import Conn, fetch

_SELECT_EVENTS = log_queries.SELECT_EVENTS
_SELECT_ATTEMPTS = log_queries.SELECT_ATTEMPTS


async def get_event(conn: Conn, event_id: str, tenant_id: str | None) -> Event | None:
    where = Where().add("id = ?", event_id)
    if tenant_id is not None:
        where = where.add("tenant_id = ?", tenant_id)
    found = await fetch(conn, f"{_SELECT_EVENTS} WHERE {where.sql()} LIMIT 2", where.params)
    return rows.the_event([rows.event(row) for row in found], event_id)


# Events by (id, tenant_id) pairs given as two arrays: the primary key answers each pair.
EVENTS_OF = (
    f"{_SELECT_EVENTS} WHERE (id, tenant_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
)


async def get_events(conn: Conn, keys: list[EventKey]) -> dict[EventKey, Event]:
    found = await conn.fetch(EVENTS_OF, [k[1] for k in keys], [k[0] for k in keys])
    return rows.keyed_events(map(rows.event, found), set(keys))


def _matched_any(ids: tuple[str, ...]) -> tuple[str, tuple[list[str]]]:
    return "jsonb_exists_any(matched_destination_ids::jsonb, ?::text[])", (list(ids),)


async def list_events(conn: Conn, query: EventQuery, request: PageRequest) -> Page[Event]:
    plan = log_queries.events_plan(query, request, _matched_any)
    return log_queries.events_page(plan, await fetch(conn, plan.sql, plan.params))


async def list_attempts(conn: Conn, query: AttemptQuery, request: PageRequest) -> Page[Attempt]:
    plan = log_queries.attempts_plan(query, request)
    return log_queries.attempts_page(plan, await fetch(conn, plan.sql, plan.params))


async def get_attempt(conn: Conn, attempt_id: str, tenant_id: str | None) -> Attempt | None:
    where = Where().add("id = ?", attempt_id)
    if tenant_id is not None:
        where = where.add("tenant_id = ?", tenant_id)
    found = await fetch(conn, f"{_SELECT_ATTEMPTS} WHERE {where.sql()}", where.params)
    return rows.attempt(found[0]) if found else None


async def latest_attempt(
    conn: Conn, event_id: str, destination_id: str, tenant_id: str | None
) -> Attempt | None:
    where = Where().add("event_id = ?", event_id).add("destination_id = ?", destination_id)
    if tenant_id is not None:
        where = where.add("tenant_id = ?", tenant_id)
    found = await fetch(
        conn,
        f"{_SELECT_ATTEMPTS} WHERE {where.sql()} ORDER BY attempt_number DESC, time DESC LIMIT 1",
        where.params,
    )
    return rows.attempt(found[0]) if found else None
