"""`MemoryBackend`: the whole `Backend` protocol over plain dicts, for tests and trying things out.

It is not storage. Everything it holds lives in the instance and is lost when the process exits
(or the backend is closed), and configuration never chooses it: `bootstrap` builds only SQLite
and PostgreSQL. It is a test double that passes the same contract suite (tests/contracts) as
those two, with the same rules; storage/sqlite/*_ops.py is the reference it follows.

Simple over fast: every listing filters and sorts everything on each read. What keeps it
honest as a stand-in for a database:

- Records are kept as the rows `storage.rows` makes for SQL (tuples of immutable values) and
  every read builds fresh records from them, so values read back normalised as from a database
  (an empty map as None, data through a JSON round trip), and nothing a caller holds aliases
  what is stored.
- Every call yields to the event loop once, as I/O would, then runs to its end without another
  await: each call is atomic, as one transaction is, and concurrent callers interleave.
- A deleted tenant or destination is removed outright: no read could tell soft deletion apart.
- Usable between `open()` and `close()`, and opened once: a second `open()` is refused with
  ConfigError, as SQLite's lock refuses a second opener of its folder; calls when not open
  raise StoreError. There is no second instance "on the same data": the data is the instance.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from support.memory_store import listing
from support.memory_store import metrics as memory_metrics
from support.memory_store import retention as memory_retention
from support.memory_store.operator import OperatorState
from waypost.core.metrics import MetricsQuery, Tally
from waypost.core.models import (
    Attempt,
    DeliveryTask,
    Destination,
    Event,
    EventKey,
    Outcome,
    PendingRetry,
    RetryPair,
    StrMap,
    Tenant,
    retry_key,
)
from waypost.core.operator_records import Health, OperatorRecord, OutcomeJudge
from waypost.core.paging import AttemptQuery, EventQuery, Page, PageRequest
from waypost.core.recovery import Advance, Candidate, RecoveryJob, Scan, Tried
from waypost.core.timefmt import now_ms
from waypost.errors import ConfigError, ConflictError, StoreError
from waypost.storage import judging, retention, rows
from waypost.storage.waker import Waker

Row = tuple[Any, ...]


@dataclass(slots=True)
class _Task:
    """A row of the delivery queue (the `tasks` table of storage/sqlite/001_initial.sql)."""

    id: int
    event_id: str
    tenant_id: str
    destination_id: str
    attempt_number: int
    manual: bool
    visible_at: int  # claimable once passed; a claim moves it to the end of the lease
    claims: int = 0
    generation: int = 1  # bumped when a retry replaces this row: stale finishes miss it
    retry_key: str | None = None  # DeliveryTask.retry_key on automatic retries, unique
    leased: bool = False


class MemoryBackend:
    """Tenants, the event/attempt log and the delivery queue in this process's memory only.

    Loses everything on exit; never chosen by configuration. A test double that passes the
    same storage contract suite as the SQLite and PostgreSQL backends.
    """

    def __init__(self) -> None:
        self._state = "new"  # "new" → "open" → "closed"
        self._tenants: dict[str, Row] = {}  # id → rows.TENANT_COLUMNS
        self._destinations: dict[tuple[str, str], Row] = {}  # (tenant, id) → DESTINATION_COLUMNS
        # (tenant, id) → (EVENT_COLUMNS, accepted_at): events are their tenant's
        self._events: dict[EventKey, tuple[Row, int]] = {}
        self._attempts: dict[str, Row] = {}  # id → ATTEMPT_COLUMNS
        self._tasks: dict[int, _Task] = {}
        self._last_task_id = 0
        self._work = Waker()
        self._operator = OperatorState()
        self._operator_work = Waker()
        self._recoveries: dict[str, tuple[RecoveryJob, int]] = {}  # id → (job, lease_until)
        self._recovery_tasks: dict[int, str] = {}  # task id → its job's id

    async def open(self) -> None:
        if self._state != "new":
            raise ConfigError(f"this MemoryBackend is {self._state} already: it opens once")
        self._state = "open"

    async def close(self) -> None:
        self._state = "closed"
        self._tenants, self._destinations, self._events = {}, {}, {}
        self._attempts, self._tasks = {}, {}
        self._operator.clear()

    async def ping(self) -> None:
        await self._turn()

    async def _turn(self) -> None:
        """Where every call gives way to the event loop, as a database round trip would."""
        await asyncio.sleep(0)
        if self._state != "open":
            raise StoreError(f"the memory backend is {self._state}, not open")

    # Tenants and destinations

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        await self._turn()
        row = self._tenants.get(tenant_id)
        return rows.tenant(row) if row else None

    async def upsert_tenant(
        self, tenant_id: str, metadata: StrMap | None, now: int
    ) -> tuple[Tenant, bool]:
        """Replace the metadata of a tenant, or create it (again, if it was deleted)."""
        await self._turn()
        existing = self._tenants.get(tenant_id)
        created_at = now if existing is None else rows.tenant(existing).created_at
        meta = rows.dump(metadata) if metadata else None
        self._tenants[tenant_id] = (tenant_id, meta, created_at, now)
        return rows.tenant(self._tenants[tenant_id]), existing is None

    async def delete_tenant(self, tenant_id: str, now: int) -> bool:
        await self._turn()
        for key in [key for key in self._destinations if key[0] == tenant_id]:
            del self._destinations[key]
        return self._tenants.pop(tenant_id, None) is not None

    async def list_tenants(self, ids: tuple[str, ...], request: PageRequest) -> Page[Tenant]:
        await self._turn()
        found = [rows.tenant(row) for row in self._tenants.values() if listing.any_of(row[0], ids)]
        page = listing.page("tnt", found, lambda t: (t.created_at, t.id), request)
        return Page(page.items, page.next, page.prev, len(found))

    async def list_destinations(self, tenant_id: str) -> list[Destination]:
        await self._turn()
        found = [
            rows.destination(r, None) for (t, _), r in self._destinations.items() if t == tenant_id
        ]
        return sorted(found, key=lambda d: (d.created_at, d.id))

    async def get_destination(self, tenant_id: str, destination_id: str) -> Destination | None:
        await self._turn()
        row = self._destinations.get((tenant_id, destination_id))
        return rows.destination(row, None) if row else None

    async def create_destination(self, destination: Destination, limit: int) -> None:
        await self._turn()
        key = (destination.tenant_id, destination.id)
        if key in self._destinations:
            raise ConflictError("destination already exists")
        if sum(t == destination.tenant_id for t, _ in self._destinations) >= limit:
            raise ConflictError("maximum number of destinations per tenant reached")
        self._destinations[key] = rows.destination_values(destination, None)

    async def update_destination(self, destination: Destination) -> bool:
        await self._turn()
        key = (destination.tenant_id, destination.id)
        old = self._destinations.get(key)
        if old is None:
            return False
        self._destinations[key] = rows.destination_values(destination, None)
        if destination.enabled and not rows.destination(old, None).enabled:
            self._operator.forget(key)  # re-enabled: its run of failures starts again
        return True

    async def delete_destination(self, tenant_id: str, destination_id: str, now: int) -> bool:
        await self._turn()
        self._operator.forget((tenant_id, destination_id))
        return self._destinations.pop((tenant_id, destination_id), None) is not None

    # The event and attempt log

    async def get_event(self, event_id: str, tenant_id: str | None = None) -> Event | None:
        await self._turn()
        if tenant_id is not None:
            return self._event((tenant_id, event_id))
        found = [rows.event(row) for (_, id_), (row, _) in self._events.items() if id_ == event_id]
        return rows.the_event(found, event_id)

    def _event(self, key: EventKey) -> Event | None:
        stored = self._events.get(key)
        return rows.event(stored[0]) if stored else None

    async def get_events(self, keys: list[EventKey]) -> dict[EventKey, Event]:
        await self._turn()
        return {key: e for key in keys if (e := self._event(key)) is not None}

    async def list_events(self, query: EventQuery, request: PageRequest) -> Page[Event]:
        await self._turn()

        def wanted(e: Event) -> bool:
            return (
                listing.any_of(e.tenant_id, query.tenant_ids)
                and listing.any_of(e.id, query.ids)
                and listing.any_of(e.topic, query.topics)
                and listing.any_in(e.matched_destination_ids, query.destination_ids)
                and listing.within(e.time, query.time)
            )

        found = [e for e in (rows.event(row) for row, _ in self._events.values()) if wanted(e)]
        return listing.page("evt", found, lambda e: (e.time, e.id), request)

    async def get_attempt(self, attempt_id: str, tenant_id: str | None = None) -> Attempt | None:
        await self._turn()
        row = self._attempts.get(attempt_id)
        found = rows.attempt(row) if row else None
        return found if found and tenant_id in (None, found.tenant_id) else None

    async def list_attempts(self, query: AttemptQuery, request: PageRequest) -> Page[Attempt]:
        await self._turn()

        def wanted(a: Attempt) -> bool:
            return (
                listing.any_of(a.tenant_id, query.tenant_ids)
                and listing.any_of(a.event_id, query.event_ids)
                and listing.any_of(a.destination_id, query.destination_ids)
                and listing.any_of(a.destination_type, query.destination_types)
                and listing.any_of(a.topic, query.topics)
                and (not query.status or a.status == query.status)
                and listing.within(a.time, query.time)
            )

        found = [a for a in map(rows.attempt, self._attempts.values()) if wanted(a)]
        return listing.page("att", found, lambda a: (a.time, a.id), request)

    async def latest_attempt(
        self, event_id: str, destination_id: str, tenant_id: str | None = None
    ) -> Attempt | None:
        await self._turn()
        found = [
            a
            for a in map(rows.attempt, self._attempts.values())
            if (a.event_id, a.destination_id) == (event_id, destination_id)
            and tenant_id in (None, a.tenant_id)
        ]
        return max(found, key=lambda a: (a.attempt_number, a.time), default=None)

    async def pending_retries(self, pairs: Sequence[RetryPair]) -> dict[RetryPair, PendingRetry]:
        await self._turn()
        keys = {retry_key(*pair): pair for pair in pairs}
        return {
            keys[t.retry_key]: PendingRetry(t.attempt_number, t.visible_at)
            for t in self._tasks.values()
            if t.retry_key in keys and not t.leased
        }

    # Metrics and retention

    async def metrics_tallies(self, query: MetricsQuery) -> list[Tally]:
        await self._turn()
        if query.kind == "events":
            events = (rows.event(row) for row, _ in self._events.values())
            return memory_metrics.event_tallies(query, events)
        return memory_metrics.attempt_tallies(query, map(rows.attempt, self._attempts.values()))

    async def delete_logs_before(self, cutoff: int, batch_size: int) -> retention.Deleted:
        event_wanted, attempt_wanted = memory_retention.before(cutoff)
        return await retention.sweep(
            lambda: self._retention_batch(batch_size, event_wanted, attempt_wanted), batch_size
        )

    async def erase_tenant_logs(self, tenant_id: str, batch_size: int) -> retention.Deleted:
        event_wanted, attempt_wanted = memory_retention.of_tenant(tenant_id)
        return await retention.sweep(
            lambda: self._retention_batch(batch_size, event_wanted, attempt_wanted), batch_size
        )

    async def _retention_batch(
        self,
        batch_size: int,
        event_wanted: memory_retention.RowTest,
        attempt_wanted: memory_retention.RowTest,
    ) -> retention.Deleted:
        await self._turn()
        return memory_retention.delete_batch(
            self._events,
            self._attempts,
            {(t.tenant_id, t.event_id) for t in self._tasks.values()},
            batch_size,
            event_wanted=event_wanted,
            attempt_wanted=attempt_wanted,
        )

    # The delivery queue

    async def accept(self, event: Event, now: int, dedupe_after: int) -> bool:
        """Store a published event and queue its first deliveries. True when it is a duplicate.

        The rules of storage/sqlite/task_ops.accept_event: an event of the same tenant stored
        earlier under the same id is kept if it matched destinations, unless it was accepted
        before `dedupe_after` and this one matches too; keeping it makes this publish a
        duplicate if it matches.
        """
        await self._turn()
        matches = bool(event.matched_destination_ids)
        seen = self._events.get(rows.event_key(event))
        if seen is not None:
            kept_matched = bool(rows.event(seen[0]).matched_destination_ids)
            expired = seen[1] < dedupe_after
            if kept_matched and not (expired and matches):
                return matches
        self._events[rows.event_key(event)] = (rows.event_values(event), now)
        for destination_id in event.matched_destination_ids:
            self._enqueue(event, destination_id, 1, manual=False, visible_at=now)
        if matches:
            self._work.set()
        return False

    def _enqueue(
        self,
        event: Event,
        destination_id: str,
        attempt_number: int,
        *,
        manual: bool,
        visible_at: int,
        retry_key: str | None = None,
    ) -> int:
        self._last_task_id += 1
        self._tasks[self._last_task_id] = _Task(
            self._last_task_id,
            event.id,
            event.tenant_id,
            destination_id,
            attempt_number,
            manual,
            visible_at,
            retry_key=retry_key,
        )
        return self._last_task_id

    async def enqueue_manual(self, event: Event, destination_id: str, attempt_number: int) -> None:
        await self._turn()
        self._enqueue(event, destination_id, attempt_number, manual=True, visible_at=now_ms())
        self._work.set()

    async def claim(self, limit: int, lease_ms: int) -> list[DeliveryTask]:
        """Lease up to `limit` visible tasks, earliest due first, until `now + lease_ms`."""
        await self._turn()
        now = now_ms()
        due = sorted(
            (t for t in self._tasks.values() if t.visible_at <= now),
            key=lambda t: (t.visible_at, t.id),
        )
        claimed = []
        for task in due[:limit]:
            task.visible_at = now + lease_ms
            task.claims += 1
            task.leased = True
            event = self._event((task.tenant_id, task.event_id))
            if event is None:  # not stored (a manual task for an unknown id): nothing to deliver
                del self._tasks[task.id]
                continue
            claimed.append(
                DeliveryTask(
                    task.id,
                    event,
                    task.destination_id,
                    task.attempt_number,
                    task.manual,
                    task.generation,
                    task.claims,
                )
            )
        return claimed

    async def finish(self, outcomes: list[Outcome]) -> None:
        """Record attempts and settle each task and its pending retry, all in one step."""
        judge = self._operator.judge
        if judge is not None:
            destinations = await judging.destinations_of(outcomes, self.get_destination)
        await self._turn()
        seen = {o.attempt.id for o in outcomes if o.attempt and o.attempt.id in self._attempts}
        for outcome in outcomes:
            if outcome.attempt is not None:
                self._attempts[outcome.attempt.id] = rows.attempt_values(outcome.attempt)
        self._count_recovered(outcomes)
        for outcome in outcomes:
            task = outcome.task
            held = self._tasks.get(task.id)
            if held is not None and held.generation == task.generation:
                del self._tasks[task.id]  # unless a retry replaced it meanwhile
            if outcome.retry_at is not None:
                self._schedule_retry(task, outcome.retry_at)
            elif outcome.cancel_retry:
                for pending in self._retries(task.retry_key):
                    del self._tasks[pending.id]
        if any(o.retry_at is not None for o in outcomes):
            self._work.set()  # the scheduler may need to wake earlier than it planned
        if judge is not None and self._operator.judge_recorded(
            judge, outcomes, seen, destinations, self._disable, now_ms()
        ):
            self._operator_work.set()

    def _retries(self, retry_key: str) -> list[_Task]:
        """The pending automatic retry of an (event, destination) pair: none or one."""
        return [t for t in self._tasks.values() if t.retry_key == retry_key]

    def _schedule_retry(self, task: DeliveryTask, visible_at: int) -> None:
        """Attempt `task.attempt_number + 1`, replacing the pending retry of the pair if any."""
        pending = self._retries(task.retry_key)
        if not pending:
            number = task.attempt_number + 1
            self._enqueue(
                task.event,
                task.destination_id,
                number,
                manual=False,
                visible_at=visible_at,
                retry_key=task.retry_key,
            )
            return
        [replaced] = pending  # retry_key is unique
        replaced.attempt_number = task.attempt_number + 1
        replaced.visible_at = visible_at
        replaced.claims = 0
        replaced.generation += 1

    async def release(self, task: DeliveryTask, delay_ms: int) -> None:
        """Give a claimed task back (no attempt was made), visible again after `delay_ms`."""
        await self._turn()
        held = self._tasks.get(task.id)
        if held is not None and held.generation == task.generation:
            held.visible_at = now_ms() + delay_ms
            held.leased = False

    async def defer(self, deferred: list[tuple[DeliveryTask, int]]) -> None:
        """Give claimed tasks back unattempted (their destination was busy), claim uncounted."""
        await self._turn()
        for task, visible_at in deferred:
            held = self._tasks.get(task.id)
            if held is not None and held.generation == task.generation:
                held.visible_at = visible_at
                held.claims = max(held.claims - 1, 0)
                held.leased = False

    async def next_visible_at(self) -> int | None:
        await self._turn()
        return min((t.visible_at for t in self._tasks.values()), default=None)

    async def count_due(self, now: int, limit: int) -> int:
        await self._turn()
        return min(limit, sum(1 for t in self._tasks.values() if t.visible_at <= now))

    def wake(self) -> None:
        self._work.set()

    async def wait_for_work(self, timeout: float) -> None:
        """Return when new work was queued, or after `timeout` seconds."""
        await self._work.wait_at_most(timeout)

    # Operator events and alerts

    def judge_outcomes(self, judge: OutcomeJudge | None) -> None:
        self._operator.judge = judge

    def _disable(self, key: tuple[str, str], now: int) -> bool:
        """Compare-and-set: True only when this disabled a live, enabled destination."""
        row = self._destinations.get(key)
        if row is None or not rows.destination(row, None).enabled:
            return False
        disabled = replace(rows.destination(row, None), disabled_at=now)
        self._destinations[key] = rows.destination_values(disabled, None)
        return True

    async def add_operator_events(self, events: Sequence[OperatorRecord]) -> None:
        await self._turn()
        self._operator.add(events, now_ms())
        if events:
            self._operator_work.set()

    async def claim_operator_events(self, limit: int, lease_ms: int) -> list[OperatorRecord]:
        await self._turn()
        return self._operator.claim(now_ms(), limit, lease_ms)

    async def settle_operator_events(
        self, done: Sequence[str], retry: Sequence[tuple[str, int]]
    ) -> None:
        await self._turn()
        self._operator.settle(done, retry)

    async def destination_health(self, tenant_id: str, destination_id: str) -> Health:
        await self._turn()
        return self._operator.health((tenant_id, destination_id))

    async def wait_for_operator_events(self, timeout: float) -> None:
        await self._operator_work.wait_at_most(timeout)

    # Recovery

    def _job(self, job_id: str) -> RecoveryJob:
        job, _ = self._recoveries[job_id]
        pending = sum(
            1 for t, j in self._recovery_tasks.items() if j == job_id and t in self._tasks
        )
        return replace(job, pending=pending)

    async def scan_undelivered(self, scan: Scan) -> list[Candidate]:
        await self._turn()
        tried: dict[tuple[str, str], Tried] = {}
        for attempt in map(rows.attempt, self._attempts.values()):
            if attempt.tenant_id != scan.tenant_id:
                continue
            key = (attempt.event_id, attempt.destination_id)
            before = tried.get(key, Tried(0, False))
            tried[key] = Tried(
                max(before.last_number, attempt.attempt_number),
                before.delivered or attempt.status == "success",
            )
        events = [
            e
            for e in (rows.event(row) for row, _ in self._events.values())
            if e.tenant_id == scan.tenant_id
            and listing.any_of(e.topic, scan.topics)
            and listing.within(e.time, scan.time)
            and not (
                scan.destination_id is not None
                and (found := tried.get((e.id, scan.destination_id))) is not None
                and found.delivered
            )
            and (
                scan.after is None
                or ((e.time, e.id) < scan.after if scan.descending else (e.time, e.id) > scan.after)
            )
        ]
        events.sort(key=lambda e: (e.time, e.id), reverse=scan.descending)
        return [
            Candidate(e, {d: t for (event_id, d), t in tried.items() if event_id == e.id})
            for e in events[: scan.limit]
        ]

    async def create_recovery(
        self, job: RecoveryJob, outbox: Sequence[OperatorRecord]
    ) -> tuple[RecoveryJob, bool]:
        await self._turn()
        for held, _ in self._recoveries.values():
            if (
                job.idempotency_key is not None
                and held.tenant_id == job.tenant_id
                and held.idempotency_key == job.idempotency_key
            ):
                return self._job(held.id), False
        if job.id in self._recoveries:
            raise ConflictError("recovery id exists")
        self._recoveries[job.id] = (job, 0)
        self._operator.add(outbox, now_ms())
        if outbox:
            self._operator_work.set()
        return self._job(job.id), True

    async def get_recovery(self, job_id: str, tenant_id: str) -> RecoveryJob | None:
        await self._turn()
        held = self._recoveries.get(job_id)
        return self._job(job_id) if held and held[0].tenant_id == tenant_id else None

    async def list_recoveries(
        self, tenant_ids: tuple[str, ...], request: PageRequest
    ) -> Page[RecoveryJob]:
        await self._turn()
        found = [
            self._job(job.id)
            for job, _ in self._recoveries.values()
            if listing.any_of(job.tenant_id, tenant_ids)
        ]
        return listing.page("rcv", found, lambda j: (j.created_at, j.id), request)

    async def cancel_recovery(
        self, job_id: str, tenant_id: str, now: int, outbox: Sequence[OperatorRecord]
    ) -> RecoveryJob | None:
        await self._turn()
        held = self._recoveries.get(job_id)
        if held is None or held[0].tenant_id != tenant_id:
            return None
        job, lease = held
        if job.state == "running":
            cancelled = replace(
                job, state="cancelled", updated_at=now, finished_at=now, lease_owner=None
            )
            self._recoveries[job_id] = (cancelled, lease)
            for task_id, owner in list(self._recovery_tasks.items()):
                task = self._tasks.get(task_id)
                if owner == job_id and task is not None and not task.leased:
                    del self._tasks[task_id]
            self._operator.add(outbox, now)
            if outbox:
                self._operator_work.set()
        return self._job(job_id)

    async def claim_recovery(self, owner: str, lease_ms: int) -> RecoveryJob | None:
        await self._turn()
        now = now_ms()
        free = sorted(
            (
                (lease, job.created_at, job.id)
                for job, lease in self._recoveries.values()
                if job.state == "running" and lease <= now
            )
        )
        if not free:
            return None
        job, _ = self._recoveries[free[0][2]]
        self._recoveries[job.id] = (replace(job, lease_owner=owner), now + lease_ms)
        return self._job(job.id)

    async def advance_recovery(
        self, step: Advance, outbox: Sequence[OperatorRecord]
    ) -> RecoveryJob | None:
        await self._turn()
        held = self._recoveries.get(step.job_id)
        if held is None or held[0].state != "running" or held[0].lease_owner != step.owner:
            return None
        job = held[0]
        job = replace(
            job,
            updated_at=step.now,
            enqueued=job.enqueued + len(step.tasks),
            cursor=step.cursor if step.cursor is not None else job.cursor,
            scan_done=job.scan_done or step.scan_done,
            matched=step.matched if step.matched is not None else job.matched,
            state="completed" if step.complete else job.state,
            finished_at=step.now if step.complete else job.finished_at,
        )
        self._recoveries[job.id] = (job, step.now + step.lease_ms)
        for pair in step.tasks:
            task_id = self._enqueue(
                pair.event,
                pair.destination_id,
                pair.attempt_number,
                manual=True,
                visible_at=step.now,
            )
            self._recovery_tasks[task_id] = job.id
        if step.tasks:
            self._work.set()
        self._operator.add(outbox, step.now)
        if outbox:
            self._operator_work.set()
        return self._job(job.id)

    def _count_recovered(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            job_id = self._recovery_tasks.pop(outcome.task.id, None)
            if job_id is None or outcome.attempt is None:
                continue
            job, lease = self._recoveries[job_id]
            ok = outcome.attempt.status == "success"
            job = replace(job, delivered=job.delivered + ok, failed=job.failed + (not ok))
            self._recoveries[job_id] = (job, lease)
