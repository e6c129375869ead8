"""The PostgreSQL backend: tenant store, log store and delivery queue for many processes.

Workers in any process are woken by NOTIFY when work is queued; destinations are cached per
tenant while the LISTEN connection that invalidates them is up, and read through otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib

from outpost.core.models import Attempt, DeliveryTask, Destination, Event, Outcome, StrMap, Tenant
from outpost.core.paging import AttemptQuery, EventQuery, Page, PageRequest
from outpost.core.timefmt import now_ms
from outpost.storage.destination_cache import DestinationCache, find
from outpost.storage.postgres import ops
from outpost.storage.postgres.database import Database
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

    async def open(self) -> None:
        await self._db.open(run_migrations=self._migrate)
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

    async def get_events(self, event_ids: list[str]) -> dict[str, Event]:
        return await self._db.read(lambda c: ops.get_events(c, event_ids))

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

    # The delivery queue

    async def accept(self, event: Event, now: int, dedupe_after: int) -> bool:
        duplicate, _ = await self.accept_held(event, now, dedupe_after, hold_ms=0)
        return duplicate

    async def accept_held(
        self, event: Event, now: int, dedupe_after: int, *, hold_ms: int
    ) -> tuple[bool, list[int]]:
        """`accept`, with the tasks kept from claims for `hold_ms` (while a broker hands them
        out); returns the duplicate flag and the ids of the tasks queued."""
        return await self._db.write(
            lambda c: ops.accept_event(c, event, now, dedupe_after, now + hold_ms)
        )

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
        await self._db.write(lambda c: ops.finish(c, outcomes))

    async def release(self, task: DeliveryTask, delay_ms: int) -> None:
        await self._db.write(lambda c: ops.release(c, task, now_ms() + delay_ms))

    async def next_visible_at(self) -> int | None:
        return await self._db.read(ops.next_visible_at)

    def wake(self) -> None:
        self._work.set()

    async def wait_for_work(self, timeout: float) -> None:
        """Return when work was queued by any process (NOTIFY), or after `timeout` seconds."""
        if timeout > 0 and not self._work.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._work.wait(), timeout)
        self._work.clear()
