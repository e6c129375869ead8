"""Shared by the storage contract suites: the backend type, record builders, and checkers.

Every suite runs once per backend. On a backend shared by the tests of a module (Postgres) a
test sees rows of earlier tests, so tests use ids of their own (`uid`) and filter by them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from support.ids import unique_id

from waypost.core.models import Attempt, AttemptStatus, Destination, Event, Outcome, StrMap
from waypost.core.paging import Direction, Page, PageRequest
from waypost.storage.protocols import (
    DeliveryQueue,
    LogRetention,
    LogStore,
    MetricsStore,
    TenantStore,
)

T = TypeVar("T")
K = TypeVar("K")

# A fixed instant (2026-01-01T00:00:00Z) for records whose time the test chooses.
BASE = 1_767_225_600_000
HOUR = 3_600_000


class Backend(TenantStore, LogStore, DeliveryQueue, MetricsStore, LogRetention, Protocol):
    """What every backend offers: the seams plus its own lifecycle and queue probe."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None: ...


MakeBackend = Callable[[], Backend]

uid = unique_id  # tests of a module may share one database


def event(
    event_id: str,
    tenant_id: str,
    *,
    topic: str = "user.created",
    time: int = BASE,
    data: bytes = b'{"n":1}',
    matched: Sequence[str] = (),
    metadata: StrMap | None = None,
    eligible_for_retry: bool = True,
    destination_id: str = "",
) -> Event:
    return Event(
        id=event_id,
        tenant_id=tenant_id,
        topic=topic,
        time=time,
        data=data,
        eligible_for_retry=eligible_for_retry,
        metadata=metadata if metadata is not None else {},
        destination_id=destination_id,
        matched_destination_ids=tuple(matched),
    )


def destination(
    tenant_id: str,
    destination_id: str,
    *,
    created_at: int = BASE,
    type: str = "webhook",
    topics: Sequence[str] = ("*",),
    url: str = "https://example.com/hook",
    **fields: Any,
) -> Destination:
    return Destination(
        id=destination_id,
        tenant_id=tenant_id,
        type=type,
        topics=tuple(topics),
        config={"url": url},
        credentials={"secret": "whsec_test"},
        created_at=created_at,
        updated_at=created_at,
        **fields,
    )


def attempt(
    attempt_id: str,
    of: Event,
    destination_id: str,
    *,
    time: int,
    number: int = 1,
    status: AttemptStatus = "success",
    destination_type: str = "webhook",
    manual: bool = False,
    code: str = "200",
    response_data: dict[str, Any] | None = None,
    latency_ms: int | None = None,
) -> Attempt:
    return Attempt(
        id=attempt_id,
        tenant_id=of.tenant_id,
        event_id=of.id,
        destination_id=destination_id,
        destination_type=destination_type,
        topic=of.topic,
        status=status,
        time=time,
        attempt_number=number,
        manual=manual,
        code=code,
        response_data=response_data,
        latency_ms=latency_ms,
    )


async def record_attempts(backend: Backend, attempts: Sequence[Attempt]) -> None:
    """Log `attempts` the only way the seams allow: queue a task for each, claim, finish.

    The events must have been accepted. Other due tasks (the automatic first deliveries, or
    leftovers of earlier tests on a shared database) are finished without an attempt.
    """
    events = await backend.get_events(list({(a.tenant_id, a.event_id) for a in attempts}))
    pending: dict[tuple[str, str, int], Attempt] = {}
    for a in attempts:
        key = (a.event_id, a.destination_id, a.attempt_number)
        assert key not in pending, "record_attempts needs distinct (event, destination, number)"
        pending[key] = a
        event = events[(a.tenant_id, a.event_id)]
        await backend.enqueue_manual(event, a.destination_id, a.attempt_number)
    for _ in range(50):
        tasks = await backend.claim(1000, 60_000)
        if not tasks:
            break
        outcomes = [
            Outcome(t, pending.pop((t.event.id, t.destination_id, t.attempt_number), None))
            for t in tasks
        ]
        await backend.finish(outcomes)
    assert not pending, f"tasks never claimed for {sorted(pending)}"


async def walk_pages(
    fetch: Callable[[PageRequest], Awaitable[Page[T]]],
    key: Callable[[T], K],
    *,
    limit: int,
    dir: Direction,
) -> list[K]:
    """Page through a listing forward, then back from the last page, checking every cursor.

    Returns the keys of all items in the order the forward walk met them. Checks (contract.md §1.4):
    the first page has no `prev`; `next` is set exactly when more rows follow; a page reached
    forward has `prev`; going back from page i with its `prev` gives page i-1 in the requested
    order, with `next` set (leading to page i again) and `prev` set exactly when rows precede.
    """
    forward = [await fetch(PageRequest(limit=limit, dir=dir))]
    assert forward[0].prev is None, "the first page has no prev cursor"
    while forward[-1].next is not None:
        assert len(forward) < 1000, "next cursors never end"
        forward.append(await fetch(PageRequest(limit=limit, dir=dir, next=forward[-1].next)))
        assert forward[-1].prev is not None, f"page {len(forward)} reached by next has no prev"
    sizes = [len(p.items) for p in forward]
    full = all(s == limit for s in sizes[:-1]) and 0 < sizes[-1] <= limit
    assert full or sizes == [0], f"page sizes {sizes} with limit {limit}"
    keys = [[key(item) for item in p.items] for p in forward]
    for i in range(len(forward) - 1, 0, -1):
        before = forward[i].prev
        assert before is not None
        back = await fetch(PageRequest(limit=limit, dir=dir, prev=before))
        assert [key(item) for item in back.items] == keys[i - 1], f"prev from page {i + 1}"
        assert (back.prev is not None) == (i - 1 > 0), f"prev of page {i} reached backward"
        assert back.next is not None, f"page {i} reached backward has no next"
        again = await fetch(PageRequest(limit=limit, dir=dir, next=back.next))
        assert [key(item) for item in again.items] == keys[i], f"next from page {i} (backward)"
    return [k for page_keys in keys for k in page_keys]


def undo_sqlite_011(conn: sqlite3.Connection) -> None:
    """Put back the attempt indexes of before SQLite migration 011, for a test that rewinds a
    database's version below it (011 then runs again)."""
    conn.execute("DROP INDEX attempts_by_event")
    conn.execute(
        "CREATE INDEX attempts_by_event "
        "ON attempts (event_id, tenant_id, destination_id, attempt_number)"
    )
    conn.execute(
        "CREATE INDEX attempts_delivered ON attempts (tenant_id, event_id, destination_id) "
        "WHERE status = 'success'"
    )
