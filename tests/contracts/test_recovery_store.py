"""RecoveryStore contract: the undelivered scan and recovery jobs, on every backend.

Jobs queue tasks and are claimed from the whole table, so every test starts on an empty one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import cast

import pytest

from waypost.core.models import Outcome
from waypost.core.operator_records import OperatorRecord
from waypost.core.paging import PageRequest, TimeRange
from waypost.core.recovery import Advance, JobSpec, QueuedPair, RecoveryJob, Scan, Tried
from waypost.core.timefmt import now_ms
from waypost.storage.protocols import OperatorStore, RecoveryStore

from ._support import BASE, HOUR, Backend, attempt, event, record_attempts, uid

pytestmark = [pytest.mark.anyio, pytest.mark.clean_database]

LEASE = 60_000


def _store(backend: Backend) -> RecoveryStore:
    return cast(RecoveryStore, backend)


async def _three_events(backend: Backend) -> tuple[str, str, list[str]]:
    """e0 delivered to d1; e1 failed twice to d1; e2 never attempted (matched nothing)."""
    tenant, d1 = uid("ten"), uid("des")
    ids = [uid(f"e{n}") for n in range(3)]
    events = [event(ids[n], tenant, time=BASE + n * HOUR, topic=f"t.{n}") for n in range(3)]
    now = now_ms()
    for e in events:
        await backend.accept(replace(e, matched_destination_ids=()), now, now - HOUR)
    await record_attempts(
        backend,
        [
            attempt(uid("att"), events[0], d1, time=now, status="failed"),
            attempt(uid("att"), events[0], d1, time=now, number=2, status="success"),
            attempt(uid("att"), events[1], d1, time=now, status="failed"),
            attempt(uid("att"), events[1], d1, time=now, number=2, status="failed"),
        ],
    )
    return tenant, d1, ids


async def test_scan_for_a_destination_leaves_out_events_delivered_to_it(backend: Backend) -> None:
    tenant, d1, ids = await _three_events(backend)
    found = await _store(backend).scan_undelivered(Scan(tenant, d1))
    assert [c.event.id for c in found] == [ids[1], ids[2]]
    assert found[0].tried == {d1: Tried(2, False)}
    assert found[1].tried == {}


async def test_scan_of_every_destination_summarises_attempts(backend: Backend) -> None:
    tenant, d1, ids = await _three_events(backend)
    found = await _store(backend).scan_undelivered(Scan(tenant))
    assert [c.event.id for c in found] == ids
    assert found[0].tried == {d1: Tried(2, True)}


async def test_scan_filters_pages_and_orders(backend: Backend) -> None:
    tenant, _, ids = await _three_events(backend)
    store = _store(backend)
    by_topic = await store.scan_undelivered(Scan(tenant, topics=("t.2", "t.0")))
    assert [c.event.id for c in by_topic] == [ids[0], ids[2]]
    in_time = await store.scan_undelivered(Scan(tenant, time=TimeRange(gte=BASE + HOUR)))
    assert [c.event.id for c in in_time] == [ids[1], ids[2]]
    first = await store.scan_undelivered(Scan(tenant, limit=1))
    after = (first[0].event.time, first[0].event.id)
    rest = await store.scan_undelivered(Scan(tenant, after=after))
    assert [c.event.id for c in first + rest] == ids
    newest = await store.scan_undelivered(Scan(tenant, descending=True, limit=2))
    assert [c.event.id for c in newest] == [ids[2], ids[1]]
    assert await store.scan_undelivered(Scan(uid("other"))) == []


def _job(tenant: str, key: str | None = None, destination_id: str | None = None) -> RecoveryJob:
    now = now_ms()
    return RecoveryJob(
        id=uid("rcv"),
        tenant_id=tenant,
        spec=JobSpec(destination_id, ("a.b",), BASE, now, "all"),
        state="running",
        created_at=now,
        updated_at=now,
        idempotency_key=key,
    )


def _told(label: str) -> OperatorRecord:
    return OperatorRecord(uid(label), "recovery.job.created", b"{}", now_ms())


async def test_create_is_idempotent_on_the_tenants_key(backend: Backend) -> None:
    store = _store(backend)
    tenant = uid("ten")
    first, created = await store.create_recovery(_job(tenant, "k1", "d1"), [_told("op")])
    assert created and first.state == "running" and first.matched is None
    assert first.spec == JobSpec("d1", ("a.b",), BASE, first.spec.time_lt, "all")
    again, created_again = await store.create_recovery(_job(tenant, "k1"), [_told("op")])
    assert (again.id, created_again) == (first.id, False)
    other, other_created = await store.create_recovery(_job(uid("ten"), "k1"), [])
    assert other_created and other.id != first.id
    assert await store.get_recovery(first.id, tenant) == first
    assert await store.get_recovery(first.id, other.tenant_id) is None
    page = await store.list_recoveries((tenant,), PageRequest(limit=10))
    assert [j.id for j in page.items] == [first.id]
    outbox = await cast(OperatorStore, backend).claim_operator_events(100, LEASE)
    assert len(outbox) == 1  # only the job that was created told


async def test_a_step_queues_its_tasks_and_moves_the_cursor_in_one_commit(
    backend: Backend,
) -> None:
    tenant, d1, ids = await _three_events(backend)
    store = _store(backend)
    job, _ = await store.create_recovery(_job(tenant, destination_id=d1), [])
    claimed = await store.claim_recovery("owner-a", LEASE)
    assert claimed is not None and claimed.id == job.id
    assert await store.claim_recovery("owner-b", LEASE) is None  # leased
    events = await backend.get_events([(tenant, i) for i in ids])
    pair = QueuedPair(events[(tenant, ids[1])], d1, 3)
    now = now_ms()
    lost = Advance(job.id, "owner-b", now, LEASE, tasks=(pair,), cursor=(1, "x"))
    assert await store.advance_recovery(lost, []) is None
    assert await backend.claim(100, LEASE) == []  # nothing queued by the step that lost
    step = Advance(job.id, "owner-a", now, LEASE, tasks=(pair,), cursor=(BASE, ids[1]))
    moved = await store.advance_recovery(step, [])
    assert moved is not None
    assert (moved.enqueued, moved.pending, moved.cursor) == (1, 1, (BASE, ids[1]))
    [task] = await backend.claim(100, LEASE)
    assert (task.event.id, task.destination_id, task.attempt_number, task.manual) == (
        ids[1],
        d1,
        3,
        True,
    )
    made = attempt(uid("att"), task.event, d1, time=now_ms(), number=3, manual=True)
    await backend.finish([Outcome(task, made)])
    counted = await store.get_recovery(job.id, tenant)
    assert counted is not None
    assert (counted.delivered, counted.failed, counted.pending) == (1, 0, 0)
    done = await store.advance_recovery(
        Advance(job.id, "owner-a", now_ms(), LEASE, scan_done=True, matched=1, complete=True), []
    )
    assert done is not None and done.state == "completed" and done.finished_at is not None
    assert (done.matched, done.scan_done) == (1, True)
    assert await store.claim_recovery("owner-b", LEASE) is None  # completed jobs are not run


async def test_a_lapsed_lease_passes_the_job_on_and_the_old_owner_writes_nothing(
    backend: Backend,
) -> None:
    store = _store(backend)
    job, _ = await store.create_recovery(_job(uid("ten")), [])
    assert await store.claim_recovery("owner-a", -1) is not None  # lease already over
    taken = await store.claim_recovery("owner-b", LEASE)
    assert taken is not None and taken.lease_owner == "owner-b"
    assert await store.advance_recovery(Advance(job.id, "owner-a", now_ms(), LEASE), []) is None


async def test_cancel_drops_queued_tasks_and_stops_the_job(backend: Backend) -> None:
    tenant, d1, ids = await _three_events(backend)
    store = _store(backend)
    job, _ = await store.create_recovery(_job(tenant), [])
    await store.claim_recovery("owner-a", LEASE)
    events = await backend.get_events([(tenant, i) for i in ids])
    pairs = tuple(QueuedPair(events[(tenant, i)], d1, 1) for i in ids[1:])
    await store.advance_recovery(Advance(job.id, "owner-a", now_ms(), LEASE, tasks=pairs), [])
    cancelled = await store.cancel_recovery(job.id, tenant, now_ms(), [_told("cancel")])
    assert cancelled is not None and cancelled.state == "cancelled"
    assert cancelled.pending == 0
    assert await backend.claim(100, LEASE) == []
    assert await store.advance_recovery(Advance(job.id, "owner-a", now_ms(), LEASE), []) is None
    assert await store.cancel_recovery(job.id, uid("ten"), now_ms(), []) is None
    again = await store.cancel_recovery(job.id, tenant, now_ms(), [_told("cancel")])
    assert again is not None and again.state == "cancelled"
    outbox = await cast(OperatorStore, backend).claim_operator_events(100, LEASE)
    assert len(outbox) == 1  # the second cancel changed nothing and told nothing
