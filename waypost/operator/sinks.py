"""Where operator events go: one sink per deployment (contract.md §7.4).

`HttpSink` POSTs the envelope, signed. Every other sink is a destination provider (rabbitmq,
aws_sqs, gcp_pubsub, ...) delivering to a synthetic destination built from the OPERATOR_EVENTS_*
settings: the envelope is the event's data, the operator topic its topic. So a sink type exists
exactly when the server has that destination type, and behaves as its deliveries do.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Protocol

from waypost.core.models import Destination, Event
from waypost.core.operator_records import OperatorRecord
from waypost.destinations.provider import Provider
from waypost.errors import DeliveryInfrastructureError
from waypost.transport.http import HttpClient, HttpTransportError

SIGNATURE_HEADER = "X-Outpost-Signature"
HTTP_TIMEOUT_SECONDS = 5.0  # for one send, its quick retries included
HTTP_RETRY_DELAYS = (0.1, 0.2)  # then the outbox tries again later, with a longer backoff


class SinkError(Exception):
    """The sink did not take the event; the relay will send it again later."""


class Sink(Protocol):
    name: str

    async def send(self, record: OperatorRecord) -> None:
        """Hand one event over; raise SinkError when it was not taken."""
        ...

    async def close(self) -> None: ...


def signature(secret: str, body: bytes) -> str:
    """`v0=<hex HMAC-SHA256 of the body>`, as webhooks are signed in default mode."""
    return "v0=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class HttpSink:
    name = "http"

    def __init__(self, url: str, secret: str, client: HttpClient) -> None:
        self._url = url
        self._secret = secret
        self._client = client

    async def send(self, record: OperatorRecord) -> None:
        headers = [("Content-Type", "application/json")]
        if self._secret:
            headers.append((SIGNATURE_HEADER, signature(self._secret, record.body)))
        problem = "timed out"
        try:
            async with asyncio.timeout(HTTP_TIMEOUT_SECONDS):
                for delay in (*HTTP_RETRY_DELAYS, None):
                    problem = await self._post(headers, record.body)
                    if not problem:
                        return
                    if delay is not None:
                        await asyncio.sleep(delay)
        except TimeoutError:
            pass
        raise SinkError(f"{self._url}: {problem}")

    async def _post(self, headers: list[tuple[str, str]], body: bytes) -> str:
        """'' when accepted, else what went wrong."""
        try:
            response = await self._client.post(
                self._url, headers, body, timeout=HTTP_TIMEOUT_SECONDS, max_body=1024
            )
        except HttpTransportError as exc:
            return str(exc)
        return "" if response.status < 400 else f"HTTP {response.status}"

    async def close(self) -> None:
        await self._client.aclose()


class ProviderSink:
    """A destination provider delivering to one synthetic destination. The provider belongs to
    the registry (which closes it) and this sink only borrows it, unless `owned`."""

    def __init__(
        self, provider: Provider, destination: Destination, *, owned: bool = False
    ) -> None:
        self.name = provider.type
        self._owned = owned
        self._provider = provider
        self._destination = destination

    async def send(self, record: OperatorRecord) -> None:
        event = Event(
            id=record.id,
            tenant_id="",
            topic=record.topic,
            time=record.created_at,
            data=record.body,
            eligible_for_retry=False,
        )
        try:
            result = await self._provider.publish(event, self._destination)
        except DeliveryInfrastructureError as exc:
            raise SinkError(str(exc)) from exc
        if not result.ok:
            raise SinkError(f"{self.name}: {result.code} {result.response_data or ''}".strip())

    async def close(self) -> None:
        if self._owned:
            await self._provider.close()
