"""What the server sees of the exporter, and what the exporter reads of a store.

Kept out of `__init__`, which imports `exporter` (the only importer of `prometheus_client`)
when the endpoint is on, so that the package and its exporter do not import each other.
"""

from __future__ import annotations

from typing import Protocol

from waypost.telemetry.hooks import OutcomeObserver, PublishObserver

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # the client's own variable


class Exporter(PublishObserver, OutcomeObserver, Protocol):
    async def scrape(self) -> tuple[bytes, str]:
        """The exposition (body, content type), the store's figures read now."""
        ...

    def close(self) -> None: ...


class Backlog(Protocol):
    """What a store tells a scrape about its queue (cheap, indexed reads)."""

    async def count_due(self, now: int, limit: int) -> int: ...

    async def next_visible_at(self) -> int | None: ...
