"""The seam between the shared publisher suite and one destination type's real remote side.

Each module in `tests/destinations/harnesses/` defines `open_harness()`, an async context manager
yielding a `PublisherHarness` wired to a real server (or the closest real emulator) on loopback.
`test_publisher_suite.py` finds every such module and runs the same cases against each.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from support.receiver import Receiver, RecordedRequest
from support.waiting import arrivals

from waypost.config import Config
from waypost.core.models import Destination, Event, StrMap
from waypost.core.timefmt import now_ms
from waypost.destinations.catalog import address_guard
from waypost.destinations.provider import Provider
from waypost.transport.http import HttpClient


@dataclass(frozen=True)
class Received:
    """One message as the remote side got it, normalised across types.

    `data` is the event's data as parsed by the receiver; `metadata` holds the merged metadata
    (contract.md §4.3) under its plain keys (`event-id`, `topic`, `timestamp`, then the metadata
    keys), whatever carried it (headers, message attributes, a payload envelope).
    """

    data: Any
    metadata: StrMap


class PublisherHarness(Protocol):
    type: str
    provider: Provider  # built from real settings, as the catalog would

    def destination(
        self, *, broken: bool = False, delivery_metadata: StrMap | None = None
    ) -> Destination:
        """A destination on its own fresh target (queue, topic, path...) of the real remote.

        `broken=True` gives one the remote refuses (no such queue, wrong password...).
        """
        ...

    async def received(
        self, destination: Destination, count: int, timeout: float
    ) -> list[Received]:
        """Poll until `count` messages arrived at the destination's target or `timeout` passed;
        return what arrived (possibly more or fewer)."""
        ...


HarnessFactory = Callable[[], AbstractAsyncContextManager[PublisherHarness]]


H = TypeVar("H", bound=PublisherHarness)


@asynccontextmanager
async def provider_closed(harness: H) -> AsyncIterator[H]:
    """The harness, its provider closed when the suite is done with it."""
    try:
        yield harness
    finally:
        await harness.provider.close()


@asynccontextmanager
async def with_receiver(make: Callable[[Receiver], H]) -> AsyncIterator[H]:
    """A harness whose remote side is a fresh test receiver on 127.0.0.1."""
    with Receiver() as receiver:
        async with provider_closed(make(receiver)) as harness:
            yield harness


def loopback_client(config: Config) -> HttpClient:
    """The libcurl client as the server builds it, its SSRF guard from `config`."""
    return HttpClient(max_connections=16, user_agent="suite", guard=address_guard(config))


class ReceiverHarness:
    """The shared half of types whose remote side is the test receiver (HTTP APIs and webhooks):
    each destination gets its own path, and `requests` polls what arrived there."""

    type: str
    provider: Provider

    def __init__(self, receiver: Receiver) -> None:
        self._receiver = receiver
        self._paths: dict[str, str] = {}

    def _at(self, path: str, destination: Destination) -> Destination:
        self._paths[destination.id] = path
        return destination

    async def requests(
        self, destination: Destination, count: int, timeout: float
    ) -> list[RecordedRequest]:
        path = self._paths[destination.id]
        return await arrivals(lambda: self._receiver.requests_for(path), count, timeout)


def prefixed(request: RecordedRequest, prefix: str, *, leave_out: str = "") -> StrMap:
    """The request's `<prefix><key>` headers as {key: value} (but for `leave_out`)."""
    return {
        name[len(prefix) :]: value
        for name, value in request.headers.items()
        if name.startswith(prefix) and name != leave_out
    }


_ids = itertools.count(1)


def make_destination(
    type_: str,
    config: StrMap,
    credentials: StrMap,
    *,
    delivery_metadata: StrMap | None = None,
    tenant_id: str = "suite-tenant",
) -> Destination:
    now = now_ms()
    return Destination(
        id=f"des_suite_{next(_ids)}",
        tenant_id=tenant_id,
        type=type_,
        topics=("*",),
        config=config,
        credentials=credentials,
        created_at=now,
        updated_at=now,
        delivery_metadata=delivery_metadata,
    )


def make_event(
    data: dict[str, Any] | None = None,
    *,
    metadata: StrMap | None = None,
    topic: str = "order.created",
) -> Event:
    n = next(_ids)
    body = data if data is not None else {"order": n, "nested": {"items": [1, 2.5, "three"]}}
    return Event(
        id=f"evt_suite_{n}",
        tenant_id="suite-tenant",
        topic=topic,
        time=now_ms(),
        data=json.dumps(body, separators=(",", ":")).encode(),
        metadata=metadata or {},
    )
