"""Recovery's SQL, shared by both SQL backends (`?` placeholders; PostgreSQL numbers them).

The candidate scan walks a tenant's events by (tenant_id, time, id) (events_by_tenant_time) and,
for one destination, leaves out each event that has a successful attempt to it (a probe of
attempts_by_event, which carries each attempt's status since migration 011). The attempts of the
events found are then summarised per destination with one GROUP BY over the same index.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from waypost.core.models import Event
from waypost.core.paging import Page, PageRequest
from waypost.core.recovery import Advance, Candidate, JobSpec, RecoveryJob, Scan, Tried
from waypost.storage import keyset, rows
from waypost.storage.keyset import Plan, Where


def scan_sql(scan: Scan) -> tuple[str, tuple[Any, ...]]:
    where = (
        Where()
        .add("e.tenant_id = ?", scan.tenant_id)
        .any_of("e.topic", scan.topics)
        .within("e.time", scan.time)
    )
    if scan.after is not None:
        op = "<" if scan.descending else ">"
        where = where.add(f"(e.time, e.id) {op} (?, ?)", *scan.after)
    if scan.destination_id is not None:
        where = where.add(
            "NOT EXISTS (SELECT 1 FROM attempts a WHERE a.tenant_id = e.tenant_id "
            "AND a.event_id = e.id AND a.destination_id = ? AND a.status = 'success')",
            scan.destination_id,
        )
    order = "DESC" if scan.descending else "ASC"
    columns = ", ".join(f"e.{c.strip()}" for c in rows.EVENT_COLUMNS.split(","))
    sql = (
        f"SELECT {columns} FROM events e WHERE {where.sql()} "
        f"ORDER BY e.time {order}, e.id {order} LIMIT ?"
    )
    return sql, (*where.params, scan.limit)


# Completed by each backend with its way of naming a list of event ids.
SUMMARY_SQL = (
    "SELECT event_id, destination_id, max(attempt_number), "
    "max(CASE WHEN status = 'success' THEN 1 ELSE 0 END) FROM attempts "
    "WHERE tenant_id = ? AND {event_ids} GROUP BY event_id, destination_id"
)


def candidates(events: Sequence[Event], summary: Sequence[Any]) -> list[Candidate]:
    tried: dict[str, dict[str, Tried]] = {}
    for event_id, destination_id, last, delivered in summary:
        tried.setdefault(event_id, {})[destination_id] = Tried(int(last), bool(delivered))
    return [Candidate(e, tried.get(e.id, {})) for e in events]


JOB_COLUMNS = (
    "id, tenant_id, idempotency_key, destination_id, topics, time_gte, time_lt, status, state, "
    "cursor_time, cursor_id, scan_done, matched, enqueued, delivered, failed, created_at, "
    "updated_at, finished_at, lease_owner"
)
# The job's tasks still queued: a column every read of a job adds to JOB_COLUMNS.
PENDING = (
    "(SELECT count(*) FROM recovery_tasks r JOIN tasks t ON t.id = r.task_id "
    "WHERE r.recovery_id = recoveries.id)"
)
SELECT_JOBS = f"SELECT {JOB_COLUMNS}, {PENDING} FROM recoveries"

INSERT_JOB = (
    "INSERT INTO recoveries (id, tenant_id, idempotency_key, destination_id, topics, time_gte, "
    "time_lt, status, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT DO NOTHING"
)


def job_values(job: RecoveryJob) -> tuple[Any, ...]:
    spec = job.spec
    return (
        job.id,
        job.tenant_id,
        job.idempotency_key,
        spec.destination_id,
        json.dumps(list(spec.topics)),
        spec.time_gte,
        spec.time_lt,
        spec.status,
        job.state,
        job.created_at,
        job.updated_at,
    )


def job(row: Any) -> RecoveryJob:
    (
        id_,
        tenant_id,
        key,
        destination_id,
        topics,
        gte,
        lt,
        status,
        state,
        cursor_time,
        cursor_id,
        scan_done,
        matched,
        enqueued,
        delivered,
        failed,
        created_at,
        updated_at,
        finished_at,
        owner,
        pending,
    ) = row
    return RecoveryJob(
        id=id_,
        tenant_id=tenant_id,
        spec=JobSpec(destination_id, tuple(json.loads(topics)), gte, lt, status),
        state=state,
        created_at=created_at,
        updated_at=updated_at,
        idempotency_key=key,
        cursor=None if cursor_time is None else (int(cursor_time), cursor_id),
        scan_done=bool(scan_done),
        matched=None if matched is None else int(matched),
        enqueued=int(enqueued),
        delivered=int(delivered),
        failed=int(failed),
        pending=int(pending),
        finished_at=finished_at,
        lease_owner=owner,
    )


# A running job whose lease has run out (or was never taken), oldest first.
def jobs_plan(tenant_ids: tuple[str, ...], request: PageRequest) -> Plan:
    """The tenants' jobs, a page by creation time (keyset paging)."""
    return keyset.plan(
        kind="rcv",
        select=SELECT_JOBS,
        where=Where().any_of("tenant_id", tenant_ids),
        sort="created_at",
        id_column="id",
        request=request,
    )


def jobs_page(plan: Plan, found: Sequence[Any]) -> Page[RecoveryJob]:
    return keyset.page(plan, found, job, lambda j: (j.created_at, j.id))


CLAIM_JOB = (
    "UPDATE recoveries SET lease_owner = ?, lease_until = ? WHERE id = (SELECT id FROM "
    "recoveries WHERE state = 'running' AND lease_until <= ? ORDER BY lease_until, created_at "
    "LIMIT 1{lock}) RETURNING id"
)

# The compare-and-set every step of a job makes: still running, still this owner's.
ADVANCE_JOB = (
    "UPDATE recoveries SET lease_until = ?, updated_at = ?, enqueued = enqueued + ?, "
    "cursor_time = coalesce(?, cursor_time), cursor_id = coalesce(?, cursor_id), "
    "scan_done = CASE WHEN ? THEN 1 ELSE scan_done END, matched = coalesce(?, matched), "
    "state = CASE WHEN ? THEN 'completed' ELSE state END, "
    "finished_at = CASE WHEN ? THEN ? ELSE finished_at END "
    "WHERE id = ? AND lease_owner = ? AND state = 'running' RETURNING id"
)


def advance_params(step: Advance) -> tuple[Any, ...]:
    cursor_time, cursor_id = step.cursor if step.cursor is not None else (None, None)
    return (
        step.now + step.lease_ms,
        step.now,
        len(step.tasks),
        cursor_time,
        cursor_id,
        step.scan_done,
        step.matched,
        step.complete,
        step.complete,
        step.now,
        step.job_id,
        step.owner,
    )


CANCEL_JOB = (
    "UPDATE recoveries SET state = 'cancelled', updated_at = ?, finished_at = ?, "
    "lease_owner = NULL WHERE id = ? AND tenant_id = ? AND state = 'running' RETURNING id"
)
# A cancelled job's tasks not yet claimed are dropped (those in flight finish).
DROP_QUEUED = (
    "DELETE FROM tasks WHERE id IN (SELECT task_id FROM recovery_tasks WHERE recovery_id = ?) "
    "AND {not_leased}"
)
