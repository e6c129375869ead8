"""SQL of the PostgreSQL backend: async functions of a connection (run by `Database`).

Same tables and semantics as the SQLite backend (storage/sqlite/*_ops.py); the differences are
the dialect, SKIP LOCKED claims, and NOTIFY calls that wake workers and refresh caches in other
processes (sent by PostgreSQL only when the transaction commits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from outpost.core.models import (
    Attempt,
    DeliveryTask,
    Destination,
    Event,
    EventKey,
    Outcome,
    StrMap,
    Tenant,
)
from outpost.core.paging import AttemptQuery, EventQuery, Page, PageRequest
from outpost.errors import ConflictError
from outpost.storage import keyset, log_queries, rows
from outpost.storage.keyset import Where, numbered
from outpost.storage.postgres.database import Conn
from outpost.storage.postgres.recovery_counts import count_finished
from outpost.storage.sealing import Sealer

TASKS_CHANNEL = "outpost_tasks"
DESTINATIONS_CHANNEL = "outpost_destinations"


async def _fetch(conn: Conn, sql: str, params: tuple[Any, ...]) -> list[Any]:
    return list(await conn.fetch(numbered(sql), *params))


async def notify(conn: Conn, channel: str, payload: str = "") -> None:
    await conn.execute("SELECT pg_notify($1, $2)", channel, payload)


# Tenants and destinations


async def get_tenant(conn: Conn, tenant_id: str) -> Tenant | None:
    row = await conn.fetchrow(
        f"SELECT {rows.TENANT_COLUMNS} FROM tenants WHERE id = $1 AND deleted_at IS NULL",
        tenant_id,
    )
    return rows.tenant(row) if row else None


async def upsert_tenant(
    conn: Conn, tenant_id: str, metadata: StrMap | None, now: int
) -> tuple[Tenant, bool]:
    row = await conn.fetchrow(
        "INSERT INTO tenants (id, metadata, created_at, updated_at) VALUES ($1, $2, $3, $3) "
        "ON CONFLICT (id) DO UPDATE SET metadata = excluded.metadata, "
        "updated_at = excluded.updated_at, "
        "created_at = CASE WHEN tenants.deleted_at IS NULL THEN tenants.created_at "
        "ELSE excluded.created_at END, deleted_at = NULL "
        "RETURNING created_at, (xmax = 0 OR created_at = $3) AS created",
        tenant_id,
        rows.dump(metadata) if metadata else None,
        now,
    )
    assert row is not None
    return Tenant(tenant_id, row[0], now, metadata or None), bool(row[1])


async def delete_tenant(conn: Conn, tenant_id: str, now: int) -> bool:
    gone = await conn.execute(
        "UPDATE tenants SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL", now, tenant_id
    )
    await conn.execute(
        "UPDATE destinations SET deleted_at = $1 WHERE tenant_id = $2 AND deleted_at IS NULL",
        now,
        tenant_id,
    )
    await notify(conn, DESTINATIONS_CHANNEL, tenant_id)
    return gone != "UPDATE 0"


async def list_tenants(conn: Conn, ids: tuple[str, ...], request: PageRequest) -> Page[Tenant]:
    where = Where().add("deleted_at IS NULL").any_of("id", ids)
    plan = keyset.plan(
        kind="tnt",
        select=f"SELECT {rows.TENANT_COLUMNS} FROM tenants",
        where=where,
        sort="created_at",
        id_column="id",
        request=request,
    )
    page = keyset.page(
        plan, await _fetch(conn, plan.sql, plan.params), rows.tenant, lambda t: (t.created_at, t.id)
    )
    total = await conn.fetchval(
        numbered(f"SELECT count(*) FROM tenants WHERE {where.sql()}"), *where.params
    )
    return Page(page.items, page.next, page.prev, int(total))


async def list_destinations(conn: Conn, tenant_id: str, sealer: Sealer | None) -> list[Destination]:
    found = await conn.fetch(
        f"SELECT {rows.DESTINATION_COLUMNS} FROM destinations "
        "WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY created_at, id",
        tenant_id,
    )
    return [rows.destination(row, sealer) for row in found]


async def sealed_key_ids(conn: Conn) -> list[str]:
    """The key ids live credentials are sealed under (`v1:<8 hex>:…`)."""
    found = await conn.fetch(
        "SELECT DISTINCT substr(credentials, 4, 8) FROM destinations "
        "WHERE deleted_at IS NULL AND left(credentials, 3) = 'v1:'"
    )
    return [row[0] for row in found]


async def reseal_credentials(conn: Conn, sealer: Sealer) -> int:
    """Rewrites live credentials not sealed under the current key (rotation, legacy rows).

    Compare-and-set per row, so processes starting together, or a concurrent update, are safe;
    the plaintext is unchanged, so no cache needs invalidating.
    """
    found = await conn.fetch(
        "SELECT id, tenant_id, credentials FROM destinations "
        "WHERE deleted_at IS NULL AND left(credentials, $1) <> $2",
        len(sealer.prefix),
        sealer.prefix,
    )
    count = 0
    for row in found:
        sealed = rows.resealed(tuple(row), sealer)
        if sealed is not None:
            status = await conn.execute(
                "UPDATE destinations SET credentials = $1 "
                "WHERE id = $2 AND tenant_id = $3 AND credentials = $4",
                sealed,
                *row,
            )
            count += status != "UPDATE 0"
    return count


async def create_destination(
    conn: Conn, dest: Destination, limit: int, sealer: Sealer | None
) -> None:
    # Serialise creations per tenant so that the limit holds across processes.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", dest.tenant_id)
    live = await conn.fetch(
        "SELECT id FROM destinations WHERE tenant_id = $1 AND deleted_at IS NULL", dest.tenant_id
    )
    if any(r[0] == dest.id for r in live):
        raise ConflictError("destination already exists")
    if len(live) >= limit:
        raise ConflictError("maximum number of destinations per tenant reached")
    await conn.execute(
        "DELETE FROM destinations WHERE tenant_id = $1 AND id = $2", dest.tenant_id, dest.id
    )
    await conn.execute(
        f"INSERT INTO destinations ({rows.DESTINATION_COLUMNS}) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        *rows.destination_values(dest, sealer),
    )
    await notify(conn, DESTINATIONS_CHANNEL, dest.tenant_id)


async def update_destination(conn: Conn, dest: Destination, sealer: Sealer | None) -> bool:
    values = rows.destination_values(dest, sealer)
    status = await conn.execute(
        "UPDATE destinations SET type = $1, topics = $2, filter = $3, config = $4, "
        "credentials = $5, delivery_metadata = $6, metadata = $7, created_at = $8, "
        "updated_at = $9, disabled_at = $10 "
        "WHERE id = $11 AND tenant_id = $12 AND deleted_at IS NULL",
        *values[2:],
        dest.id,
        dest.tenant_id,
    )
    await notify(conn, DESTINATIONS_CHANNEL, dest.tenant_id)
    return status != "UPDATE 0"


async def delete_destination(conn: Conn, tenant_id: str, destination_id: str, now: int) -> bool:
    status = await conn.execute(
        "UPDATE destinations SET deleted_at = $1 "
        "WHERE tenant_id = $2 AND id = $3 AND deleted_at IS NULL",
        now,
        tenant_id,
        destination_id,
    )
    await notify(conn, DESTINATIONS_CHANNEL, tenant_id)
    return status != "UPDATE 0"


# The event and attempt log

_SELECT_EVENTS = log_queries.SELECT_EVENTS
_SELECT_ATTEMPTS = log_queries.SELECT_ATTEMPTS


async def get_event(conn: Conn, event_id: str, tenant_id: str | None) -> Event | None:
    where = Where().add("id = ?", event_id)
    if tenant_id is not None:
        where = where.add("tenant_id = ?", tenant_id)
    found = await _fetch(conn, f"{_SELECT_EVENTS} WHERE {where.sql()} LIMIT 2", where.params)
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
    return log_queries.events_page(plan, await _fetch(conn, plan.sql, plan.params))


async def list_attempts(conn: Conn, query: AttemptQuery, request: PageRequest) -> Page[Attempt]:
    plan = log_queries.attempts_plan(query, request)
    return log_queries.attempts_page(plan, await _fetch(conn, plan.sql, plan.params))


async def get_attempt(conn: Conn, attempt_id: str, tenant_id: str | None) -> Attempt | None:
    where = Where().add("id = ?", attempt_id)
    if tenant_id is not None:
        where = where.add("tenant_id = ?", tenant_id)
    found = await _fetch(conn, f"{_SELECT_ATTEMPTS} WHERE {where.sql()}", where.params)
    return rows.attempt(found[0]) if found else None


async def latest_attempt(
    conn: Conn, event_id: str, destination_id: str, tenant_id: str | None
) -> Attempt | None:
    where = Where().add("event_id = ?", event_id).add("destination_id = ?", destination_id)
    if tenant_id is not None:
        where = where.add("tenant_id = ?", tenant_id)
    found = await _fetch(
        conn,
        f"{_SELECT_ATTEMPTS} WHERE {where.sql()} ORDER BY attempt_number DESC, time DESC LIMIT 1",
        where.params,
    )
    return rows.attempt(found[0]) if found else None


# The delivery queue

# The wake-up call of a statement that queued tasks (a CTE named `queued`): one call, not one per
# task, as the count runs over at most one row.
_WAKE_IF_QUEUED = (
    f"(SELECT count(pg_notify('{TASKS_CHANNEL}', '')) FROM (SELECT FROM queued LIMIT 1) AS first)"
)

# One statement decides and writes, so two processes publishing the same id cannot both win,
# and a publish costs one round trip: the event, its tasks and the wake-up call together.
_ACCEPT = f"""
WITH stored AS (
    INSERT INTO events ({rows.EVENT_COLUMNS}, accepted_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
    ON CONFLICT (id, tenant_id) DO UPDATE SET
        topic = excluded.topic, time = excluded.time,
        eligible_for_retry = excluded.eligible_for_retry, metadata = excluded.metadata,
        data = excluded.data, matched_destination_ids = excluded.matched_destination_ids,
        destination_id = excluded.destination_id, accepted_at = excluded.accepted_at
    -- the rule of storage/sqlite/task_ops.accept_event()
    WHERE events.matched_destination_ids = '[]'
       OR (events.accepted_at < $11 AND excluded.matched_destination_ids <> '[]')
    RETURNING id
), queued AS (
    INSERT INTO tasks (event_id, tenant_id, destination_id, attempt_number, manual, visible_at)
    SELECT $1, $2, destination, 1, FALSE, $13 FROM stored, unnest($12::text[]) AS destination
    RETURNING id, generation
)
SELECT (SELECT count(*) FROM stored),
       {_WAKE_IF_QUEUED},
       (SELECT coalesce(array_agg(id), '{{}}') FROM queued)
"""

_ENQUEUE = (
    "INSERT INTO tasks (event_id, tenant_id, destination_id, attempt_number, manual, visible_at) "
    "VALUES ($1, $2, $3, $4, $5, $6)"
)


async def accept_event(
    conn: Conn, event: Event, now: int, dedupe_after: int, visible_at: int
) -> tuple[bool, list[int]]:
    """Store the event and queue its first deliveries, claimable from `visible_at`.

    Returns (duplicate, ids of the tasks queued). The rules are those of the SQLite backend
    (storage/sqlite/task_ops.accept_event): an earlier event that matched is kept.
    """
    row = await conn.fetchrow(
        _ACCEPT,
        *rows.event_values(event),
        now,
        dedupe_after,
        list(event.matched_destination_ids),
        visible_at,
    )
    assert row is not None
    kept_earlier = int(row[0]) == 0
    return kept_earlier and bool(event.matched_destination_ids), list(row[2])


@dataclass(frozen=True)
class Acceptance:
    """The arguments of one `accept_event`, queued to be merged with others (`accept_events`)."""

    event: Event
    now: int
    dedupe_after: int
    visible_at: int


# The events of a group commit whose (tenant, id) pairs are new, and their tasks, in one statement
# over arrays. A pair stored already is left alone (DO NOTHING) for `accept_event` to decide: the
# dedupe rule needs each publish's own window, and such publishes (retries, duplicates) are rare.
_ACCEPT_NEW = f"""
WITH stored AS (
    INSERT INTO events ({rows.EVENT_COLUMNS}, accepted_at)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::boolean[],
                         $6::text[], $7::bytea[], $8::text[], $9::text[], $10::bigint[])
    ON CONFLICT (id, tenant_id) DO NOTHING
    RETURNING id, tenant_id
), queued AS (
    INSERT INTO tasks (event_id, tenant_id, destination_id, attempt_number, manual, visible_at)
    SELECT task.event_id, task.tenant_id, task.destination_id, 1, FALSE, task.visible_at
    FROM unnest($11::text[], $12::text[], $13::text[], $14::bigint[])
        AS task (event_id, tenant_id, destination_id, visible_at)
    WHERE (task.event_id, task.tenant_id) IN (SELECT id, tenant_id FROM stored)
    RETURNING id, event_id, tenant_id
)
SELECT (SELECT coalesce(array_agg(ARRAY[tenant_id, id]), '{{}}') FROM stored),
       {_WAKE_IF_QUEUED},
       coalesce(array_agg(ARRAY[tenant_id, event_id]), '{{}}'), coalesce(array_agg(id), '{{}}')
FROM queued
"""


async def accept_events(conn: Conn, acceptances: list[Acceptance]) -> list[tuple[bool, list[int]]]:
    """`accept_event` for each, in order, as one statement for all whose event is new.

    The others run one by one afterwards, in order: a (tenant, id) stored already (the dedupe
    rule decides), and one seen earlier in this list (one statement cannot settle two rows of
    the same event: the later one must see the earlier one, as it would have one by one).
    """
    if len(acceptances) == 1:
        one = acceptances[0]
        return [await accept_event(conn, one.event, one.now, one.dedupe_after, one.visible_at)]
    firsts = _first_of_each_id(acceptances)
    stored, task_ids = await _accept_new(conn, [acceptances[i] for i in firsts])
    new = {i for i in firsts if rows.event_key(acceptances[i].event) in stored}
    answers: list[tuple[bool, list[int]]] = []
    for index, a in enumerate(acceptances):
        if index in new:
            answers.append((False, task_ids.get(rows.event_key(a.event), [])))
        else:
            answers.append(await accept_event(conn, a.event, a.now, a.dedupe_after, a.visible_at))
    return answers


def _first_of_each_id(acceptances: list[Acceptance]) -> list[int]:
    """Indexes of the acceptances whose event (tenant, id) none before them has."""
    seen: set[EventKey] = set()
    firsts: list[int] = []
    for index, a in enumerate(acceptances):
        key = rows.event_key(a.event)
        if key not in seen:
            seen.add(key)
            firsts.append(index)
    return firsts


async def _accept_new(
    conn: Conn, acceptances: list[Acceptance]
) -> tuple[set[EventKey], dict[EventKey, list[int]]]:
    """Run `_ACCEPT_NEW` (events distinct): the events stored, and the task ids of each."""
    events = [(*rows.event_values(a.event), a.now) for a in acceptances]
    tasks = [
        (a.event.id, a.event.tenant_id, destination_id, a.visible_at)
        for a in acceptances
        for destination_id in a.event.matched_destination_ids
    ]
    row = await conn.fetchrow(_ACCEPT_NEW, *_columns(events, 10), *_columns(tasks, 4))
    assert row is not None
    task_ids: dict[EventKey, list[int]] = {}
    for (tenant_id, event_id), task_id in zip(row[2], row[3], strict=True):
        task_ids.setdefault((tenant_id, event_id), []).append(task_id)
    return {(tenant_id, event_id) for tenant_id, event_id in row[0]}, task_ids


def _columns(values: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows to columns, one list per column (an array parameter each); `width` lists if none."""
    return [list(column) for column in zip(*values, strict=True)] or [[] for _ in range(width)]


async def enqueue_manual(
    conn: Conn, event: Event, destination_id: str, attempt_number: int, visible_at: int
) -> int:
    task_id = await conn.fetchval(
        _ENQUEUE + " RETURNING id",
        event.id,
        event.tenant_id,
        destination_id,
        attempt_number,
        True,
        visible_at,
    )
    await notify(conn, TASKS_CHANNEL)
    return int(task_id)


# Claims answer each task with its event (NULL when the event was erased): one round trip.
_TASK_COLUMNS = (
    "id, event_id, tenant_id, destination_id, attempt_number, manual, generation, claims"
)
_TASK_WIDTH = len(_TASK_COLUMNS.split(","))  # the event's columns follow the task's
_WITH_EVENTS = f"""
SELECT claimed.*, {", ".join(f"event.{c.strip()}" for c in rows.EVENT_COLUMNS.split(","))}
FROM claimed LEFT JOIN events AS event
    ON event.id = claimed.event_id AND event.tenant_id = claimed.tenant_id
"""

_CLAIM = f"""
WITH picked AS (
    SELECT id FROM tasks WHERE visible_at <= $1 ORDER BY visible_at LIMIT $2
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE tasks t SET visible_at = $3, leased = TRUE, claims = t.claims + 1
    FROM picked WHERE t.id = picked.id
    RETURNING t.{_TASK_COLUMNS.replace(", ", ", t.")}
)
{_WITH_EVENTS}"""


_CLAIM_IDS = f"""
WITH claimed AS (
    UPDATE tasks SET visible_at = $2, leased = TRUE, claims = claims + 1
    WHERE id = ANY($1::bigint[]) AND NOT leased
    RETURNING {_TASK_COLUMNS}
)
{_WITH_EVENTS}"""


async def claim(conn: Conn, now: int, limit: int, lease_ms: int) -> list[DeliveryTask]:
    return await _tasks(conn, await conn.fetch(_CLAIM, now, limit, now + lease_ms))


async def claim_ids(conn: Conn, ids: list[int], now: int, lease_ms: int) -> list[DeliveryTask]:
    """Claim these tasks (handed over by a message broker) unless done or claimed already."""
    return await _tasks(conn, await conn.fetch(_CLAIM_IDS, ids, now + lease_ms))


async def _tasks(conn: Conn, found: list[Any]) -> list[DeliveryTask]:
    """Claimed rows (task columns, then event columns) as tasks; tasks of no event are deleted."""
    if not found:
        return []
    # Tasks of one event share its row: decode it once.
    event_rows = {
        (r[_TASK_WIDTH + 1], r[_TASK_WIDTH]): r[_TASK_WIDTH:]  # (tenant_id, id)
        for r in found
        if r[_TASK_WIDTH] is not None
    }
    events = {key: rows.event(row) for key, row in event_rows.items()}
    tasks, orphans = rows.claimed_tasks([row[:_TASK_WIDTH] for row in found], events)
    if orphans:
        await conn.execute("DELETE FROM tasks WHERE id = ANY($1::bigint[])", orphans)
    return tasks


# Scheduling again for the same pair replaces the pending retry (the partial index's predicate
# named, so that it is the arbiter).
_RETRY_ON_CONFLICT = """
ON CONFLICT (retry_key) WHERE retry_key IS NOT NULL DO UPDATE SET
    attempt_number = excluded.attempt_number, visible_at = excluded.visible_at,
    leased = FALSE, claims = 0, generation = tasks.generation + 1
"""
_SCHEDULE_RETRY = f"""
INSERT INTO tasks (event_id, tenant_id, destination_id, attempt_number, manual, visible_at,
                   retry_key)
VALUES ($1, $2, $3, $4, FALSE, $5, $6) {_RETRY_ON_CONFLICT}"""


# Upsert, as SQLite's INSERT OR REPLACE: a re-recorded attempt keeps its latest result.
_RECORD_ATTEMPTS_ON_CONFLICT = (
    "ON CONFLICT (id) DO UPDATE SET status = excluded.status, time = excluded.time, "
    "code = excluded.code, response_data = excluded.response_data, "
    "latency_ms = excluded.latency_ms, request_headers = excluded.request_headers"
)
_RECORD_ATTEMPT = (
    f"INSERT INTO attempts ({rows.ATTEMPT_COLUMNS}) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) "
    f"{_RECORD_ATTEMPTS_ON_CONFLICT}"
)
_RECORD_ATTEMPTS = (
    f"INSERT INTO attempts ({rows.ATTEMPT_COLUMNS}) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
    "$6::text[], $7::text[], $8::bigint[], $9::integer[], $10::boolean[], $11::text[], "
    f"$12::text[], $13::bigint[], $14::text[]) {_RECORD_ATTEMPTS_ON_CONFLICT}"
)
_DELETE_FINISHED = """
DELETE FROM tasks USING unnest($1::bigint[], $2::integer[]) AS done (id, generation)
WHERE tasks.id = done.id AND tasks.generation = done.generation
"""
_SCHEDULE_RETRIES = f"""
INSERT INTO tasks (event_id, tenant_id, destination_id, attempt_number, manual, visible_at,
                   retry_key)
SELECT event_id, tenant_id, destination_id, attempt_number, FALSE, visible_at, retry_key
FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[], $5::bigint[], $6::text[])
    AS retry (event_id, tenant_id, destination_id, attempt_number, visible_at, retry_key)
{_RETRY_ON_CONFLICT}"""


async def finish(conn: Conn, outcomes: list[Outcome]) -> None:
    """Record attempts, settle tasks and their retries: one statement over arrays for each."""
    attempts = [rows.attempt_values(o.attempt) for o in outcomes if o.attempt is not None]
    await _upsert_all(conn, attempts, _RECORD_ATTEMPTS, _RECORD_ATTEMPT, key_at=0)  # id
    await count_finished(conn, outcomes)
    finished = [(o.task.id, o.task.generation) for o in outcomes]
    await conn.execute(_DELETE_FINISHED, *_columns(finished, 2))
    retries = [
        (
            t.event.id,
            t.event.tenant_id,
            t.destination_id,
            t.attempt_number + 1,
            o.retry_at,
            t.retry_key,
        )
        for o in outcomes
        if o.retry_at is not None
        for t in (o.task,)
    ]
    if retries:
        await _upsert_all(conn, retries, _SCHEDULE_RETRIES, _SCHEDULE_RETRY, key_at=5)  # retry_key
        await notify(conn, TASKS_CHANNEL)
    cancelled = [o.task.retry_key for o in outcomes if o.retry_at is None and o.cancel_retry]
    if cancelled:
        await conn.execute(  # IS NOT NULL: the partial index's predicate, so that it is used
            "DELETE FROM tasks WHERE retry_key = ANY($1::text[]) AND retry_key IS NOT NULL",
            cancelled,
        )


async def _upsert_all(
    conn: Conn, values: list[tuple[Any, ...]], over_arrays: str, one_row: str, *, key_at: int
) -> None:
    """Upsert rows (conflict key: value `key_at`): one statement over arrays, unless a key repeats.

    One INSERT ... ON CONFLICT DO UPDATE cannot touch a row twice, so rows whose keys repeat go
    one at a time (`one_row`, per row in order: the last one wins, as it always did).
    """
    if not values:
        return
    if len({row[key_at] for row in values}) < len(values):
        await conn.executemany(one_row, values)
    else:
        await conn.execute(over_arrays, *_columns(values, len(values[0])))


async def release(conn: Conn, task: DeliveryTask, visible_at: int) -> None:
    await conn.execute(
        "UPDATE tasks SET visible_at = $1, leased = FALSE WHERE id = $2 AND generation = $3",
        visible_at,
        task.id,
        task.generation,
    )


# See sqlite/task_ops.defer: a deferral takes its claim back.
_DEFER = """
UPDATE tasks t SET visible_at = d.visible_at, leased = FALSE, claims = greatest(t.claims - 1, 0)
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS d(id, generation, visible_at)
WHERE t.id = d.id AND t.generation = d.generation
"""


async def defer(conn: Conn, deferred: list[tuple[DeliveryTask, int]]) -> None:
    values = [(task.id, task.generation, visible_at) for task, visible_at in deferred]
    await conn.execute(_DEFER, *_columns(values, 3))


COUNT_DUE = "SELECT count(*) FROM (SELECT 1 FROM tasks WHERE visible_at <= $1 LIMIT $2) AS due"


async def count_due(conn: Conn, now: int, limit: int) -> int:
    """Tasks claimable now, counted up to `limit`: a bounded walk of tasks_by_visibility."""
    return int(await conn.fetchval(COUNT_DUE, now, limit))


async def next_visible_at(conn: Conn) -> int | None:
    value = await conn.fetchval("SELECT min(visible_at) FROM tasks")
    return None if value is None else int(value)
