"""The delivery queue in PostgreSQL: async functions of a connection (run by `Database`).

Same tables and semantics as storage/sqlite/task_ops.py; the differences are the dialect, SKIP
LOCKED claims, statements over arrays that merge the writes of a group commit, and the NOTIFY
that wakes workers in other processes (sent by PostgreSQL only when the transaction commits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from waypost.core.models import (
    DeliveryTask,
    Event,
    EventKey,
    Outcome,
    PendingRetry,
    RetryPair,
    retry_key,
)
from waypost.storage import rows
from waypost.storage.postgres.channels import TASKS_CHANNEL, notify
from waypost.storage.postgres.database import Conn, one_statement
from waypost.storage.postgres.recovery_counts import count_finished


def _wake_if_queued(due: str) -> str:
    """The wake-up call of a statement that queued tasks (a CTE named `queued`): one call, not
    one per task, as the count runs over at most one row; and none unless a task queued is
    claimable now (`due`). Tasks held back while a broker hands them out wake no worker: the
    broker's message does, and a worker woken for them would only find nothing to claim."""
    return (
        f"(SELECT count(pg_notify('{TASKS_CHANNEL}', '')) "
        f"FROM (SELECT FROM queued WHERE {due} LIMIT 1) AS first)"
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
       {_wake_if_queued("$13 <= $10")},
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
    RETURNING id, event_id, tenant_id, visible_at
)
SELECT (SELECT coalesce(array_agg(ARRAY[tenant_id, id]), '{{}}') FROM stored),
       {_wake_if_queued("visible_at <= (SELECT max(now) FROM unnest($10::bigint[]) AS a(now))")},
       coalesce(array_agg(ARRAY[tenant_id, event_id]), '{{}}'), coalesce(array_agg(id), '{{}}')
FROM queued
"""


@one_statement  # for one acceptance: `accept_event`
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
    conn: Conn,
    event: Event,
    destination_id: str,
    attempt_number: int,
    visible_at: int,
    *,
    wake: bool,
) -> int:
    """Queue a manual retry; `wake`: workers are told (not when it is held for a broker)."""
    task_id = await conn.fetchval(
        _ENQUEUE + " RETURNING id",
        event.id,
        event.tenant_id,
        destination_id,
        attempt_number,
        True,
        visible_at,
    )
    if wake:
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
    """Claimed rows (task columns, then event columns) as tasks; tasks of no event are deleted.

    That delete is a second statement, but claims run as one (`one_statement`, no transaction):
    if it fails, the claim stands and the caller sees the error; the tasks claimed come back
    when their lease ends (orphans are rare: their event was erased under them)."""
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


# Pending automatic retries, read for the API's `next_attempt_at`.
# `retry_key IS NOT NULL`: the partial unique index's predicate (006), so that it is used.
_PENDING = """
SELECT retry_key, attempt_number, visible_at FROM tasks
WHERE retry_key = ANY($1::text[]) AND retry_key IS NOT NULL AND NOT leased
"""


async def pending_retries(conn: Conn, pairs: Sequence[RetryPair]) -> dict[RetryPair, PendingRetry]:
    keys = {retry_key(*pair): pair for pair in pairs}
    if not keys:
        return {}
    found = await conn.fetch(_PENDING, list(keys))
    return {keys[row[0]]: PendingRetry(int(row[1]), int(row[2])) for row in found}
