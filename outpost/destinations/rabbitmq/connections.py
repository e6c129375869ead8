"""Connections to tenants' brokers, shared by every destination with the same login.

One AMQP connection per (server, username, password, tls), opened on first use and kept; within
it one confirming channel per exchange, so a publish to a missing exchange (which makes the broker
close that channel) disturbs no other exchange's traffic. A closed connection or channel is
reopened by the next publish; one left unused for `idle_seconds` is closed.

With the SSRF guard, the AMQP connection's socket is opened by `transport.connect` (every
address the broker's name resolves to is checked, and only a checked one is connected to) through
aiormq's transport-factory seam; TLS is still verified against the broker's host name.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq.connection import TransportFactory
from aiormq.exceptions import AMQPConnectionError
from yarl import URL

from outpost.transport import connect
from outpost.transport.guard import AddressGuard


@dataclass(frozen=True, slots=True)
class Login:
    server_url: str  # host:port[/vhost], no scheme
    username: str
    password: str
    tls: bool

    def url(self) -> str:
        scheme = "amqps" if self.tls else "amqp"
        user, password = quote(self.username, safe=""), quote(self.password, safe="")
        return f"{scheme}://{user}:{password}@{self.server_url}"


@dataclass(slots=True)
class _Link:
    connection: AbstractConnection
    channels: dict[str, AbstractChannel] = field(default_factory=dict)
    in_use: int = 0
    last_used: float = 0.0


class _GuardedTransport(TransportFactory):
    """aiormq's TCP/TLS transport, with the socket opened through the guard."""

    def __init__(self, guard: AddressGuard) -> None:
        self._guard = guard

    async def create(
        self, url: URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        provider = kwargs.pop("ssl_context_provider", None)
        tls = await provider.get_context() if url.scheme == "amqps" and provider else None
        try:
            return await connect.open_connection(
                self._guard, url.host or "", url.port or 5672, ssl=tls, **kwargs
            )
        except OSError as e:  # aiormq's own factories report socket failures this way
            raise AMQPConnectionError(*e.args) from e


def _guarded_class(guard: AddressGuard) -> type[aio_pika.Connection]:
    """An aio-pika connection class whose AMQP connection uses the guarded transport (aio-pika
    passes only known keyword arguments down to aiormq, so the factory is added after)."""
    factory = _GuardedTransport(guard)

    class GuardedConnection(aio_pika.Connection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.kwargs["transport_factory"] = factory

    return GuardedConnection


class ConnectionPool:
    def __init__(
        self,
        *,
        connect_timeout: float,
        idle_seconds: float = 300.0,
        guard: AddressGuard | None = None,
    ) -> None:
        self._timeout = connect_timeout
        self._connection_class = aio_pika.Connection if guard is None else _guarded_class(guard)
        self._idle = idle_seconds
        self._links: dict[Login, _Link] = {}
        self._locks: dict[Login, asyncio.Lock] = {}
        self._failures: dict[Login, tuple[float, Exception]] = {}
        self._closed = False
        self._last_sweep = 0.0

    @property
    def closed(self) -> bool:
        return self._closed

    @contextlib.asynccontextmanager
    async def channel(self, login: Login, exchange: str) -> AsyncIterator[AbstractChannel]:
        """A confirming channel for publishing to `exchange`; raises what connecting raised."""
        link, channel = await self._open(login, exchange)  # counted as in use
        try:
            await self._sweep()
            yield channel
        finally:
            link.in_use -= 1
            link.last_used = asyncio.get_running_loop().time()

    async def _open(self, login: Login, exchange: str) -> tuple[_Link, AbstractChannel]:
        loop = asyncio.get_running_loop()
        waiting_since = loop.time()
        lock = self._locks.setdefault(login, asyncio.Lock())
        async with lock:  # one connect per login at a time; the cached path does not wait
            if self._closed:
                raise ConnectionError("the RabbitMQ connection pool is closed")
            link = self._links.get(login)
            if link is None or link.connection.is_closed:
                failed = self._failures.get(login)
                if failed is not None and failed[0] >= waiting_since:
                    # An attempt failed while we queued behind it: its answer is ours too,
                    # rather than one more connect timeout per waiting event.
                    raise failed[1]
                try:
                    connection = await aio_pika.connect(
                        login.url(),
                        timeout=self._timeout,
                        connection_class=self._connection_class,
                    )
                except Exception as exc:
                    self._failures[login] = (loop.time(), exc)
                    raise
                self._failures.pop(login, None)
                if self._closed:  # closed while we were connecting
                    await connection.close()
                    raise ConnectionError("the RabbitMQ connection pool is closed")
                link = _Link(connection)
                self._links[login] = link
            channel = link.channels.get(exchange)
            if channel is None or channel.is_closed:
                channel = await link.connection.channel(publisher_confirms=True)
                link.channels[exchange] = channel
            link.in_use += 1  # so that the sweep cannot close what we are about to use
        return link, channel

    async def _sweep(self) -> None:
        """Close connections nobody has used for a while (a destination deleted or re-keyed)."""
        now = asyncio.get_running_loop().time()
        if now - self._last_sweep < self._idle / 4:
            return
        self._last_sweep = now
        stale = [
            login
            for login, link in self._links.items()
            if link.in_use == 0 and link.last_used and now - link.last_used > self._idle
        ]
        for login in stale:
            link = self._links.pop(login)
            self._locks.pop(login, None)
            with contextlib.suppress(Exception):
                await link.connection.close()

    async def close(self) -> None:
        self._closed = True
        links, self._links = list(self._links.values()), {}
        await asyncio.gather(*(link.connection.close() for link in links), return_exceptions=True)
