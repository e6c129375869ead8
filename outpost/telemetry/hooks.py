"""What the publisher, the delivery worker and the API call when telemetry is on.

Each holds an observer that is None when it is off, so the hot paths pay one `is None` test.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from outpost.core.models import DeliveryResult, DeliveryTask, Destination, Event


class PublishObserver(Protocol):
    def publishing(self) -> int:
        """Called as a publish starts; returns its start time (ns since the epoch)."""
        ...

    def published(self, event: Event, duplicate: bool, started_ns: int) -> None:
        """The event (id and matched destinations set) was accepted, or was a duplicate."""
        ...


class DeliveryObserver(Protocol):
    async def delivering(
        self, task: DeliveryTask, destination: Destination, attempt: Awaitable[DeliveryResult]
    ) -> DeliveryResult:
        """Await `attempt` (one delivery of `task` to `destination`) and observe it."""
        ...


class ApiObserver(Protocol):
    def api_call(self, method: str, path: str, elapsed_ms: int) -> None: ...


class Telemetry(PublishObserver, DeliveryObserver, ApiObserver, Protocol):
    def shutdown(self) -> None:
        """Export what is buffered, then stop the exporters (blocking: run it in a thread)."""
        ...
