"""The publisher cache every destination type keeps its connections in (`destinations.publishers`).

The cache's own rules are checked with plain objects standing in for connections (what is opened
and closed, and when); one case then checks a real RabbitMQ connection is closed when a
destination's login changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import pytest
from support.rabbitmq import Exchanges

from destinations.harness import make_destination, make_event
from destinations.harnesses.rabbitmq import CREDENTIALS, SERVER
from waypost.destinations.publishers import PublisherCache
from waypost.destinations.rabbitmq.connections import Login
from waypost.destinations.rabbitmq.provider import RabbitMQProvider
from waypost.errors import DeliveryInfrastructureError

pytestmark = pytest.mark.anyio


class Conn:
    def __init__(self, key: str) -> None:
        self.key = key
        self.closed = False
        self.usable = True


class Remote:
    """Opens and closes `Conn`s, counting; `gate` holds every open until set."""

    def __init__(self) -> None:
        self.opened: list[Conn] = []
        self.failures = 0  # how many of the next opens fail
        self.gate = asyncio.Event()
        self.gate.set()

    async def open(self, key: str) -> Conn:
        await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError(f"{key} refused")
        conn = Conn(key)
        self.opened.append(conn)
        return conn

    async def close(self, conn: Conn) -> None:
        assert not conn.closed, "closed twice"
        conn.closed = True

    def cache(self, **options: object) -> PublisherCache[str, Conn]:
        return PublisherCache(self.open, self.close, closed_message="closed", **options)  # type: ignore[arg-type]


async def until(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def used(cache: PublisherCache[str, Conn], key: str, holder: str = "") -> Conn:
    async with cache.use(key, holder) as conn:
        return conn


async def test_concurrent_first_uses_of_a_key_open_it_once() -> None:
    remote = Remote()
    cache = remote.cache()
    remote.gate.clear()
    waiting = [asyncio.ensure_future(used(cache, "a")) for _ in range(20)]
    await asyncio.sleep(0)
    remote.gate.set()
    got = await asyncio.gather(*waiting)
    assert len(remote.opened) == 1
    assert all(conn is remote.opened[0] for conn in got)
    await cache.close()


async def test_a_failed_open_is_every_waiters_answer_and_the_next_use_tries_again() -> None:
    remote = Remote()
    cache = remote.cache()
    remote.failures = 1
    remote.gate.clear()
    waiting = [asyncio.ensure_future(used(cache, "a")) for _ in range(5)]
    await asyncio.sleep(0)
    remote.gate.set()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(o, ConnectionRefusedError) for o in outcomes)
    assert len({id(o) for o in outcomes}) == 1, "one attempt, one answer shared"
    assert len(cache) == 0
    assert (await used(cache, "a")).key == "a"
    await cache.close()


async def test_past_the_bound_the_least_recently_used_is_closed() -> None:
    remote = Remote()
    cache = remote.cache(max_entries=2)
    a = await used(cache, "a")
    b = await used(cache, "b")
    assert await used(cache, "a") is a  # a is now the most recently used
    c = await used(cache, "c")
    assert len(cache) == 2
    await until(lambda: b.closed)
    assert not a.closed and not c.closed
    await cache.close()


async def test_one_in_use_is_not_evicted_until_its_use_ends() -> None:
    remote = Remote()
    cache = remote.cache(max_entries=1)
    async with cache.use("a") as a:
        b = await used(cache, "b")
        assert not a.closed
    await until(lambda: a.closed or b.closed)
    assert len(cache) == 1
    await cache.close()


async def test_with_idle_seconds_one_left_unused_is_closed_by_a_later_use() -> None:
    remote = Remote()
    cache = remote.cache(idle_seconds=0.05)
    a = await used(cache, "a")
    deadline = asyncio.get_running_loop().time() + 5
    while not a.closed:  # other keys' deliveries keep going; "a" is never used again
        assert asyncio.get_running_loop().time() < deadline, "the idle publisher stayed open"
        await used(cache, "b")
        await asyncio.sleep(0.01)
    assert len(cache) == 1
    await cache.close()


async def test_a_destination_whose_key_changes_gets_a_new_publisher_and_the_old_is_closed() -> None:
    remote = Remote()
    cache = remote.cache()
    old = await used(cache, "login-1", holder="d1")
    new = await used(cache, "login-2", holder="d1")
    assert new is not old
    await until(lambda: old.closed)
    assert not new.closed
    await cache.close()


async def test_a_publisher_another_destination_still_uses_is_kept() -> None:
    remote = Remote()
    cache = remote.cache()
    shared = await used(cache, "login-1", holder="d1")
    assert await used(cache, "login-1", holder="d2") is shared
    await used(cache, "login-2", holder="d1")
    await asyncio.sleep(0)
    assert not shared.closed
    await used(cache, "login-2", holder="d2")  # the last holder moves too
    await until(lambda: shared.closed)
    await cache.close()


async def test_a_change_during_a_delivery_closes_the_old_publisher_after_it() -> None:
    remote = Remote()
    cache = remote.cache()
    async with cache.use("login-1", "d1") as old:
        await used(cache, "login-2", holder="d1")
        await asyncio.sleep(0)
        assert not old.closed, "the delivery in flight keeps its connection"
    await until(lambda: old.closed)
    await cache.close()


async def test_one_no_longer_usable_is_closed_and_opened_again() -> None:
    remote = Remote()
    cache = remote.cache(usable=lambda conn: conn.usable)
    first = await used(cache, "a")
    first.usable = False  # e.g. the broker dropped the connection
    second = await used(cache, "a")
    assert second is not first
    await until(lambda: first.closed)
    await cache.close()


async def test_shutdown_closes_every_publisher_and_refuses_new_uses() -> None:
    remote = Remote()
    cache = remote.cache()
    conns = [await used(cache, key, holder=key) for key in ("a", "b", "c")]
    await cache.close()
    assert all(conn.closed for conn in conns)
    assert cache.closed
    with pytest.raises(DeliveryInfrastructureError):
        await used(cache, "a")


async def test_one_opening_during_shutdown_is_closed_when_it_opens() -> None:
    remote = Remote()
    cache = remote.cache()
    remote.gate.clear()
    waiting = asyncio.ensure_future(used(cache, "a"))
    await asyncio.sleep(0)
    closing = asyncio.ensure_future(cache.close())
    await asyncio.sleep(0)
    remote.gate.set()
    await closing
    with pytest.raises(DeliveryInfrastructureError):
        await waiting
    assert [conn.closed for conn in remote.opened] == [True]


async def test_shutdown_waits_for_uses_in_flight_up_to_the_drain() -> None:
    remote = Remote()
    cache = remote.cache(drain_seconds=30)
    release = asyncio.Event()

    async def delivery() -> bool:
        async with cache.use("a") as conn:
            await release.wait()
            return conn.closed  # closed under the delivery?

    running = asyncio.ensure_future(delivery())
    await until(lambda: len(remote.opened) == 1)
    closing = asyncio.ensure_future(cache.close())
    await asyncio.sleep(0)
    release.set()
    assert await running is False
    await closing
    assert remote.opened[0].closed


async def test_a_rabbitmq_connection_is_closed_when_its_destinations_login_changes() -> None:
    provider = RabbitMQProvider(timeout_seconds=5, include_millisecond_timestamp=False)
    async with Exchanges.open() as exchanges:
        exchange = await exchanges.create()
        first = make_destination(
            "rabbitmq", {"server_url": SERVER, "exchange": exchange}, CREDENTIALS
        )
        assert (await provider.publish(make_event(), first)).ok
        old = provider._pool._links.peek(Login(SERVER, "guest", "guest", tls=False))
        assert old is not None and not old.connection.is_closed
        # The same destination, now naming the broker another way: another login.
        moved = replace(first, config={**first.config, "server_url": "localhost:5672"})
        assert (await provider.publish(make_event(), moved)).ok
        await until(lambda: old.connection.is_closed)
        assert len(provider._pool._links) == 1
        assert len(await exchanges.messages(exchange, 2, 10)) == 2
    await provider.close()
