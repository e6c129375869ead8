"""Connections to tenants' brokers, shared by every destination with the same login.

One AMQP connection per (server, username, password, tls), opened on first use and kept in a
`PublisherCache`; within it one confirming channel per exchange, so a publish to a missing
exchange (which makes the broker close that channel) disturbs no other exchange's traffic. A
closed connection or channel is reopened by the next publish; one left unused for `idle_seconds`
is closed, and so is one no destination uses any more after a change of login.

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

from waypost.destinations.publishers import PublisherCache
from waypost.transport import connect
from waypost.transport.guard import AddressGuard


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
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


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
    """AMQP connections in a `PublisherCache`, one per login, each with its channels."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        idle_seconds: float = 300.0,
        guard: AddressGuard | None = None,
    ) -> None:
        self._timeout = connect_timeout
        self._connection_class = aio_pika.Connection if guard is None else _guarded_class(guard)
        self._links: PublisherCache[Login, _Link] = PublisherCache(
            self._connect,
            _disconnect,
            closed_message="the RabbitMQ connection pool is closed",
            idle_seconds=idle_seconds,
            usable=lambda link: not link.connection.is_closed,
        )

    @property
    def closed(self) -> bool:
        return self._links.closed

    @contextlib.asynccontextmanager
    async def channel(
        self, login: Login, exchange: str, holder: str = ""
    ) -> AsyncIterator[AbstractChannel]:
        """A confirming channel for publishing to `exchange`; raises what connecting raised.
        `holder`: the destination publishing."""
        async with self._links.use(login, holder) as link:
            async with link.lock:  # one channel per exchange, opened once
                channel = link.channels.get(exchange)
                if channel is None or channel.is_closed:
                    channel = await link.connection.channel(publisher_confirms=True)
                    link.channels[exchange] = channel
            yield channel

    async def _connect(self, login: Login) -> _Link:
        connection = await aio_pika.connect(
            login.url(), timeout=self._timeout, connection_class=self._connection_class
        )
        return _Link(connection)

    async def close(self) -> None:
        await self._links.close()


async def _disconnect(link: _Link) -> None:
    await link.connection.close()
