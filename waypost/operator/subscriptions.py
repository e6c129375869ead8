"""`tenant.subscription.updated` (contract.md §7.4): told after a destination create, update,
delete, enable or disable changed the tenant's `topics` or `destinations_count` (as `GET /tenants`
shows them).

`SubscriptionTracking` is the tenant store the API uses when that topic is wanted: it wraps the
real one and, around each destination write, compares the tenant's subscription before and after.
The event is queued in the outbox right after the write (its own commit: best effort, as in
Outpost; a crash between the two loses it). Concurrent edits of one tenant may each report the
state they saw.
"""

from __future__ import annotations

from dataclasses import dataclass

from waypost.core import topics as topic_rules
from waypost.core.models import Destination, StrMap, Tenant
from waypost.core.paging import Page, PageRequest
from waypost.core.timefmt import now_ms
from waypost.operator import envelope
from waypost.operator.alerts import SUBSCRIPTION_UPDATED
from waypost.storage.protocols import OperatorStore, TenantStore


@dataclass(frozen=True, slots=True)
class Subscription:
    topics: list[str]
    destinations_count: int

    @classmethod
    def of(cls, destinations: list[Destination]) -> Subscription:
        return cls(topic_rules.tenant_topics(d.topics for d in destinations), len(destinations))


class SubscriptionTracking:
    """A `TenantStore` that queues `tenant.subscription.updated` when a write changes one."""

    def __init__(self, store: TenantStore, outbox: OperatorStore, deployment_id: str) -> None:
        self._store = store
        self._outbox = outbox
        self._deployment_id = deployment_id

    async def _subscription(self, tenant_id: str) -> Subscription:
        return Subscription.of(await self._store.list_destinations(tenant_id))

    async def _tell(self, tenant_id: str, before: Subscription) -> None:
        after = await self._subscription(tenant_id)
        if after == before:
            return
        data = {
            "tenant_id": tenant_id,
            "topics": after.topics,
            "previous_topics": before.topics,
            "destinations_count": after.destinations_count,
            "previous_destinations_count": before.destinations_count,
        }
        record = envelope.record(
            SUBSCRIPTION_UPDATED,
            data,
            tenant_id=tenant_id,
            deployment_id=self._deployment_id,
            now=now_ms(),
        )
        await self._outbox.add_operator_events([record])

    # The destination writes, observed

    async def create_destination(self, destination: Destination, limit: int) -> None:
        before = await self._subscription(destination.tenant_id)
        await self._store.create_destination(destination, limit)
        await self._tell(destination.tenant_id, before)

    async def update_destination(self, destination: Destination) -> bool:
        before = await self._subscription(destination.tenant_id)
        updated = await self._store.update_destination(destination)
        if updated:
            await self._tell(destination.tenant_id, before)
        return updated

    async def delete_destination(self, tenant_id: str, destination_id: str, now: int) -> bool:
        before = await self._subscription(tenant_id)
        deleted = await self._store.delete_destination(tenant_id, destination_id, now)
        if deleted:
            await self._tell(tenant_id, before)
        return deleted

    # Everything else, passed through

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        return await self._store.get_tenant(tenant_id)

    async def upsert_tenant(
        self, tenant_id: str, metadata: StrMap | None, now: int
    ) -> tuple[Tenant, bool]:
        return await self._store.upsert_tenant(tenant_id, metadata, now)

    async def delete_tenant(self, tenant_id: str, now: int) -> bool:
        return await self._store.delete_tenant(tenant_id, now)

    async def list_tenants(self, ids: tuple[str, ...], request: PageRequest) -> Page[Tenant]:
        return await self._store.list_tenants(ids, request)

    async def list_destinations(self, tenant_id: str) -> list[Destination]:
        return await self._store.list_destinations(tenant_id)

    async def get_destination(self, tenant_id: str, destination_id: str) -> Destination | None:
        return await self._store.get_destination(tenant_id, destination_id)
