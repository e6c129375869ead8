"""Recovery in PostgreSQL: the candidate scan and recovery jobs (storage/sqlite/recovery_ops.py's
rules; jobs are claimed FOR UPDATE SKIP LOCKED, so two delivery processes never run one job)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from waypost.core.operator_records import OperatorRecord
from waypost.core.paging import Page, PageRequest
from waypost.core.recovery import Advance, Candidate, RecoveryJob, Scan
from waypost.storage import recovery_sql, rows
from waypost.storage.postgres import operator_ops
from waypost.storage.postgres.channels import TASKS_CHANNEL, notify
from waypost.storage.postgres.database import Conn, fetch


async def _job(conn: Conn, where: str, params: Sequence[Any]) -> RecoveryJob | None:
    found = await fetch(conn, f"{recovery_sql.SELECT_JOBS} WHERE {where}", params)
    return recovery_sql.job(found[0]) if found else None


async def scan(conn: Conn, wanted: Scan) -> list[Candidate]:
    sql, params = recovery_sql.scan_sql(wanted)
    events = [rows.event(row) for row in await fetch(conn, sql, params)]
    if not events:
        return []
    summary = await fetch(
        conn,
        recovery_sql.SUMMARY_SQL.format(event_ids="event_id = ANY(?::text[])"),
        (wanted.tenant_id, [e.id for e in events]),
    )
    return recovery_sql.candidates(events, summary)


async def get(conn: Conn, job_id: str, tenant_id: str) -> RecoveryJob | None:
    return await _job(conn, "id = ? AND tenant_id = ?", (job_id, tenant_id))


async def create(
    conn: Conn, job: RecoveryJob, outbox: Sequence[OperatorRecord], now: int
) -> tuple[RecoveryJob, bool]:
    inserted = await fetch(
        conn, recovery_sql.INSERT_JOB + " RETURNING id", recovery_sql.job_values(job)
    )
    if inserted:
        await operator_ops.add_events(conn, outbox, now)
        found = await get(conn, job.id, job.tenant_id)
    else:
        found = await _job(
            conn, "tenant_id = ? AND idempotency_key = ?", (job.tenant_id, job.idempotency_key)
        )
    assert found is not None, "a job that was not inserted has the same key"
    return found, bool(inserted)


async def list_(conn: Conn, tenant_ids: tuple[str, ...], request: PageRequest) -> Page[RecoveryJob]:
    plan = recovery_sql.jobs_plan(tenant_ids, request)
    return recovery_sql.jobs_page(plan, await fetch(conn, plan.sql, plan.params))


async def cancel(
    conn: Conn, job_id: str, tenant_id: str, now: int, outbox: Sequence[OperatorRecord]
) -> RecoveryJob | None:
    if await fetch(conn, recovery_sql.CANCEL_JOB, (now, now, job_id, tenant_id)):
        await fetch(conn, recovery_sql.DROP_QUEUED.format(not_leased="NOT leased"), (job_id,))
        await operator_ops.add_events(conn, outbox, now)
    return await get(conn, job_id, tenant_id)


async def claim(conn: Conn, owner: str, now: int, lease_ms: int) -> RecoveryJob | None:
    claimed = await fetch(
        conn,
        recovery_sql.CLAIM_JOB.format(lock=" FOR UPDATE SKIP LOCKED"),
        (owner, now + lease_ms, now),
    )
    return await _job(conn, "id = ?", (claimed[0][0],)) if claimed else None


async def advance(
    conn: Conn, step: Advance, outbox: Sequence[OperatorRecord]
) -> RecoveryJob | None:
    if not await fetch(conn, recovery_sql.ADVANCE_JOB, recovery_sql.advance_params(step)):
        return None
    if step.tasks:
        await conn.execute(
            "WITH queued AS (INSERT INTO tasks (event_id, tenant_id, destination_id, "
            "attempt_number, manual, visible_at) SELECT event_id, tenant_id, destination_id, n, "
            "TRUE, $5 FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[]) "
            "AS p(event_id, tenant_id, destination_id, n) RETURNING id) "
            "INSERT INTO recovery_tasks (task_id, recovery_id) SELECT id, $6 FROM queued",
            [p.event.id for p in step.tasks],
            [p.event.tenant_id for p in step.tasks],
            [p.destination_id for p in step.tasks],
            [p.attempt_number for p in step.tasks],
            step.now,
            step.job_id,
        )
        await notify(conn, TASKS_CHANNEL)
    await operator_ops.add_events(conn, outbox, step.now)
    return await _job(conn, "id = ?", (step.job_id,))
