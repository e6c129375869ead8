"""Recovery: list what never arrived, and send it again with a durable job.

`Recovery` answers the API (the undelivered listing, a dry run's count, creating, reading and
cancelling jobs). `RecoveryRunner` runs on the delivery side: it leases a running job, counts
what it will send, then queues it in batches; each batch's tasks and the job's cursor are one
commit (`RecoveryStore.advance_recovery`), so after a kill -9 the job resumes after the last
committed batch and never queues an event twice. A batch is queued only once fewer than a
batch's worth of the job's tasks are still queued, so a job never floods the queue; each task
then goes through the worker's flow control like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from waypost.core import cursor, filters, topics
from waypost.core.models import Destination, Event
from waypost.core.operator_records import OperatorRecord
from waypost.core.paging import Page, PageRequest, TimeRange
from waypost.core.recovery import (
    JOB_CANCELLED,
    JOB_COMPLETED,
    JOB_CREATED,
    TEST_METADATA_KEY,
    Advance,
    Candidate,
    JobSpec,
    Pending,
    QueuedPair,
    RecoveryJob,
    Scan,
    Selection,
    undelivered,
)
from waypost.core.timefmt import now_ms
from waypost.errors import InputError, NotFoundError
from waypost.operator import envelope
from waypost.publishing import OFF_LOOP_STEPS
from waypost.storage.protocols import RecoveryStore, TenantStore

log = logging.getLogger(__name__)

CURSOR_KIND = "und"
# Events one listing request reads at most: a page of rare undelivered events among many
# delivered ones comes back short, with a `next` cursor, rather than walking the whole log.
SCAN_BOUND = 10_000
POLL_SECONDS = 0.5


def accepts(destination: Destination, event: Event) -> bool:
    """Whether the destination's topics and filter accept the event now (enabled or not)."""
    if not topics.destination_accepts(destination.topics, event.topic):
        return False
    if not destination.filter:
        return True
    try:
        document = filters.event_document(event)
        return filters.matches(destination.filter, document, filters.Budget(OFF_LOOP_STEPS))
    except filters.OverBudget:
        return False


@dataclass(frozen=True, slots=True)
class Undelivered:
    event: Event
    pending: list[Pending]


@dataclass(frozen=True, slots=True)
class UndeliveredPage:
    items: list[Undelivered]
    next: str | None


@dataclass(frozen=True, slots=True)
class Filter:
    destination_id: str | None = None
    topics: tuple[str, ...] = ()
    time: TimeRange = field(default_factory=TimeRange)
    status: Selection = "all"


class Recovery:
    def __init__(
        self,
        *,
        tenants: TenantStore,
        store: RecoveryStore,
        wanted_topics: frozenset[str] = frozenset(),
        deployment_id: str = "",
    ) -> None:
        self._tenants = tenants
        self._store = store
        self._wanted = wanted_topics
        self._deployment_id = deployment_id

    async def destinations(self, tenant_id: str, destination_id: str | None) -> list[Destination]:
        found = await self._tenants.list_destinations(tenant_id)
        if destination_id is None:
            return found
        chosen = [d for d in found if d.id == destination_id]
        if not chosen:
            raise NotFoundError("destination not found")
        return chosen

    async def job_destinations(
        self, tenant_id: str, destination_id: str | None
    ) -> list[Destination]:
        found = await self._tenants.list_destinations(tenant_id)
        return [d for d in found if destination_id is None or d.id == destination_id]

    async def undelivered(
        self, tenant_id: str, wanted: Filter, request: PageRequest
    ) -> UndeliveredPage:
        destinations = await self.destinations(tenant_id, wanted.destination_id)
        after = None
        if request.next is not None:
            position = cursor.decode(CURSOR_KIND, request.next)
            if len(position) != 2 or not isinstance(position[0], int):
                raise InputError("invalid cursor")
            after = (position[0], str(position[1]))
        chunk = min(max(request.limit, 100), 1000)
        items: list[Undelivered] = []
        scanned = 0
        while True:
            scan = Scan(
                tenant_id,
                wanted.destination_id,
                wanted.topics,
                wanted.time,
                after,
                descending=request.dir == "desc",
                limit=chunk,
            )
            found = await self._store.scan_undelivered(scan)
            for candidate in found:
                after = (candidate.event.time, candidate.event.id)
                shown = _listed(candidate, destinations, wanted)
                if shown is not None:
                    items.append(shown)
                    if len(items) == request.limit:
                        return UndeliveredPage(items, cursor.encode(CURSOR_KIND, after))
            scanned += len(found)
            if len(found) < chunk:
                return UndeliveredPage(items, None)
            if scanned >= SCAN_BOUND:
                assert after is not None
                return UndeliveredPage(items, cursor.encode(CURSOR_KIND, after))

    async def count(
        self, tenant_id: str, spec: JobSpec, batch: int = 1000, *, strict: bool = True
    ) -> int:
        """The pairs a job of `spec` would send now (a dry run). Not `strict` (a running job),
        a destination deleted since counts nothing instead of being a 404."""
        if strict:
            destinations = await self.destinations(tenant_id, spec.destination_id)
        else:
            destinations = await self.job_destinations(tenant_id, spec.destination_id)
        total = 0
        after: tuple[int, str] | None = None
        while True:
            found = await self._store.scan_undelivered(_job_scan(tenant_id, spec, after, batch))
            total += sum(len(_to_send(c, destinations, spec)) for c in found)
            if len(found) < batch:
                return total
            after = (found[-1].event.time, found[-1].event.id)

    async def create(
        self, tenant_id: str, spec: JobSpec, key: str | None
    ) -> tuple[RecoveryJob, bool]:
        await self.destinations(tenant_id, spec.destination_id)  # 404 for an unknown one
        now = now_ms()
        job = RecoveryJob(
            id="rcv_" + uuid.uuid4().hex,
            tenant_id=tenant_id,
            spec=spec,
            state="running",
            created_at=now,
            updated_at=now,
            idempotency_key=key,
        )
        created, new = await self._store.create_recovery(job, self.told(JOB_CREATED, job, now))
        if new:
            log.info(
                "recovery %s created for tenant %s (destination %s, status %s)",
                created.id,
                tenant_id,
                spec.destination_id or "all",
                spec.status,
                extra={"tenant_id": tenant_id, "recovery_id": created.id},
            )
        return created, new

    async def list(self, tenant_id: str, request: PageRequest) -> Page[RecoveryJob]:
        return await self._store.list_recoveries((tenant_id,), request)

    async def get(self, tenant_id: str, job_id: str) -> RecoveryJob:
        found = await self._store.get_recovery(job_id, tenant_id)
        if found is None:
            raise NotFoundError("recovery not found")
        return found

    async def cancel(self, tenant_id: str, job_id: str) -> RecoveryJob:
        job = await self.get(tenant_id, job_id)
        now = now_ms()
        outbox = self.told(JOB_CANCELLED, replace(job, state="cancelled"), now)
        found = await self._store.cancel_recovery(job_id, tenant_id, now, outbox)
        if found is None:
            raise NotFoundError("recovery not found")
        log.info(
            "recovery %s cancelled: %d of %s queued",
            job_id,
            found.enqueued,
            found.matched,
            extra={"tenant_id": tenant_id, "recovery_id": job_id},
        )
        return found

    def told(self, topic: str, job: RecoveryJob, now: int) -> tuple[OperatorRecord, ...]:
        """The operator event reporting `job`, when that topic is wanted."""
        if topic not in self._wanted and "*" not in self._wanted:
            return ()
        data = {
            "id": job.id,
            "tenant_id": job.tenant_id,
            "destination_id": job.spec.destination_id,
            "status": job.spec.status,
            "state": job.state,
            "enqueued": job.enqueued,
            "matched": job.matched,
        }
        return (
            envelope.record(
                topic, data, tenant_id=job.tenant_id, deployment_id=self._deployment_id, now=now
            ),
        )


def _listed(
    candidate: Candidate, destinations: Sequence[Destination], wanted: Filter
) -> Undelivered | None:
    pending = undelivered(candidate, destinations, wanted.status, accepts, enabled_only=False)
    if pending:
        return Undelivered(candidate.event, pending)
    # Never tried and accepted by no destination now: it matched nothing. Listed (with no
    # destination) among the never-attempted when no destination is named.
    if (
        wanted.destination_id is None
        and wanted.status != "failed"
        and not candidate.tried
        and not candidate.event.metadata.get(TEST_METADATA_KEY)
    ):
        return Undelivered(candidate.event, [])
    return None


def _job_scan(tenant_id: str, spec: JobSpec, after: tuple[int, str] | None, limit: int) -> Scan:
    return Scan(tenant_id, spec.destination_id, spec.topics, spec.time, after, limit=limit)


def _to_send(
    candidate: Candidate, destinations: Sequence[Destination], spec: JobSpec
) -> list[Pending]:
    return undelivered(candidate, destinations, spec.status, accepts, enabled_only=True)


class RecoveryRunner:
    """Runs recovery jobs on the delivery side, one at a time per process."""

    def __init__(
        self,
        *,
        recovery: Recovery,
        store: RecoveryStore,
        batch_size: int,
        lease_ms: int,
    ) -> None:
        self._recovery = recovery
        self._store = store
        self._batch = batch_size
        self._lease_ms = lease_ms
        self._owner = uuid.uuid4().hex
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def claim(self) -> RecoveryJob | None:
        """Lease a job to run (None: no running job is free)."""
        return await self._store.claim_recovery(self._owner, self._lease_ms)

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                job = await self.claim()
                if job is not None:
                    await self.run_job(job)
                    continue
            except Exception:  # a store outage: keep the runner, try again shortly
                log.exception("recovery runner: retrying after an error")
            await self._pause(POLL_SECONDS * 2)

    async def run_job(self, job: RecoveryJob | None) -> None:
        """Drive a job this runner holds until it ends, is cancelled, or the runner stops."""
        while job is not None and job.state == "running" and not self._stop.is_set():
            job = await self.step(job)

    async def step(self, job: RecoveryJob) -> RecoveryJob | None:
        """One step: count, queue a batch, wait for queued tasks to drain, or complete."""
        now = now_ms()
        base = Advance(job.id, self._owner, now, self._lease_ms)
        if job.matched is None:
            matched = await self._recovery.count(job.tenant_id, job.spec, strict=False)
            return await self._store.advance_recovery(replace(base, matched=matched), ())
        if job.scan_done:
            if job.pending == 0:
                done = replace(job, state="completed")
                outbox = self._recovery.told(JOB_COMPLETED, done, now)
                log.info(
                    "recovery %s completed: %d queued",
                    job.id,
                    job.enqueued,
                    extra={"tenant_id": job.tenant_id, "recovery_id": job.id},
                )
                return await self._store.advance_recovery(replace(base, complete=True), outbox)
            await self._pause(POLL_SECONDS)
            return await self._store.advance_recovery(base, ())
        if job.pending >= self._batch:
            await self._pause(POLL_SECONDS)
            return await self._store.advance_recovery(base, ())
        destinations = await self._recovery.job_destinations(job.tenant_id, job.spec.destination_id)
        found = await self._store.scan_undelivered(
            _job_scan(job.tenant_id, job.spec, job.cursor, self._batch)
        )
        tasks = tuple(
            QueuedPair(c.event, p.destination_id, p.next_number)
            for c in found
            for p in _to_send(c, destinations, job.spec)
        )
        last = (found[-1].event.time, found[-1].event.id) if found else None
        step = replace(
            base,
            tasks=tasks,
            cursor=last,
            scan_done=len(found) < self._batch,
        )
        return await self._store.advance_recovery(step, ())
