"""Producers for tenants' clusters, one per (brokers, SASL login, tls), shared by every topic.

A producer is started on first use and kept: aiokafka reconnects it to the cluster by itself.
When starting fails, aiokafka says only "Unable to bootstrap", so one plain connection attempt to
the first broker, then one with the SASL login, tells which step failed (refused, unknown host,
TLS, or the login) for the attempt's code. Producers are kept in a `PublisherCache`: one unused
for `idle_seconds`, or no destination's any more after a change of login, is stopped.

With the SSRF guard (`guard`), every broker connection, bootstrap and advertised, passes it
(`guarded.py`).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError, RequestTimedOutError

from waypost.destinations.kafka.failures import AuthenticationFailed, TlsHandshakeFailed
from waypost.destinations.kafka.guarded import Guarded, create_conn, guarded
from waypost.destinations.kafka.login import SASL_MECHANISMS, ClusterLogin, host_port
from waypost.destinations.publishers import PublisherCache
from waypost.transport.guard import AddressGuard, RefusedAddress


@dataclass(slots=True)
class _Entry:
    producer: AIOKafkaProducer
    guarded: Guarded | None


class ProducerPool:
    """Started producers in a `PublisherCache`, one per cluster login."""

    def __init__(
        self,
        *,
        timeout_seconds: float,
        idle_seconds: float = 300.0,
        max_request_bytes: int = 1_048_576,
        guard: AddressGuard | None = None,
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self.max_request_bytes = max_request_bytes
        self.guard = guard
        self._entries: PublisherCache[ClusterLogin, _Entry] = PublisherCache(
            self._started,
            _stopped,
            closed_message="the kafka producer pool is closed",
            idle_seconds=idle_seconds,
        )

    @property
    def closed(self) -> bool:
        return self._entries.closed

    @contextlib.asynccontextmanager
    async def producer(
        self, login: ClusterLogin, holder: str = ""
    ) -> AsyncIterator[AIOKafkaProducer]:
        """`holder`: the destination producing."""
        async with self._entries.use(login, holder) as entry:
            if entry.guarded is not None:
                entry.guarded.refused = None  # what this use refuses, if anything
            with guarded(entry.guarded):
                yield entry.producer

    async def _started(self, login: ClusterLogin) -> _Entry:
        producer = self._new_producer(login)
        state = Guarded(self.guard) if self.guard is not None else None
        try:
            # The tasks aiokafka starts here inherit the guard, for the brokers the cluster
            # advertises later.
            with guarded(state):
                await producer.start()
        except Exception as exc:
            await producer.stop()
            with guarded(state):
                diagnosed = await self._diagnosed(login, exc)
            raise diagnosed from exc
        return _Entry(producer, state)

    def _new_producer(self, login: ClusterLogin) -> AIOKafkaProducer:
        timeout_ms = int(self.timeout_seconds * 1000)
        return AIOKafkaProducer(
            bootstrap_servers=list(login.brokers),
            client_id="outpost",
            acks="all",  # success means the partition's in-sync replicas have the message
            enable_idempotence=False,
            request_timeout_ms=timeout_ms,
            metadata_max_age_ms=60_000,
            max_request_size=self.max_request_bytes,
            security_protocol=login.security_protocol(),
            ssl_context=ssl.create_default_context() if login.tls else None,
            connections_max_idle_ms=540_000,
            **login.sasl(),
        )

    async def _diagnosed(self, login: ClusterLogin, exc: Exception) -> Exception:
        """The error of the step that fails when connecting to the first broker by hand."""
        host, port = host_port(login.brokers[0])
        options = {
            "client_id": "outpost",
            "request_timeout_ms": int(self.timeout_seconds * 1000),
            "ssl_context": ssl.create_default_context() if login.tls else None,
        }
        plain = "SSL" if login.tls else "PLAINTEXT"
        try:
            conn = await create_conn(host, port, security_protocol=plain, **options)
        except (ConnectionRefusedError, RefusedAddress) as found:
            return found
        except ConnectionError as found:
            if not login.tls:
                return found
            cut_off = TlsHandshakeFailed(f"the TLS handshake was cut off: {found!r}")
            cut_off.__cause__ = found
            return cut_off
        except Exception as found:
            return found
        conn.close()
        if not login.mechanism:
            return exc
        try:
            conn = await create_conn(
                host, port, security_protocol=login.security_protocol(), **login.sasl(), **options
            )
        except (TimeoutError, KafkaTimeoutError, RequestTimedOutError) as found:
            return found  # the broker took the connection but never answered
        except Exception as found:
            refused = AuthenticationFailed(f"SASL {SASL_MECHANISMS[login.mechanism]} login refused")
            refused.__cause__ = found
            return refused
        conn.close()
        return exc

    def refused(self, login: ClusterLogin) -> RefusedAddress | None:
        """The broker connection the guard refused during the last use of `login`'s producer."""
        entry = self._entries.peek(login)
        return entry.guarded.refused if entry is not None and entry.guarded else None

    async def close(self) -> None:
        await self._entries.close()


async def _stopped(entry: _Entry) -> None:
    await entry.producer.stop()
