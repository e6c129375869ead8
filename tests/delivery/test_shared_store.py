"""Two backends on one SQLite file, as embedded mode's server and delivery process open it.

Here both live in one test process (each with its own connections and writer thread), linked by
a real socket pair: what these pin is what the link and the writer lock carry, which is the same
in one process or two. tests/e2e/test_delivery_process.py runs the real pair of processes.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from support.waiting import until

from waypost.core.backoff import RetryPolicy
from waypost.core.ids import IdGenerator
from waypost.core.models import Attempt, Destination, Event
from waypost.core.paging import AttemptQuery, PageRequest
from waypost.core.timefmt import now_ms
from waypost.delivery.worker import DeliveryWorker, WorkerSettings
from waypost.destinations.registry import Registry
from waypost.errors import ConfigError
from waypost.storage.sealing import Sealer
from waypost.storage.sqlite.backend import SqliteBackend
from waypost.storage.sqlite.peer import Peer

from .test_worker import StandIn, ok

pytestmark = pytest.mark.anyio
SEALER = Sealer("shared-store-tests")


@dataclass
class Pair:
    owner: SqliteBackend  # the server: publishes, edits destinations
    other: SqliteBackend  # the delivery process: claims and records


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    owner = SqliteBackend(tmp_path, sealer=SEALER, synchronous="NORMAL", shared=True)
    other = SqliteBackend(tmp_path, sealer=SEALER, synchronous="NORMAL", owner=False)
    await owner.open()
    await other.open()
    ours, theirs = socket.socketpair()
    await owner.link(Peer(ours))
    await other.link(Peer(theirs))
    await owner.upsert_tenant("t", None, now_ms())
    await owner.create_destination(
        Destination("d", "t", "webhook", ("*",), {"url": "https://a.example"}, {}, 0, 0),
        limit=20,
    )
    yield Pair(owner, other)
    await other.close()
    await owner.close()


def worker_on(store: SqliteBackend, provider: StandIn, concurrency: int = 4) -> DeliveryWorker:
    # Idle polls a minute apart: a delivery within seconds means the link woke the worker.
    settings = WorkerSettings(concurrency=concurrency, lease_ms=60_000, idle_poll_ms=60_000)
    policy = RetryPolicy(max_retries=0, interval_seconds=1)
    return DeliveryWorker(
        queue=store,
        destinations=store,
        registry=Registry([provider]),
        policy=policy,
        ids=IdGenerator(),
        settings=settings,
    )


def event(n: int) -> Event:
    return Event(f"e{n}", "t", "a", now_ms(), b"{}", True, {}, "", ("d",))


async def test_work_published_by_the_server_wakes_the_delivery_process(pair: Pair) -> None:
    provider = StandIn(ok)
    worker = worker_on(pair.other, provider)
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.2)  # let the worker find nothing and settle into its idle wait
        await pair.owner.accept(event(1), now_ms(), 0)
        await until(lambda: _calls(provider, 1), timeout=10)
    finally:
        worker.stop()
        await running
    assert [a.event_id for a in await attempts(pair.owner)] == ["e1"]


async def test_destination_writes_are_heard_by_the_other_process(pair: Pair) -> None:
    cached = await pair.other.get_destination("t", "d")
    assert cached is not None and cached.config["url"] == "https://a.example"
    edited = replace(cached, config={"url": "https://b.example"}, updated_at=now_ms())
    assert await pair.owner.update_destination(edited)

    async def other_sees_b() -> bool:
        seen = await pair.other.get_destination("t", "d")
        return seen is not None and seen.config["url"] == "https://b.example"

    await until(other_sees_b, timeout=5)

    # …and the other way round (the delivery process disables destinations when alerts say so)
    assert (await pair.owner.get_destination("t", "d")) is not None  # cached by the server now
    await pair.other.update_destination(replace(edited, disabled_at=now_ms()))

    async def owner_sees_disabled() -> bool:
        seen = await pair.owner.get_destination("t", "d")
        return seen is not None and seen.disabled_at is not None

    await until(owner_sees_disabled, timeout=5)


async def test_only_the_owner_locks_the_data_folder(pair: Pair, tmp_path: Path) -> None:
    second_owner = SqliteBackend(tmp_path, sealer=SEALER)
    with pytest.raises(ConfigError, match="another outpost process"):
        await second_owner.open()


async def test_interleaved_writers_lose_and_repeat_nothing(pair: Pair) -> None:
    provider = StandIn(ok)
    worker = worker_on(pair.other, provider, concurrency=16)
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.gather(*(pair.owner.accept(event(n), now_ms(), 0) for n in range(300)))
        await until(lambda: _recorded(pair.owner, 300), timeout=30)
    finally:
        worker.stop()
        await running
    assert provider.calls == 300
    assert sorted(a.event_id for a in await attempts(pair.owner)) == sorted(
        f"e{n}" for n in range(300)
    )
    assert await pair.owner.next_visible_at() is None  # no task left behind


async def test_leases_of_a_dead_delivery_process_are_released_by_the_owner(pair: Pair) -> None:
    await pair.owner.accept(event(1), now_ms(), 0)
    claimed = await pair.other.claim(10, lease_ms=600_000)
    assert [t.event.id for t in claimed] == ["e1"]
    assert await pair.owner.claim(10, lease_ms=1000) == []  # leased for ten minutes
    assert await pair.owner.release_leases() == 1
    assert [t.event.id for t in await pair.owner.claim(10, lease_ms=1000)] == ["e1"]


async def attempts(store: SqliteBackend) -> list[Attempt]:
    return (await store.list_attempts(AttemptQuery(), PageRequest(limit=1000, dir="asc"))).items


async def _calls(provider: StandIn, n: int) -> bool:
    return provider.calls >= n


async def _recorded(store: SqliteBackend, n: int) -> bool:
    return len(await attempts(store)) >= n
