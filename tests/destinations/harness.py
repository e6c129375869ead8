"""The seam between the shared publisher suite and one destination type's real remote side.

Each module in `tests/destinations/harnesses/` defines `open_harness()`, an async context manager
yielding a `PublisherHarness` wired to a real server (or the closest real emulator) on loopback.
`test_publisher_suite.py` finds every such module and runs the same cases against each.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from outpost.core.models import Destination, Event, StrMap
from outpost.core.timefmt import now_ms
from outpost.destinations.provider import Provider


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
