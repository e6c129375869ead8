"""Recovery in SQLite: the candidate scan and recovery jobs (synchronous, run by `Database`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from waypost.core.operator_records import OperatorRecord
from waypost.core.paging import Page, PageRequest
from waypost.core.recovery import Advance, Candidate, RecoveryJob, Scan
from waypost.storage import recovery_sql, rows
from waypost.storage.sqlite import operator_ops


def scan(conn: sqlite3.Connection, wanted: Scan) -> list[Candidate]:
    sql, params = recovery_sql.scan_sql(wanted)
    events = [rows.event(row) for row in conn.execute(sql, params)]
    if not events:
        return []
    marks = ",".join("?" * len(events))
    summary = conn.execute(
        recovery_sql.SUMMARY_SQL.format(event_ids=f"event_id IN ({marks})"),
        (wanted.tenant_id, *(e.id for e in events)),
    ).fetchall()
    return recovery_sql.candidates(events, summary)


def get(conn: sqlite3.Connection, job_id: str, tenant_id: str) -> RecoveryJob | None:
    row = conn.execute(
        recovery_sql.SELECT_JOBS + " WHERE id = ? AND tenant_id = ?", (job_id, tenant_id)
    ).fetchone()
    return None if row is None else recovery_sql.job(row)


def create(
    conn: sqlite3.Connection, job: RecoveryJob, outbox: Sequence[OperatorRecord], now: int
) -> tuple[RecoveryJob, bool]:
    """Store a new job, or find the tenant's job of the same idempotency key."""
    inserted = conn.execute(recovery_sql.INSERT_JOB, recovery_sql.job_values(job)).rowcount
    if inserted:
        operator_ops.add_events(conn, outbox, now)
        found = get(conn, job.id, job.tenant_id)
    else:
        row = conn.execute(
            recovery_sql.SELECT_JOBS + " WHERE tenant_id = ? AND idempotency_key = ?",
            (job.tenant_id, job.idempotency_key),
        ).fetchone()
        found = None if row is None else recovery_sql.job(row)
    assert found is not None, "a job that was not inserted has the same key"
    return found, bool(inserted)


def list_(
    conn: sqlite3.Connection, tenant_ids: tuple[str, ...], request: PageRequest
) -> Page[RecoveryJob]:
    plan = recovery_sql.jobs_plan(tenant_ids, request)
    return recovery_sql.jobs_page(plan, conn.execute(plan.sql, plan.params).fetchall())


def cancel(
    conn: sqlite3.Connection,
    job_id: str,
    tenant_id: str,
    now: int,
    outbox: Sequence[OperatorRecord],
) -> RecoveryJob | None:
    if conn.execute(recovery_sql.CANCEL_JOB, (now, now, job_id, tenant_id)).fetchone():
        conn.execute(recovery_sql.DROP_QUEUED.format(not_leased="leased = 0"), (job_id,))
        operator_ops.add_events(conn, outbox, now)
    return get(conn, job_id, tenant_id)


def claim(conn: sqlite3.Connection, owner: str, now: int, lease_ms: int) -> RecoveryJob | None:
    row = conn.execute(
        recovery_sql.CLAIM_JOB.format(lock=""), (owner, now + lease_ms, now)
    ).fetchone()
    if row is None:
        return None
    found = conn.execute(recovery_sql.SELECT_JOBS + " WHERE id = ?", (row[0],)).fetchone()
    return recovery_sql.job(found)


def advance(
    conn: sqlite3.Connection, step: Advance, outbox: Sequence[OperatorRecord]
) -> RecoveryJob | None:
    """Queue the step's tasks and move the job on in this commit; None when the job is no
    longer running or no longer `step.owner`'s (nothing is queued then)."""
    if conn.execute(recovery_sql.ADVANCE_JOB, recovery_sql.advance_params(step)).fetchone() is None:
        return None
    for pair in step.tasks:
        task_id = conn.execute(
            "INSERT INTO tasks (event_id, tenant_id, destination_id, attempt_number, manual, "
            "visible_at) VALUES (?, ?, ?, ?, 1, ?) RETURNING id",
            (
                pair.event.id,
                pair.event.tenant_id,
                pair.destination_id,
                pair.attempt_number,
                step.now,
            ),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO recovery_tasks (task_id, recovery_id) VALUES (?, ?)",
            (task_id, step.job_id),
        )
    operator_ops.add_events(conn, outbox, step.now)
    found = conn.execute(recovery_sql.SELECT_JOBS + " WHERE id = ?", (step.job_id,)).fetchone()
    return recovery_sql.job(found)
