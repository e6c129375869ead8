"""Operator events in SQLite: the outbox, destination health, and judging recorded attempts.

Synchronous functions of a connection, run by `Database` inside a group commit; see
waypost/core/operator_records.py for the judge and storage/judging.py for the steps.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

from waypost.core.models import Destination, Outcome
from waypost.core.operator_records import Health, OperatorRecord, OutcomeJudge
from waypost.storage import judging
from waypost.storage.judging import DestinationKey
from waypost.storage.sqlite import task_ops


def finish_judged(
    conn: sqlite3.Connection,
    outcomes: list[Outcome],
    destinations: Mapping[DestinationKey, Destination | None],
    judge: OutcomeJudge,
    now: int,
) -> tuple[dict[DestinationKey, str], int]:
    """`task_ops.finish`, then judge each attempt not recorded before, in the same commit.

    Returns the destinations it disabled, and how many events were queued.
    """
    seen = _recorded(conn, [o.attempt.id for o in outcomes if o.attempt is not None])
    task_ops.finish(conn, task_ops.Finishing.of(outcomes))
    ordered = judging.judged_order(outcomes, seen)
    if not ordered:
        return {}, 0
    healths = (
        {key: _health(conn, key) for key in judging.keys(ordered)} if judge.tracks_health else {}
    )
    judged, changed = judging.verdicts(judge, ordered, destinations, healths, now)
    for key, health in changed.items():
        _store_health(conn, key, health)
    requests = judging.disable_requests(judged)
    disabled = {key: requests[key] for key in requests if _disable(conn, key, now)}
    events = judging.events_of(judge, judged, destinations, disabled, now)
    add_events(conn, events, now)
    return disabled, len(events)


def _recorded(conn: sqlite3.Connection, attempt_ids: list[str]) -> set[str]:
    if not attempt_ids:
        return set()
    marks = ",".join("?" * len(attempt_ids))
    found = conn.execute(f"SELECT id FROM attempts WHERE id IN ({marks})", attempt_ids)
    return {row[0] for row in found}


def _health(conn: sqlite3.Connection, key: DestinationKey) -> Health:
    row = conn.execute(
        "SELECT consecutive_failures, exhausted_alerted_at FROM destination_health "
        "WHERE tenant_id = ? AND destination_id = ?",
        key,
    ).fetchone()
    return Health(row[0], row[1]) if row else Health()


def _store_health(conn: sqlite3.Connection, key: DestinationKey, health: Health) -> None:
    conn.execute(
        "INSERT INTO destination_health "
        "(tenant_id, destination_id, consecutive_failures, exhausted_alerted_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id, destination_id) DO UPDATE SET "
        "consecutive_failures = excluded.consecutive_failures, "
        "exhausted_alerted_at = excluded.exhausted_alerted_at",
        (*key, health.consecutive_failures, health.exhausted_alerted_at),
    )


def _disable(conn: sqlite3.Connection, key: DestinationKey, now: int) -> bool:
    """Compare-and-set: True only for the write that disabled a live, enabled destination."""
    changed = conn.execute(
        "UPDATE destinations SET disabled_at = ? WHERE tenant_id = ? AND id = ? "
        "AND disabled_at IS NULL AND deleted_at IS NULL",
        (now, *key),
    ).rowcount
    return bool(changed)


def add_events(conn: sqlite3.Connection, events: Sequence[OperatorRecord], now: int) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO operator_events (id, topic, body, created_at, visible_at) "
        "VALUES (?, ?, ?, ?, ?)",
        [(e.id, e.topic, e.body, e.created_at, now) for e in events],
    )


def claim(conn: sqlite3.Connection, now: int, limit: int, lease_ms: int) -> list[OperatorRecord]:
    found = conn.execute(
        "UPDATE operator_events SET visible_at = :lease_end WHERE id IN "
        "(SELECT id FROM operator_events WHERE visible_at <= :now "
        "ORDER BY visible_at, seq LIMIT :limit) "
        "RETURNING seq, id, topic, body, created_at, tries",
        {"now": now, "limit": limit, "lease_end": now + lease_ms},
    ).fetchall()
    found.sort()  # RETURNING order is unspecified: in queueing order
    return [OperatorRecord(r[1], r[2], bytes(r[3]), r[4], r[5]) for r in found]


def settle(conn: sqlite3.Connection, done: Sequence[str], retry: Sequence[tuple[str, int]]) -> None:
    conn.executemany("DELETE FROM operator_events WHERE id = ?", [(i,) for i in done])
    conn.executemany(
        "UPDATE operator_events SET visible_at = ?, tries = tries + 1 WHERE id = ?",
        [(visible_at, i) for i, visible_at in retry],
    )


def health(conn: sqlite3.Connection, tenant_id: str, destination_id: str) -> Health:
    return _health(conn, (tenant_id, destination_id))


def release_all_leases(conn: sqlite3.Connection, now: int) -> None:
    """At start-up of the only process on this database: events claimed before are due now."""
    conn.execute("UPDATE operator_events SET visible_at = ? WHERE visible_at > ?", (now, now))
