"""LogRetention contract: what a retention sweep and a tenant erase delete, and what they keep.

The rules (storage/retention.py): attempts older than the cutoff go; an event older than the
cutoff goes unless a delivery task still needs it or an attempt of it is kept. Sweeps run in
small batches here (2 rows), so that the batching itself is exercised: the outcome must be the
same as one big delete. Sweeps see every tenant's rows, so on the shared PostgreSQL database
these tests start clean.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from waypost.core.models import Event
from waypost.core.paging import AttemptQuery, EventQuery, PageRequest
from waypost.core.timefmt import now_ms
from waypost.retention import DAY_MS, RetentionSweeper
from waypost.storage.retention import Deleted

from ._support import BASE, HOUR, Backend, attempt, event, record_attempts, uid

pytestmark = [pytest.mark.anyio, pytest.mark.clean_database]

CUTOFF = BASE + 10 * DAY_MS
BATCH = 2


async def _accept(backend: Backend, *events: Event) -> None:
    for e in events:
        now = now_ms()
        assert not await backend.accept(e, now, now - HOUR)


async def _event_ids(backend: Backend, tenant_id: str) -> set[str]:
    page = await backend.list_events(EventQuery(tenant_ids=(tenant_id,)), PageRequest(limit=1000))
    return {e.id for e in page.items}


async def _attempt_ids(backend: Backend, tenant_id: str) -> set[str]:
    query = AttemptQuery(tenant_ids=(tenant_id,))
    page = await backend.list_attempts(query, PageRequest(limit=1000))
    return {a.id for a in page.items}


async def _log(backend: Backend, tenant_id: str) -> dict[str, Any]:
    """A tenant's log with every case retention distinguishes; returns the ids of each case."""
    old = [event(uid("evt"), tenant_id, time=BASE + i * HOUR, matched=("d1",)) for i in range(5)]
    unmatched_old = event(uid("evt"), tenant_id, time=BASE)  # no task, no attempt
    retried_lately = event(uid("evt"), tenant_id, time=BASE + HOUR, matched=("d1",))
    recent = event(uid("evt"), tenant_id, time=CUTOFF + HOUR, matched=("d1",))
    at_cutoff = event(uid("evt"), tenant_id, time=CUTOFF, matched=("d1",))
    await _accept(backend, *old, unmatched_old, retried_lately, recent, at_cutoff)
    old_attempts = [
        attempt(uid("atm"), e, "d1", time=e.time + n * HOUR, number=n) for e in old for n in (1, 2)
    ]
    early = attempt(uid("atm"), retried_lately, "d1", time=BASE + 2 * HOUR)
    late = attempt(uid("atm"), retried_lately, "d1", time=CUTOFF + DAY_MS, number=2, manual=True)
    newer = [attempt(uid("atm"), e, "d1", time=e.time + 1) for e in (recent, at_cutoff)]
    await record_attempts(backend, [*old_attempts, early, late, *newer])
    return {
        "deleted_events": {e.id for e in (*old, unmatched_old)},
        "kept_events": {retried_lately.id, recent.id, at_cutoff.id},
        "deleted_attempts": {a.id for a in (*old_attempts, early)},
        "kept_attempts": {late.id, *(a.id for a in newer)},
    }


async def _pending(backend: Backend, *logs: tuple[str, dict[str, Any]]) -> None:
    """An old event per tenant whose delivery task is still queued: accepted after every
    `_log` (record_attempts drains the queue), it must survive."""
    for tenant_id, case in logs:
        pending = event(uid("evt"), tenant_id, time=BASE, matched=("d1",))
        await _accept(backend, pending)
        case["kept_events"].add(pending.id)


async def test_a_sweep_deletes_exactly_what_is_past_the_period(backend: Backend) -> None:
    mine, other = uid("tnt"), uid("tnt")
    expected = await _log(backend, mine)
    theirs = await _log(backend, other)
    await _pending(backend, (mine, expected), (other, theirs))

    deleted = await backend.delete_logs_before(CUTOFF, BATCH)

    assert deleted == Deleted(
        events=2 * len(expected["deleted_events"]), attempts=2 * len(expected["deleted_attempts"])
    )
    for tenant_id, case in ((mine, expected), (other, theirs)):
        assert await _event_ids(backend, tenant_id) == case["kept_events"]
        assert await _attempt_ids(backend, tenant_id) == case["kept_attempts"]
    assert await backend.delete_logs_before(CUTOFF, BATCH) == Deleted(), "nothing more to do"


async def test_an_event_with_a_queued_delivery_survives_and_is_delivered(backend: Backend) -> None:
    tenant_id = uid("tnt")
    pending = event(uid("evt"), tenant_id, time=BASE, matched=("d1", "d2"))
    await _accept(backend, pending)

    await backend.delete_logs_before(now_ms(), BATCH)

    tasks = await backend.claim(100, 60_000)
    mine = [t for t in tasks if t.event.id == pending.id]
    assert {t.destination_id for t in mine} == {"d1", "d2"}
    assert all(t.event == pending for t in mine)
    assert await backend.get_event(pending.id) == pending


async def test_erasing_a_tenant_takes_its_logs_only(backend: Backend) -> None:
    mine, other = uid("tnt"), uid("tnt")
    expected = await _log(backend, mine)
    theirs = await _log(backend, other)
    await _pending(backend, (mine, expected), (other, theirs))

    deleted = await backend.erase_tenant_logs(mine, BATCH)

    every_attempt = expected["deleted_attempts"] | expected["kept_attempts"]
    pending_kept = 1  # the event whose delivery is still queued
    every_event = expected["deleted_events"] | expected["kept_events"]
    assert deleted == Deleted(events=len(every_event) - pending_kept, attempts=len(every_attempt))
    assert len(await _event_ids(backend, mine)) == pending_kept
    assert await _attempt_ids(backend, mine) == set()
    assert await _event_ids(backend, other) == theirs["deleted_events"] | theirs["kept_events"]
    assert await _attempt_ids(backend, other) == (
        theirs["deleted_attempts"] | theirs["kept_attempts"]
    )


async def test_the_sweeper_deletes_what_is_older_than_the_ttl(backend: Backend) -> None:
    tenant_id = uid("tnt")
    expected = await _log(backend, tenant_id)
    await _pending(backend, (tenant_id, expected))
    clock = CUTOFF + 30 * DAY_MS
    sweeper = RetentionSweeper(
        backend, ttl_days=30, interval_seconds=3600, batch_size=BATCH, clock=lambda: clock
    )
    assert sweeper.enabled
    await sweeper.sweep()
    assert await _event_ids(backend, tenant_id) == expected["kept_events"]
    assert await _attempt_ids(backend, tenant_id) == expected["kept_attempts"]
    off = RetentionSweeper(backend, ttl_days=0, interval_seconds=1, batch_size=BATCH)
    assert not off.enabled
    await off.run()  # returns at once: retention is off


# PostgreSQL only: one process owns the embedded and memory stores, so no one else can sweep.
@pytest.mark.parametrize("make_backend", ["postgres"], indirect=True)
async def test_one_process_sweeps_at_a_time(
    backend: Backend, request: pytest.FixtureRequest
) -> None:
    """PostgreSQL: while another session holds the retention lock, a sweep steps aside."""
    asyncpg: Any = importlib.import_module("asyncpg")
    lock = importlib.import_module("waypost.storage.postgres.retention_ops").RETENTION_LOCK
    other = await asyncpg.connect(request.getfixturevalue("postgres_database").dsn)
    try:
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", lock)
        assert await backend.delete_logs_before(now_ms(), BATCH) is None
        await other.execute("SELECT pg_advisory_unlock($1)", lock)
        assert await backend.delete_logs_before(now_ms(), BATCH) == Deleted()
    finally:
        await other.close()
