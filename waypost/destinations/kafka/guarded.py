"""Every broker connection aiokafka opens for a tenant's cluster, through the SSRF guard.

A producer connects to the bootstrap brokers the tenant gave, then to whatever brokers the
cluster advertises in its metadata: an address the tenant did not type, and each must pass too.
aiokafka opens all of them with `aiokafka.client.create_conn`, which calls the loop's
`create_connection(host, port)`; there is no socket seam, so `create_conn` is replaced (once, at
import) by one that gives the connection a loop whose `create_connection` goes through
`transport.connect` when a guard is in effect. The guard is carried by a context variable set
while a producer starts: the background tasks aiokafka creates then (metadata refresh, sender)
inherit it, so the connections they open later are checked as well. Without a guard in the
context (the guard is off), connections open as aiokafka opens them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import aiokafka.client
from aiokafka.conn import AIOKafkaConnection

from waypost.transport import connect
from waypost.transport.guard import AddressGuard, RefusedAddress


class Guarded:
    """One producer's guard, and the last connection it refused: aiokafka swallows a failed
    broker connection (it retries, then reports the topic or a timeout), so the attempt looks
    here to say what really stopped it."""

    def __init__(self, guard: AddressGuard) -> None:
        self.guard = guard
        self.refused: RefusedAddress | None = None


_GUARD: ContextVar[Guarded | None] = ContextVar("outpost_kafka_guard", default=None)


@contextlib.contextmanager
def guarded(state: Guarded | None) -> Iterator[None]:
    """Connections aiokafka opens in this context (and in tasks created in it) pass the guard."""
    token = _GUARD.set(state)
    try:
        yield
    finally:
        _GUARD.reset(token)


async def create_conn(host: str, port: int, **options: Any) -> AIOKafkaConnection:
    """aiokafka's `create_conn`, with the guard in effect applied to the connection."""
    conn = AIOKafkaConnection(host, port, **options)
    state = _GUARD.get()
    if state is None:
        await conn.connect()
        return conn
    conn._loop = _GuardedLoop(conn._loop, state.guard)
    try:
        await conn.connect()
    except RefusedAddress as exc:
        state.refused = exc
        raise
    return conn


class _GuardedLoop:
    """The running loop, except that `create_connection` opens its socket through the guard."""

    def __init__(self, loop: asyncio.AbstractEventLoop, guard: AddressGuard) -> None:
        self._loop = loop
        self._guard = guard

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)

    async def create_connection(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str,
        port: int,
        *,
        ssl: Any = None,
        **_: Any,
    ) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
        return await connect.create_connection(self._guard, protocol_factory, host, port, ssl=ssl)


aiokafka.client.create_conn = create_conn
