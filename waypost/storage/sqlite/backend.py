"""The embedded backend: tenant store, log store and delivery queue over one `Database`.

One process owns the database (a lock file enforces it), which is what makes two shortcuts
safe: destinations are cached per tenant and invalidated on our own writes, and leases left
behind by a killed process are released at start-up.

The owner may start one delivery process on the same file (`waypost.runner.delivery_process`): that
process opens the backend with `owner=False` (no folder lock, no start-up repairs), and the two
are `link`ed by a `Peer` that carries wake-ups and cache invalidations both ways. The owner
releases the delivery process's leases itself whenever that process has ended.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO

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
from waypost.errors import ConfigError
from waypost.storage import retention
from waypost.storage.destination_cache import DestinationCache
from waypost.storage.sealing import Sealer
from waypost.storage.sql_backend import Judged, Seen, SqlBackend
from waypost.storage.sqlite import (
    log_ops,
    metrics_ops,
    operator_ops,
    private,
    recovery_ops,
    retention_ops,
    task_ops,
    tenant_ops,
)
from waypost.storage.sqlite.database import Database
from waypost.storage.sqlite.peer import Peer

log = logging.getLogger(__name__)


class SqliteBackend(SqlBackend):
    def __init__(
        self,
        data_dir: Path,
        *,
        sealer: Sealer | None,
        synchronous: str = "FULL",
        batch_limit: int = 1000,
        owner: bool = True,
        shared: bool = False,
    ):
        # The cache is safe: only this process writes this database, or it hears of the other's
        # writes.
        super().__init__(sealer, DestinationCache())
        self._dir = data_dir
        self._owner = owner
        self._db = Database(
            data_dir / "outpost.db",
            # The delivery process writes leases and attempt records. Without an fsync of its
            # own, a power cut may undo its last commits: those tasks are delivered again,
            # nothing is lost. And the owner's sync after its next commit (FULL: publishes are
            # durable before the 202) covers the whole log, the delivery process's frames too.
            synchronous=synchronous if owner else "NORMAL",
            batch_limit=batch_limit,
            shared=shared or not owner,
        )
        self._lock: IO[str] | None = None
        self._peer: Peer | None = None

    async def open(self) -> None:
        if not self._owner:  # the owner has locked, migrated and repaired the database
            await asyncio.to_thread(self._db.open)
            return
        self._lock = await asyncio.to_thread(self._take_lock)
        try:
            await asyncio.to_thread(self._db.open)
            if self._sealer is not None:
                self._sealer.refuse_unknown_keys(
                    await self._db.read(tenant_ops.sealed_key_ids),
                    f" (was {self._dir} restored without its aes_encryption_secret file? "
                    "put it back)",
                )
        except BaseException:
            await self.close()  # a refused start leaves the folder unlocked
            raise
        released = await self.release_leases()
        if released:  # the last run ended mid-delivery (killed, or a crash)
            log.info(
                "released %d task leases left by the previous run: those deliveries run again",
                released,
                extra={"released": released},
            )
        await self._db.write(lambda c: operator_ops.release_all_leases(c, now_ms()))
        if self._sealer is not None:
            sealer = self._sealer
            await self._db.write(lambda c: tenant_ops.reseal_credentials(c, sealer))

    def _take_lock(self) -> IO[str]:
        try:
            private.make_folder(self._dir)
            private.warn_if_open(self._dir)
            lock = private.open_file(str(self._dir / "outpost.lock"), "w")  # held until close
        except OSError as exc:
            raise ConfigError(
                f"cannot use OUTPOST_DATA_DIR {self._dir} ({exc.strerror}): give this user "
                "that folder, or choose another"
            ) from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            lock.close()
            raise ConfigError(f"another outpost process is using {self._dir}") from exc
        lock.write(str(os.getpid()))
        lock.flush()
        return lock

    async def close(self) -> None:
        if self._peer is not None:
            self._peer.close()
        await self._db.close()
        if self._lock is not None:
            self._lock.close()

    async def link(self, peer: Peer | None) -> None:
        """Hear of the other process's writes, and tell it of ours (None: unlink)."""
        if self._peer is not None:
            self._peer.close()
        self._peer = peer
        if peer is not None:
            await peer.start(self._work.set, self._cache.forget)
        self._cache.set_live(True)  # drop what was cached while nobody told us of changes

    async def release_leases(self) -> int:
        """Make every leased task claimable now: for the owner, once the delivery process that
        held them has ended (nobody else claims tasks)."""
        return await self._db.write(lambda c: task_ops.release_all_leases(c, now_ms()))

    def _forget(self, tenant_id: str) -> None:
        super()._forget(tenant_id)
        if self._peer is not None:
            self._peer.forget(tenant_id)

    def _queued(self) -> None:
        self._work.set()
        if self._peer is not None:
            self._peer.wake()

    async def ping(self) -> None:
        await self._db.read(lambda c: c.execute("SELECT 1").fetchone())

    # Tenants and destinations

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        return await self._db.read(lambda c: tenant_ops.get_tenant(c, tenant_id))

    async def upsert_tenant(
        self, tenant_id: str, metadata: StrMap | None, now: int
    ) -> tuple[Tenant, bool]:
        try:
            return await self._db.write(
                lambda c: tenant_ops.upsert_tenant(c, tenant_id, metadata, now)
            )
        finally:
            self._forget(tenant_id)

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

    async def delete_logs_before(self, cutoff: int, batch_size: int) -> retention.Deleted:
        return await retention.sweep(
            lambda: self._db.write(lambda c: retention_ops.delete_before(c, cutoff, batch_size)),
            batch_size,
        )

    async def erase_tenant_logs(self, tenant_id: str, batch_size: int) -> retention.Deleted:
        return await retention.sweep(
            lambda: self._db.write(lambda c: retention_ops.erase_tenant(c, tenant_id, batch_size)),
            batch_size,
        )

    # The delivery queue

    async def accept(self, event: Event, now: int, dedupe_after: int) -> bool:
        acceptance = task_ops.Acceptance.of(event, now, dedupe_after)
        duplicate = await self._db.write(lambda c: task_ops.accept_event(c, acceptance))
        if not duplicate and event.matched_destination_ids:
            self._queued()
        return duplicate

    async def enqueue_manual(self, event: Event, destination_id: str, attempt_number: int) -> None:
        await self._db.write(
            lambda c: task_ops.enqueue(
                c, event, destination_id, attempt_number=attempt_number, manual=True, due=now_ms()
            )
        )
        self._queued()

    async def claim(self, limit: int, lease_ms: int) -> list[DeliveryTask]:
        return await self._db.write(lambda c: task_ops.claim(c, now_ms(), limit, lease_ms))

    async def finish(self, outcomes: list[Outcome]) -> None:
        if self._judge is not None:
            await self._finish_judged(outcomes, self._judge)
        else:
            finishing = task_ops.Finishing.of(outcomes)
            await self._db.write(lambda c: task_ops.finish(c, finishing))
        if any(o.retry_at is not None for o in outcomes):
            self._work.set()  # the scheduler may need to wake earlier than it planned

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
            self._operator_work.set()  # this process's relay; the other's polls

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
        if found is not None and step.tasks:
            self._queued()
        if found is not None and outbox:
            self._operator_work.set()
        return found
