"""The PostgreSQL backend: tenant store, log store and delivery queue for many processes.

Workers in any process are woken by NOTIFY when work is queued; destinations are cached per
tenant while the LISTEN connection that invalidates them is up, and read through otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from outpost.core.models import (
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
)
from outpost.core.paging import AttemptQuery, EventQuery, Page, PageRequest
from outpost.core.recovery import Advance, Candidate, RecoveryJob, Scan
from outpost.core.timefmt import now_ms
from outpost.metrics import MetricsQuery, Tally
from outpost.operator.records import Health, OperatorRecord, OutcomeJudge
from outpost.storage import judging, retention
from outpost.storage.destination_cache import DestinationCache, find
from outpost.storage.postgres import (
    metrics_ops,
    operator_ops,
    ops,
    recovery_ops,
    retention_ops,
    retry_ops,
)
from outpost.storage.postgres.database import Conn, Database
from outpost.storage.sealing import Sealer


class PostgresBackend:
    def __init__(
        self,
        dsn: str,
        *,
        sealer: Sealer | None,
        pool_size: int = 10,
        timeout: float = 5.0,
        batch_limit: int = 1000,
        migrate: bool = True,
    ) -> None:
        self._db = Database(dsn, pool_size=pool_size, timeout=timeout, batch_limit=batch_limit)
        self._migrate = migrate
        self._sealer = sealer  # None: credentials stored as plain JSON (tests only)
        self._work = asyncio.Event()
        # Live only while the LISTEN connection that carries other processes' writes is up.
        self._cache = DestinationCache(live=False)
        self._judge: OutcomeJudge | None = None  # operator events and alerts: off by default
        self._operator_work = asyncio.Event()

    async def open(self) -> None:
        await self._db.open(run_migrations=self._migrate)
        if self._sealer is not None:
            try:
                self._sealer.refuse_unknown_keys(await self._db.read(ops.sealed_key_ids))
            except BaseException:
                await self._db.close()
                raise
        if self._migrate and self._sealer is not None:  # the processes that migrate also reseal
            sealer = self._sealer
            await self._db.write(lambda c: ops.reseal_credentials(c, sealer))
        self._db.listen(ops.TASKS_CHANNEL, lambda _: self._work.set(), lambda _: self._work.set())
        self._db.listen(ops.DESTINATIONS_CHANNEL, self._cache.forget, self._cache.set_live)

    async def close(self) -> None:
        await self._db.close()

    async def ping(self) -> None:
        await self._db.read(lambda c: c.fetchval("SELECT 1"))

    # Tenants and destinations

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        return await self._db.read(lambda c: ops.get_tenant(c, tenant_id))

    async def upsert_tenant(
        self, tenant_id: str, metadata: StrMap | None, now: int
    ) -> tuple[Tenant, bool]:
        return await self._db.write(lambda c: ops.upsert_tenant(c, tenant_id, metadata, now))

    async def delete_tenant(self, tenant_id: str, now: int) -> bool:
        try:
            return await self._db.write(lambda c: ops.delete_tenant(c, tenant_id, now))
        finally:
            self._cache.forget(tenant_id)

    async def list_tenants(self, ids: tuple[str, ...], request: PageRequest) -> Page[Tenant]:
        return await self._db.read(lambda c: ops.list_tenants(c, ids, request))

    async def list_destinations(self, tenant_id: str) -> list[Destination]:
        return await self._cache.get(
            tenant_id,
            lambda: self._db.read(lambda c: ops.list_destinations(c, tenant_id, self._sealer)),
        )

    async def get_destination(self, tenant_id: str, destination_id: str) -> Destination | None:
        return find(await self.list_destinations(tenant_id), destination_id)

    async def create_destination(self, destination: Destination, limit: int) -> None:
        try:
            await self._db.write(
                lambda c: ops.create_destination(c, destination, limit, self._sealer)
            )
        finally:
            self._cache.forget(destination.tenant_id)

    async def update_destination(self, destination: Destination) -> bool:
        try:
            return await self._db.write(
                lambda c: ops.update_destination(c, destination, self._sealer)
            )
        finally:
            self._cache.forget(destination.tenant_id)

    async def delete_destination(self, tenant_id: str, destination_id: str, now: int) -> bool:
        try:
            return await self._db.write(
                lambda c: ops.delete_destination(c, tenant_id, destination_id, now)
            )
        finally:
            self._cache.forget(tenant_id)

    # The event and attempt log

    async def get_event(self, event_id: str, tenant_id: str | None = None) -> Event | None:
        return await self._db.read(lambda c: ops.get_event(c, event_id, tenant_id))

    async def get_events(self, keys: list[EventKey]) -> dict[EventKey, Event]:
        return await self._db.read(lambda c: ops.get_events(c, keys))

    async def list_events(self, query: EventQuery, request: PageRequest) -> Page[Event]:
        return await self._db.read(lambda c: ops.list_events(c, query, request))

    async def get_attempt(self, attempt_id: str, tenant_id: str | None = None) -> Attempt | None:
        return await self._db.read(lambda c: ops.get_attempt(c, attempt_id, tenant_id))

    async def list_attempts(self, query: AttemptQuery, request: PageRequest) -> Page[Attempt]:
        return await self._db.read(lambda c: ops.list_attempts(c, query, request))

    async def latest_attempt(
        self, event_id: str, destination_id: str, tenant_id: str | None = None
    ) -> Attempt | None:
        return await self._db.read(
            lambda c: ops.latest_attempt(c, event_id, destination_id, tenant_id)
        )

    async def pending_retries(self, pairs: Sequence[RetryPair]) -> dict[RetryPair, PendingRetry]:
        return await self._db.read(lambda c: retry_ops.pending_retries(c, pairs))

    # Metrics and retention

    async def metrics_tallies(self, query: MetricsQuery) -> list[Tally]:
        return await self._db.read(lambda c: metrics_ops.tallies(c, query))

    async def delete_logs_before(self, cutoff: int, batch_size: int) -> retention.Deleted | None:
        """Sweep on one connection holding the retention lock; None if another process holds it."""

        async def locked(conn: Conn) -> retention.Deleted | None:
            if not await retention_ops.try_lock(conn):
                return None
            try:
                return await retention.sweep(
                    lambda: retention_ops.delete_before(conn, cutoff, batch_size), batch_size
                )
            finally:
                await retention_ops.unlock(conn)

        return await self._db.session(locked)

    async def erase_tenant_logs(self, tenant_id: str, batch_size: int) -> retention.Deleted:
        return await self._db.read(
            lambda conn: retention.sweep(
                lambda: retention_ops.erase_tenant(conn, tenant_id, batch_size), batch_size
            )
        )

    # The delivery queue

    async def accept(self, event: Event, now: int, dedupe_after: int) -> bool:
        duplicate, _ = await self.accept_held(event, now, dedupe_after, hold_ms=0)
        return duplicate

    async def accept_held(
        self, event: Event, now: int, dedupe_after: int, *, hold_ms: int
    ) -> tuple[bool, list[int]]:
        """`accept`, with the tasks kept from claims for `hold_ms` (while a broker hands them
        out); returns the duplicate flag and the ids of the tasks queued."""
        # Merged with the other publishes of its group commit: one statement for all of them.
        acceptance = ops.Acceptance(event, now, dedupe_after, now + hold_ms)
        return await self._db.write_batched(ops.accept_events, acceptance)

    async def enqueue_manual(self, event: Event, destination_id: str, attempt_number: int) -> None:
        await self.enqueue_manual_held(event, destination_id, attempt_number, hold_ms=0)

    async def enqueue_manual_held(
        self, event: Event, destination_id: str, attempt_number: int, *, hold_ms: int
    ) -> int:
        return await self._db.write(
            lambda c: ops.enqueue_manual(
                c, event, destination_id, attempt_number, now_ms() + hold_ms
            )
        )

    async def claim(self, limit: int, lease_ms: int) -> list[DeliveryTask]:
        return await self._db.write(lambda c: ops.claim(c, now_ms(), limit, lease_ms))

    async def claim_ids(self, ids: list[int], lease_ms: int) -> list[DeliveryTask]:
        return await self._db.write(lambda c: ops.claim_ids(c, ids, now_ms(), lease_ms))

    async def finish(self, outcomes: list[Outcome]) -> None:
        if self._judge is not None:
            await self._finish_judged(outcomes, self._judge)
        else:
            await self._db.write(lambda c: ops.finish(c, outcomes))

    async def release(self, task: DeliveryTask, delay_ms: int) -> None:
        await self._db.write(lambda c: ops.release(c, task, now_ms() + delay_ms))

    async def defer(self, deferred: list[tuple[DeliveryTask, int]]) -> None:
        await self._db.write(lambda c: ops.defer(c, deferred))

    async def next_visible_at(self) -> int | None:
        return await self._db.read(ops.next_visible_at)

    async def count_due(self, now: int, limit: int) -> int:
        return await self._db.read(lambda c: ops.count_due(c, now, limit))

    def wake(self) -> None:
        self._work.set()

    async def wait_for_work(self, timeout: float) -> None:
        """Return when work was queued by any process (NOTIFY), or after `timeout` seconds."""
        if timeout > 0 and not self._work.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._work.wait(), timeout)
        self._work.clear()

    # Operator events and alerts

    def judge_outcomes(self, judge: OutcomeJudge | None) -> None:
        self._judge = judge

    async def _finish_judged(self, outcomes: list[Outcome], judge: OutcomeJudge) -> None:
        destinations = await judging.destinations_of(outcomes, self.get_destination)
        disabled, queued = await self._db.write(
            lambda c: operator_ops.finish_judged(c, outcomes, destinations, judge, now_ms())
        )
        judging.report_disabled(disabled)
        # other processes hear it from the NOTIFY sent at commit
        for tenant_id in {tenant_id for tenant_id, _ in disabled}:
            self._cache.forget(tenant_id)
        if queued:
            self._operator_work.set()

    async def add_operator_events(self, events: Sequence[OperatorRecord]) -> None:
        if events:
            await self._db.write(lambda c: operator_ops.add_events(c, events, now_ms()))
            self._operator_work.set()

    async def claim_operator_events(self, limit: int, lease_ms: int) -> list[OperatorRecord]:
        return await self._db.write(lambda c: operator_ops.claim(c, now_ms(), limit, lease_ms))

    async def settle_operator_events(
        self, done: Sequence[str], retry: Sequence[tuple[str, int]]
    ) -> None:
        await self._db.write(lambda c: operator_ops.settle(c, done, retry))

    async def destination_health(self, tenant_id: str, destination_id: str) -> Health:
        return await self._db.read(lambda c: operator_ops.health(c, tenant_id, destination_id))

    async def wait_for_operator_events(self, timeout: float) -> None:
        """Return when this process queued operator events, or after `timeout` seconds (events
        other processes queued wait for that poll, or for their own relay)."""
        if timeout > 0 and not self._operator_work.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._operator_work.wait(), timeout)
        self._operator_work.clear()

    # Recovery

    async def scan_undelivered(self, scan: Scan) -> list[Candidate]:
        return await self._db.read(lambda c: recovery_ops.scan(c, scan))

    async def create_recovery(
        self, job: RecoveryJob, outbox: Sequence[OperatorRecord]
    ) -> tuple[RecoveryJob, bool]:
        found = await self._db.write(lambda c: recovery_ops.create(c, job, outbox, now_ms()))
        if outbox and found[1]:
            self._operator_work.set()
        return found

    async def get_recovery(self, job_id: str, tenant_id: str) -> RecoveryJob | None:
        return await self._db.read(lambda c: recovery_ops.get(c, job_id, tenant_id))

    async def list_recoveries(
        self, tenant_ids: tuple[str, ...], request: PageRequest
    ) -> Page[RecoveryJob]:
        return await self._db.read(lambda c: recovery_ops.list_(c, tenant_ids, request))

    async def cancel_recovery(
        self, job_id: str, tenant_id: str, now: int, outbox: Sequence[OperatorRecord]
    ) -> RecoveryJob | None:
        found = await self._db.write(
            lambda c: recovery_ops.cancel(c, job_id, tenant_id, now, outbox)
        )
        if outbox:
            self._operator_work.set()
        return found

    async def claim_recovery(self, owner: str, lease_ms: int) -> RecoveryJob | None:
        return await self._db.write(lambda c: recovery_ops.claim(c, owner, now_ms(), lease_ms))

    async def advance_recovery(
        self, step: Advance, outbox: Sequence[OperatorRecord]
    ) -> RecoveryJob | None:
        found = await self._db.write(lambda c: recovery_ops.advance(c, step, outbox))
        if found is not None and outbox:
            self._operator_work.set()
        return found
