"""The storage seams. Nothing above `storage/` sees a driver or its exceptions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

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
from waypost.core.operator_records import OperatorRecord, OutcomeJudge
from waypost.core.paging import AttemptQuery, EventQuery, Page, PageRequest
from waypost.core.recovery import Advance, Candidate, RecoveryJob, Scan
from waypost.storage.retention import Deleted


class TenantStore(Protocol):
    async def get_tenant(self, tenant_id: str) -> Tenant | None: ...
    async def upsert_tenant(
        self, tenant_id: str, metadata: StrMap | None, now: int
    ) -> tuple[Tenant, bool]: ...
    async def delete_tenant(self, tenant_id: str, now: int) -> bool: ...
    async def list_tenants(self, ids: tuple[str, ...], request: PageRequest) -> Page[Tenant]: ...
    async def list_destinations(self, tenant_id: str) -> list[Destination]: ...
    async def get_destination(self, tenant_id: str, destination_id: str) -> Destination | None: ...
    async def create_destination(self, destination: Destination, limit: int) -> None: ...
    async def update_destination(self, destination: Destination) -> bool: ...
    async def delete_destination(self, tenant_id: str, destination_id: str, now: int) -> bool: ...


class LogStore(Protocol):
    async def get_event(self, event_id: str, tenant_id: str | None = None) -> Event | None:
        """The event `event_id` of `tenant_id`. Naming no tenant (the admin's reads), the one
        tenant's that has this id; InputError (400) if several have it."""
        ...

    async def get_events(self, keys: list[EventKey]) -> dict[EventKey, Event]:
        """The events of these (tenant_id, event id) pairs that exist, by pair."""
        ...

    async def list_events(self, query: EventQuery, request: PageRequest) -> Page[Event]: ...
    async def get_attempt(
        self, attempt_id: str, tenant_id: str | None = None
    ) -> Attempt | None: ...
    async def list_attempts(self, query: AttemptQuery, request: PageRequest) -> Page[Attempt]: ...
    async def latest_attempt(
        self, event_id: str, destination_id: str, tenant_id: str | None = None
    ) -> Attempt | None: ...
    async def pending_retries(self, pairs: Sequence[RetryPair]) -> dict[RetryPair, PendingRetry]:
        """The automatic retries queued, and not claimed yet, for these (tenant, event,
        destination) triples, by triple. A triple names its tenant: never another's retry."""
        ...


class MetricsStore(Protocol):
    """The metrics API's aggregates (contract.md §1.6.17): tallies per time bucket and dimension
    values."""

    async def metrics_tallies(self, query: MetricsQuery) -> list[Tally]: ...


class LogRetention(Protocol):
    """Deleting logs in bounded batches (storage/retention.py). `delete_logs_before` answers
    None when another process is sweeping already (PostgreSQL)."""

    async def delete_logs_before(self, cutoff: int, batch_size: int) -> Deleted | None: ...
    async def erase_tenant_logs(self, tenant_id: str, batch_size: int) -> Deleted: ...


class DeliveryQueue(Protocol):
    """Durable delivery tasks. `accept` stores the event with its first tasks in one commit."""

    async def accept(self, event: Event, now: int, dedupe_after: int) -> bool: ...
    async def enqueue_manual(
        self, event: Event, destination_id: str, attempt_number: int
    ) -> None: ...
    async def claim(self, limit: int, lease_ms: int) -> list[DeliveryTask]: ...
    async def finish(self, outcomes: list[Outcome]) -> None: ...
    async def release(self, task: DeliveryTask, delay_ms: int) -> None: ...
    async def defer(self, deferred: list[tuple[DeliveryTask, int]]) -> None:
        """Give claimed tasks back unattempted, each visible again at its time (ms), without
        counting their claim (their destination was busy: nothing failed)."""
        ...

    async def next_visible_at(self) -> int | None:
        """When the earliest task (due, leased or held back) becomes claimable, in ms since the
        epoch; None when there is none. A worker with nothing to claim sleeps until then."""
        ...

    async def wait_for_work(self, timeout: float) -> None: ...
    def wake(self) -> None: ...


class OperatorStore(Protocol):
    """Operator events (waypost/operator): an outbox, and per-destination alert health.

    With a judge installed, `finish()` calls it for every newly recorded attempt inside the same
    commit, and stores what it decides (health, events, a compare-and-set disable). Without one
    (the default), `finish()` does nothing more than before.
    """

    def judge_outcomes(self, judge: OutcomeJudge | None) -> None: ...
    async def add_operator_events(self, events: Sequence[OperatorRecord]) -> None: ...
    async def claim_operator_events(self, limit: int, lease_ms: int) -> list[OperatorRecord]: ...
    async def settle_operator_events(
        self, done: Sequence[str], retry: Sequence[tuple[str, int]]
    ) -> None:
        """Delete the `done` events; make each `(id, visible_at)` of `retry` due again then."""
        ...

    async def wait_for_operator_events(self, timeout: float) -> None: ...


class RecoveryStore(Protocol):
    """Undelivered events and recovery jobs (waypost/recovery.py). `outbox` records are operator
    events written in the same commit as the change they report."""

    async def scan_undelivered(self, scan: Scan) -> list[Candidate]: ...
    async def create_recovery(
        self, job: RecoveryJob, outbox: Sequence[OperatorRecord]
    ) -> tuple[RecoveryJob, bool]:
        """Store `job`, or answer the tenant's job of the same idempotency key (False)."""
        ...

    async def get_recovery(self, job_id: str, tenant_id: str) -> RecoveryJob | None: ...
    async def list_recoveries(
        self, tenant_ids: tuple[str, ...], request: PageRequest
    ) -> Page[RecoveryJob]: ...
    async def cancel_recovery(
        self, job_id: str, tenant_id: str, now: int, outbox: Sequence[OperatorRecord]
    ) -> RecoveryJob | None:
        """Cancel a running job (its queued tasks not yet claimed are dropped); the job as it
        is then, None if there is none. `outbox` is written only if this call cancelled it."""
        ...

    async def claim_recovery(self, owner: str, lease_ms: int) -> RecoveryJob | None:
        """Lease a running job nobody holds (or whose lease ran out) to `owner`."""
        ...

    async def advance_recovery(
        self, step: Advance, outbox: Sequence[OperatorRecord]
    ) -> RecoveryJob | None:
        """Queue the step's tasks and move the job on in one commit, if it is still running
        and `step.owner`'s; None (and nothing written) otherwise."""
        ...


class Backend(
    TenantStore,
    LogStore,
    DeliveryQueue,
    OperatorStore,
    MetricsStore,
    LogRetention,
    RecoveryStore,
    Protocol,
):
    """All the seams over one database, as each backend provides them."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...
    async def count_due(self, now: int, limit: int) -> int:
        """Tasks claimable at `now` (due, not leased), counted up to `limit`."""
        ...
