"""What the publisher, the delivery worker and the API call when telemetry (OpenTelemetry, or
Prometheus: waypost/prometheus/) is on.

Each holds an observer that is None when it is off, so the hot paths pay one `is None` test.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from waypost.core.models import DeliveryResult, DeliveryTask, Destination, Event, Outcome


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


class OutcomeObserver(Protocol):
    def attempted(self, outcome: Outcome) -> None:
        """An attempt ended and its retry was decided (`outcome.attempt` is set)."""
        ...


class PublishObservers:
    """Two publish observers as one (OpenTelemetry and Prometheus both on): one start time,
    since both count it in ns since the epoch."""

    def __init__(self, first: PublishObserver, second: PublishObserver) -> None:
        self._first = first
        self._second = second

    def publishing(self) -> int:
        return self._first.publishing()

    def published(self, event: Event, duplicate: bool, started_ns: int) -> None:
        self._first.published(event, duplicate, started_ns)
        self._second.published(event, duplicate, started_ns)


def either(first: PublishObserver | None, second: PublishObserver | None) -> PublishObserver | None:
    """The observer that tells both, or the one that is set, or None."""
    if first is None or second is None:
        return first or second
    return PublishObservers(first, second)


class ApiObserver(Protocol):
    def api_call(self, method: str, path: str, elapsed_ms: int) -> None: ...


class Telemetry(PublishObserver, DeliveryObserver, ApiObserver, Protocol):
    def shutdown(self) -> None:
        """Export what is buffered, then stop the exporters (blocking: run it in a thread)."""
        ...
