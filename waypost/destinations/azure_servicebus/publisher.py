"""Sending to Service Bus with azure-servicebus's asyncio client (AMQP 1.0 on the event loop).

Imported on the first delivery only (the SDK takes about 0.4 s to import).

One `ServiceBusClient` per connection string (kept in a `PublisherCache`) and within it one
sender per entity, kept open and shared by every destination using them. A sender addresses its
entity by name, the same for a queue and a topic, so `get_queue_sender` serves both. The SDK's
own retries are off: a failed send is a failed attempt, and Outpost's retry schedule takes over.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from azure.servicebus import ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient, ServiceBusSender
from azure.servicebus.exceptions import ServiceBusError

from waypost.core.models import StrMap
from waypost.destinations.publishers import PublisherCache

# The SDK logs every connection attempt and retry decision at INFO; the attempt record already
# says what failed, so only its warnings and errors reach our log.
logging.getLogger("azure").setLevel(logging.WARNING)


class SendError(Exception):
    """Service Bus refused the message or could not be reached; the text says why."""


class ClientClosed(Exception):
    """`close()` shut the connection under the send: our shutdown, not the entity's failure."""


def build_message(data: bytes, metadata: StrMap) -> ServiceBusMessage:
    """Body = the event's data as published; application properties = merged metadata."""
    properties: dict[str | bytes, Any] = {key: value for key, value in metadata.items()}
    return ServiceBusMessage(data, application_properties=properties)


@dataclass(slots=True)
class _Namespace:
    """One connection string's client, and its senders by queue or topic name."""

    client: ServiceBusClient
    senders: dict[str, ServiceBusSender] = field(default_factory=dict)
    opening: dict[str, asyncio.Lock] = field(default_factory=dict)
    opened: set[str] = field(default_factory=set)


class ServiceBusPublisher:
    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = timeout_seconds
        self._namespaces: PublisherCache[str, _Namespace] = PublisherCache(
            _connect, _disconnect, closed_message="azure_servicebus provider closed"
        )

    async def send(
        self, connection_string: str, name: str, message: ServiceBusMessage, holder: str = ""
    ) -> None:
        """Raises ValueError for a connection string the SDK cannot read. `holder`: the
        destination sending."""
        async with self._namespaces.use(connection_string, holder) as namespace:
            sender = namespace.senders.get(name)
            if sender is None:
                sender = namespace.senders[name] = namespace.client.get_queue_sender(name)
            try:
                await self._send(namespace, name, sender, message)
            except (ServiceBusError, OSError) as exc:
                if self._namespaces.closed:
                    raise ClientClosed from exc
                raise SendError(str(exc) or type(exc).__name__) from exc

    async def close(self) -> None:
        await self._namespaces.close()

    async def _send(
        self, namespace: _Namespace, name: str, sender: ServiceBusSender, msg: ServiceBusMessage
    ) -> None:
        if name in namespace.opened:
            await sender.send_messages(msg, timeout=self._timeout)
            return
        # The first send opens the AMQP link; concurrent first sends wait for it instead of
        # each racing to open their own.
        lock = namespace.opening.setdefault(name, asyncio.Lock())
        async with lock:
            await sender.send_messages(msg, timeout=self._timeout)
            namespace.opened.add(name)


async def _connect(connection_string: str) -> _Namespace:
    return _Namespace(ServiceBusClient.from_connection_string(connection_string, retry_total=0))


async def _disconnect(namespace: _Namespace) -> None:
    senders = list(namespace.senders.values())
    await asyncio.gather(*(s.close() for s in senders), return_exceptions=True)
    await namespace.client.close()
