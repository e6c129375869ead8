"""Per-tenant destination lists in memory, kept only while they can be kept fresh.

Publishing reads a tenant's destinations for every event, so both SQL backends cache them. A
write by this process, or a notice of one by another, forgets that tenant; `set_live(False)` (the
notices may be missed, e.g. the LISTEN connection dropped) empties the cache and bypasses it until
`set_live(True)`. A read that started before a forget or a reset is not cached when it ends: it
may hold the rows that were just replaced.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from waypost.core.models import Destination


class DestinationCache:
    def __init__(self, *, live: bool = True) -> None:
        self._lists: dict[str, list[Destination]] = {}
        self._versions: dict[str, int] = {}
        self._epoch = 0
        self._live = live

    async def get(
        self, tenant_id: str, load: Callable[[], Awaitable[list[Destination]]]
    ) -> list[Destination]:
        cached = self._lists.get(tenant_id) if self._live else None
        if cached is None:
            stamp = self._stamp(tenant_id)
            cached = await load()
            if self._live and self._stamp(tenant_id) == stamp:
                self._lists[tenant_id] = cached
        return list(cached)

    def forget(self, tenant_id: str) -> None:
        self._versions[tenant_id] = self._versions.get(tenant_id, 0) + 1
        self._lists.pop(tenant_id, None)

    def set_live(self, live: bool) -> None:
        self._lists.clear()
        self._epoch += 1
        self._live = live

    def _stamp(self, tenant_id: str) -> tuple[int, int]:
        return self._epoch, self._versions.get(tenant_id, 0)


def find(destinations: list[Destination], destination_id: str) -> Destination | None:
    return next((d for d in destinations if d.id == destination_id), None)
