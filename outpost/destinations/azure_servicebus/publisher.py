"""Sending to Service Bus with azure-servicebus's asyncio client (AMQP 1.0 on the event loop).

Imported on the first delivery only (the SDK takes about 0.4 s to import).

One `ServiceBusClient` per connection string and one sender per (connection string, entity),
kept open and shared by every destination using them. A sender addresses its entity by name,
the same for a queue and a topic, so `get_queue_sender` serves both. The SDK's own retries are
off: a failed send is a failed attempt, and Outpost's retry schedule takes over.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from azure.servicebus import ServiceBusMessage
from azure.servicebus.aio import ServiceBusClient, ServiceBusSender
from azure.servicebus.exceptions import ServiceBusError

from outpost.core.models import StrMap

_SenderKey = tuple[str, str]  # (connection string, queue or topic name)

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


class ServiceBusPublisher:
    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = timeout_seconds
        self._clients: dict[str, ServiceBusClient] = {}
        self._senders: dict[_SenderKey, ServiceBusSender] = {}
        self._opening: dict[_SenderKey, asyncio.Lock] = {}
        self._opened: set[_SenderKey] = set()
        self._closed = False

    async def send(self, connection_string: str, name: str, message: ServiceBusMessage) -> None:
        """Raises ValueError for a connection string the SDK cannot read."""
        key = (connection_string, name)
        sender = self._sender(key)
        try:
            await self._send(key, sender, message)
        except (ServiceBusError, OSError) as exc:
            if self._closed:
                raise ClientClosed from exc
            raise SendError(str(exc) or type(exc).__name__) from exc

    async def close(self) -> None:
        self._closed = True
        senders, self._senders = list(self._senders.values()), {}
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(s.close() for s in senders), return_exceptions=True)
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)

    def _sender(self, key: _SenderKey) -> ServiceBusSender:
        sender = self._senders.get(key)
        if sender is None:
            connection_string, name = key
            client = self._clients.get(connection_string)
            if client is None:
                client = ServiceBusClient.from_connection_string(connection_string, retry_total=0)
                self._clients[connection_string] = client
            sender = client.get_queue_sender(name)
            self._senders[key] = sender
        return sender

    async def _send(
        self, key: _SenderKey, sender: ServiceBusSender, msg: ServiceBusMessage
    ) -> None:
        if key in self._opened:
            await sender.send_messages(msg, timeout=self._timeout)
            return
        # The first send opens the AMQP link; concurrent first sends wait for it instead of
        # each racing to open their own.
        lock = self._opening.setdefault(key, asyncio.Lock())
        async with lock:
            await sender.send_messages(msg, timeout=self._timeout)
            self._opened.add(key)
