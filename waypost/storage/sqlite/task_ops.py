"""The delivery queue in SQLite: synchronous operations on a connection (run by `Database`).

A task is visible once `visible_at` has passed. Claiming leases it: `visible_at` moves to the end
of the lease and `leased` is set, so a worker that dies leaves it to be claimed again later.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from waypost.core.models import DeliveryTask, Event, Outcome, PendingRetry, RetryPair, retry_key
from waypost.storage import rows
from waypost.storage.sqlite.log_ops import get_events, insert_attempt_values
from waypost.storage.sqlite.recovery_counts import count_finished

_CLAIM = """
UPDATE tasks SET visible_at = :lease_end, leased = 1, claims = claims + 1
WHERE id IN (SELECT id FROM tasks WHERE visible_at <= :now ORDER BY visible_at LIMIT :limit)
RETURNING id, event_id, tenant_id, destination_id, attempt_number, manual, generation, claims
"""

_SCHEDULE_RETRY = """
INSERT INTO tasks (event_id, tenant_id, destination_id, attempt_number, manual, visible_at,
                   retry_key)
VALUES (?, ?, ?, ?, 0, ?, ?)
ON CONFLICT (retry_key) DO UPDATE SET
    attempt_number = excluded.attempt_number, visible_at = excluded.visible_at,
    leased = 0, claims = 0, generation = generation + 1
"""


# One statement decides and writes, by the rule in `accept_event`'s docstring (PostgreSQL's
# `_ACCEPT` is the same): a row comes back when this event was stored, none when one was kept.
_STORE_EVENT = f"""
INSERT INTO events ({rows.EVENT_COLUMNS}, accepted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id, tenant_id) DO UPDATE SET
    topic = excluded.topic, time = excluded.time,
    eligible_for_retry = excluded.eligible_for_retry, metadata = excluded.metadata,
    data = excluded.data, matched_destination_ids = excluded.matched_destination_ids,
    destination_id = excluded.destination_id, accepted_at = excluded.accepted_at
WHERE events.matched_destination_ids = '[]'
   OR (events.accepted_at < ?11 AND excluded.matched_destination_ids <> '[]')
RETURNING 1
"""


def enqueue(
    conn: sqlite3.Connection,
    event: Event,
    destination_id: str,
    *,
    attempt_number: int,
    manual: bool,
    due: int,
) -> None:
    conn.execute(
        "INSERT INTO tasks (event_id, tenant_id, destination_id, attempt_number, manual, "
        "visible_at) VALUES (?, ?, ?, ?, ?, ?)",
        (event.id, event.tenant_id, destination_id, attempt_number, int(manual), due),
    )


@dataclass(frozen=True, slots=True)
class Acceptance:
    """What `accept_event` writes, its statement values made before the commit (`of`): encoding
    them (JSON) then runs on the event loop, not while the writer holds the write lock."""

    event: Event
    now: int
    values: tuple[Any, ...]

    @classmethod
    def of(cls, event: Event, now: int, dedupe_after: int) -> Acceptance:
        return cls(event, now, (*rows.event_values(event), now, dedupe_after))


def accept_event(conn: sqlite3.Connection, acceptance: Acceptance) -> bool:
    """Store a published event and queue its first deliveries. True when it is a duplicate.

    Events are their tenant's: only the same tenant's earlier event under this id counts here
    (Outpost's idempotency key is the id alone, across tenants). An event stored earlier under
    the same id is kept when it matched destinations, unless it was accepted before
    `dedupe_after` and this one matches too (a republish after the window
    delivers again). Keeping it makes this publish a duplicate if it matches anything; one that
    matches nothing records nothing, as in Outpost. An earlier event that matched nothing is
    replaced, so publishing it again once a destination exists delivers it.
    """
    event = acceptance.event
    stored = conn.execute(_STORE_EVENT, acceptance.values).fetchone()
    if stored is None:  # an earlier event under this id was kept
        return bool(event.matched_destination_ids)
    for destination_id in event.matched_destination_ids:
        enqueue(conn, event, destination_id, attempt_number=1, manual=False, due=acceptance.now)
    return False


def claim(conn: sqlite3.Connection, now: int, limit: int, lease_ms: int) -> list[DeliveryTask]:
    claimed = conn.execute(_CLAIM, {"now": now, "limit": limit, "lease_end": now + lease_ms})
    found = claimed.fetchall()
    if not found:
        return []
    events = get_events(conn, list({(row[2], row[1]) for row in found}))
    tasks, orphans = rows.claimed_tasks(found, events)
    conn.executemany("DELETE FROM tasks WHERE id = ?", [(task_id,) for task_id in orphans])
    return tasks


@dataclass(frozen=True, slots=True)
class Finishing:
    """What `finish` writes, its row values made before the commit (`of`): encoding attempts
    (JSON) then runs on the event loop, not while the writer holds the database's write lock."""

    outcomes: list[Outcome]
    attempts: list[tuple[Any, ...]]
    tasks: list[tuple[int, int]]  # (id, generation)

    @classmethod
    def of(cls, outcomes: list[Outcome]) -> Finishing:
        return cls(
            outcomes,
            [rows.attempt_values(o.attempt) for o in outcomes if o.attempt is not None],
            [(o.task.id, o.task.generation) for o in outcomes],
        )


def finish(conn: sqlite3.Connection, finishing: Finishing) -> None:
    """Record attempts and settle each task and its pending retry, all in the caller's commit.

    The finished tasks go first, in one statement; then each retry is scheduled or cancelled
    in the outcomes' order. A retry replacing a task of the same batch (same retry key) then
    inserts a row instead of updating that task's: the same pending retry either way."""
    insert_attempt_values(conn, finishing.attempts)
    count_finished(conn, finishing.outcomes)
    conn.executemany("DELETE FROM tasks WHERE id = ? AND generation = ?", finishing.tasks)
    for outcome in finishing.outcomes:
        task = outcome.task
        if outcome.retry_at is not None:
            conn.execute(
                _SCHEDULE_RETRY,
                (
                    task.event.id,
                    task.event.tenant_id,
                    task.destination_id,
                    task.attempt_number + 1,
                    outcome.retry_at,
                    task.retry_key,
                ),
            )
        elif outcome.cancel_retry:
            conn.execute("DELETE FROM tasks WHERE retry_key = ?", (task.retry_key,))


def pending_retries(
    conn: sqlite3.Connection, pairs: Sequence[RetryPair]
) -> dict[RetryPair, PendingRetry]:
    """Unclaimed automatic retries of these triples, by their unique retry_key (its index)."""
    keys = {retry_key(*pair): pair for pair in pairs}
    if not keys:
        return {}
    marks = ",".join("?" * len(keys))
    found = conn.execute(
        "SELECT retry_key, attempt_number, visible_at FROM tasks "
        f"WHERE retry_key IN ({marks}) AND leased = 0",
        list(keys),
    )
    return {keys[key]: PendingRetry(number, due) for key, number, due in found}


def release(conn: sqlite3.Connection, task: DeliveryTask, visible_at: int) -> None:
    """Give a claimed task back (no attempt was made), visible again at `visible_at`."""
    conn.execute(
        "UPDATE tasks SET visible_at = ?, leased = 0 WHERE id = ? AND generation = ?",
        (visible_at, task.id, task.generation),
    )


def defer(conn: sqlite3.Connection, deferred: list[tuple[DeliveryTask, int]]) -> None:
    """Give claimed tasks back unattempted because their destination is busy, not because
    anything failed: the claim is taken back too, so waiting never counts towards turning an
    infrastructure fault into a failed attempt (MAX_CLAIMS_WITHOUT_ATTEMPT)."""
    conn.executemany(
        "UPDATE tasks SET visible_at = ?, leased = 0, claims = max(claims - 1, 0) "
        "WHERE id = ? AND generation = ?",
        [(visible_at, task.id, task.generation) for task, visible_at in deferred],
    )


def release_all_leases(conn: sqlite3.Connection, now: int) -> int:
    """At start-up of the only process on this database: nobody holds a lease any more (of a
    task, or of a recovery job)."""
    conn.execute("UPDATE recoveries SET lease_until = 0 WHERE state = 'running'")
    return conn.execute(
        "UPDATE tasks SET visible_at = ?, leased = 0 WHERE leased = 1", (now,)
    ).rowcount


def next_visible_at(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT min(visible_at) FROM tasks").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def count_due(conn: sqlite3.Connection, now: int, limit: int) -> int:
    """Tasks claimable now, counted up to `limit`: a bounded walk of tasks_by_visibility."""
    row = conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM tasks WHERE visible_at <= ? LIMIT ?)", (now, limit)
    ).fetchone()
    return int(row[0])
