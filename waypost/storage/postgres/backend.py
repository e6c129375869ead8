"""The PostgreSQL backend: tenant store, log store and delivery queue for many processes.

Workers in any process are woken by NOTIFY when work is queued; destinations are cached per
tenant while the LISTEN connection that invalidates them is up, and read through otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

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
)
from waypost.core.operator_records import Health, OperatorRecord, OutcomeJudge
from waypost.core.paging import AttemptQuery, EventQuery, Page, PageRequest
from waypost.core.recovery import Advance, Candidate, RecoveryJob, Scan
from waypost.core.timefmt import now_ms
from waypost.storage import retention
from waypost.storage.destination_cache import DestinationCache
from waypost.storage.postgres import (
    log_ops,
    metrics_ops,
    operator_ops,
    recovery_ops,
    retention_ops,
    task_ops,
    tenant_ops,
)
from waypost.storage.postgres.channels import DESTINATIONS_CHANNEL, TASKS_CHANNEL
from waypost.storage.postgres.database import Conn, Database
from waypost.storage.sealing import Sealer
from waypost.storage.sql_backend import Judged, Seen, SqlBackend


class PostgresBackend(SqlBackend):
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
        # The cache is live only while the LISTEN connection that carries other processes'
        # writes is up.
        super().__init__(sealer, DestinationCache(live=False))
        self._db = Database(dsn, pool_size=pool_size, timeout=timeout, batch_limit=batch_limit)
        self._migrate = migrate

    async def open(self) -> None:
        await self._db.open(run_migrations=self._migrate)
        if self._sealer is not None:
            try:
                self._sealer.refuse_unknown_keys(await self._db.read(tenant_ops.sealed_key_ids))
            except BaseException:
                await self._db.close()
                raise
        if self._migrate and self._sealer is not None:  # the processes that migrate also reseal
            sealer = self._sealer
            await self._db.write(lambda c: tenant_ops.reseal_credentials(c, sealer))
        self._db.listen(TASKS_CHANNEL, lambda _: self._work.set(), lambda _: self._work.set())
        self._db.listen(DESTINATIONS_CHANNEL, self._cache.forget, self._cache.set_live)

    async def close(self) -> None:
        await self._db.close()

    async def ping(self) -> None:
        await self._db.read(lambda c: c.fetchval("SELECT 1"))

    # Tenants and destinations

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        return await self._db.read(lambda c: tenant_ops.get_tenant(c, tenant_id))

    async def upsert_tenant(
        self, tenant_id: str, metadata: StrMap | None, now: int
    ) -> tuple[Tenant, bool]:
        return await self._db.write(lambda c: tenant_ops.upsert_tenant(c, tenant_id, metadata, now))

    async def delete_tenant(self, tenant_id: str, now: int) -> bool:
        try:
            return await self._db.write(lambda c: tenant_ops.delete_tenant(c, tenant_id, now))
        finally:
            self._forget(tenant_id)

    async def list_tenants(self, ids: tuple[str, ...], request: PageRequest) -> Page[Tenant]:
        return await self._db.read(lambda c: tenant_ops.list_tenants(c, ids, request))

    async def _read_destinations(self, tenant_id: str) -> list[Destination]:
        return await self._db.read(
            lambda c: tenant_ops.list_destinations(c, tenant_id, self._sealer)
        )

    async def create_destination(self, destination: Destination, limit: int) -> None:
        try:
            await self._db.write(
                lambda c: tenant_ops.create_destination(c, destination, limit, self._sealer)
            )
        finally:
            self._forget(destination.tenant_id)

    async def update_destination(self, destination: Destination) -> bool:
        try:
            return await self._db.write(
                lambda c: tenant_ops.update_destination(c, destination, self._sealer)
            )
        finally:
            self._forget(destination.tenant_id)

    async def delete_destination(self, tenant_id: str, destination_id: str, now: int) -> bool:
        try:
            return await self._db.write(
                lambda c: tenant_ops.delete_destination(c, tenant_id, destination_id, now)
            )
        finally:
            self._forget(tenant_id)

    # The event and attempt log

    async def get_event(self, event_id: str, tenant_id: str | None = None) -> Event | None:
        return await self._db.read(lambda c: log_ops.get_event(c, event_id, tenant_id))

    async def get_events(self, keys: list[EventKey]) -> dict[EventKey, Event]:
        return await self._db.read(lambda c: log_ops.get_events(c, keys))

    async def list_events(self, query: EventQuery, request: PageRequest) -> Page[Event]:
        return await self._db.read(lambda c: log_ops.list_events(c, query, request))

    async def get_attempt(self, attempt_id: str, tenant_id: str | None = None) -> Attempt | None:
        return await self._db.read(lambda c: log_ops.get_attempt(c, attempt_id, tenant_id))

    async def list_attempts(self, query: AttemptQuery, request: PageRequest) -> Page[Attempt]:
        return await self._db.read(lambda c: log_ops.list_attempts(c, query, request))

    async def latest_attempt(
        self, event_id: str, destination_id: str, tenant_id: str | None = None
    ) -> Attempt | None:
        return await self._db.read(
            lambda c: log_ops.latest_attempt(c, event_id, destination_id, tenant_id)
        )

    async def pending_retries(self, pairs: Sequence[RetryPair]) -> dict[RetryPair, PendingRetry]:
        return await self._db.read(lambda c: task_ops.pending_retries(c, pairs))

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
        acceptance = task_ops.Acceptance(event, now, dedupe_after, now + hold_ms)
        return await self._db.write_batched(task_ops.accept_events, acceptance)

    async def enqueue_manual(self, event: Event, destination_id: str, attempt_number: int) -> None:
        await self.enqueue_manual_held(event, destination_id, attempt_number, hold_ms=0)

    async def enqueue_manual_held(
        self, event: Event, destination_id: str, attempt_number: int, *, hold_ms: int
    ) -> int:
        return await self._db.write(
            lambda c: task_ops.enqueue_manual(
                c, event, destination_id, attempt_number, now_ms() + hold_ms, wake=hold_ms == 0
            )
        )

    async def claim(self, limit: int, lease_ms: int) -> list[DeliveryTask]:
        return await self._db.write(
            lambda c: task_ops.claim(c, now_ms(), limit, lease_ms), one_statement=True
        )

    async def claim_ids(self, ids: list[int], lease_ms: int) -> list[DeliveryTask]:
        return await self._db.write(
            lambda c: task_ops.claim_ids(c, ids, now_ms(), lease_ms), one_statement=True
        )

    async def finish(self, outcomes: list[Outcome]) -> None:
        if self._judge is not None:
            await self._finish_judged(outcomes, self._judge)
        else:
            await self._db.write(lambda c: task_ops.finish(c, outcomes))

    async def release(self, task: DeliveryTask, delay_ms: int) -> None:
        await self._db.write(lambda c: task_ops.release(c, task, now_ms() + delay_ms))

    async def defer(self, deferred: list[tuple[DeliveryTask, int]]) -> None:
        await self._db.write(lambda c: task_ops.defer(c, deferred))

    async def next_visible_at(self) -> int | None:
        return await self._db.read(task_ops.next_visible_at)

    async def count_due(self, now: int, limit: int) -> int:
        return await self._db.read(lambda c: task_ops.count_due(c, now, limit))

    # Operator events and alerts

    async def _write_judged(
        self, outcomes: list[Outcome], destinations: Seen, judge: OutcomeJudge
    ) -> Judged:
        return await self._db.write(
            lambda c: operator_ops.finish_judged(c, outcomes, destinations, judge, now_ms())
        )

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
