"""The per-tenant destination cache: what it keeps, what it forgets, and stale reads."""

from __future__ import annotations

import asyncio

import pytest

from waypost.core.models import Destination
from waypost.storage.destination_cache import DestinationCache, find

pytestmark = pytest.mark.anyio


def destination(id_: str) -> Destination:
    return Destination(id_, "t", "webhook", ("*",), {}, {}, 0, 0)


class Source:
    """Counts loads; `gate` lets a test hold a load in flight."""

    def __init__(self) -> None:
        self.rows = [destination("d1")]
        self.loads = 0
        self.gate: asyncio.Event | None = None

    async def load(self) -> list[Destination]:
        self.loads += 1
        snapshot = list(self.rows)
        if self.gate is not None:
            await self.gate.wait()
        return snapshot


async def test_a_tenant_is_loaded_once_until_forgotten() -> None:
    cache, source = DestinationCache(), Source()
    assert await cache.get("t", source.load) == [destination("d1")]
    await cache.get("t", source.load)
    assert source.loads == 1
    source.rows.append(destination("d2"))
    cache.forget("t")
    assert [d.id for d in await cache.get("t", source.load)] == ["d1", "d2"]
    assert source.loads == 2


async def test_a_read_overtaken_by_a_write_is_not_kept() -> None:
    cache, source = DestinationCache(), Source()
    source.gate = asyncio.Event()
    slow = asyncio.create_task(cache.get("t", source.load))
    await asyncio.sleep(0)  # the slow read has taken its snapshot
    source.rows.append(destination("d2"))
    cache.forget("t")  # the write lands while the read is in flight
    source.gate.set()
    assert [d.id for d in await slow] == ["d1"]  # that caller sees what it read...
    source.gate = None
    assert [d.id for d in await cache.get("t", source.load)] == ["d1", "d2"]  # ...nobody else


async def test_while_not_live_every_read_goes_to_the_source() -> None:
    cache, source = DestinationCache(live=False), Source()
    await cache.get("t", source.load)
    await cache.get("t", source.load)
    assert source.loads == 2
    cache.set_live(True)
    await cache.get("t", source.load)
    await cache.get("t", source.load)
    assert source.loads == 3
    cache.set_live(False)  # notices may have been missed: start again
    await cache.get("t", source.load)
    assert source.loads == 4


async def test_a_reset_during_a_read_keeps_that_read_out_of_the_cache() -> None:
    cache, source = DestinationCache(), Source()
    source.gate = asyncio.Event()
    slow = asyncio.create_task(cache.get("t", source.load))
    await asyncio.sleep(0)
    cache.set_live(True)  # reconnected: whatever was read before may be stale
    source.gate.set()
    await slow
    source.gate = None
    await cache.get("t", source.load)
    assert source.loads == 2


def test_find_by_id() -> None:
    found = [destination("a"), destination("b")]
    assert find(found, "b") == destination("b")
    assert find(found, "c") is None
