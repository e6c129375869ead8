"""RabbitMQ: the provider as the catalog builds it, against the real broker on 127.0.0.1:5672.

Each destination gets its own topic exchange with a queue bound to `#`, declared when the
harness opens (`destination()` is synchronous) and deleted when it closes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from support.rabbitmq import Exchanges, header_text

from destinations.harness import Received, make_destination
from waypost.core.models import Destination, StrMap
from waypost.destinations.rabbitmq.provider import RabbitMQProvider

SERVER = "127.0.0.1:5672"
CREDENTIALS = {"username": "guest", "password": "guest"}
PREPARED = 4  # exchanges per harness; each suite case uses one or two


class RabbitMQHarness:
    type = "rabbitmq"

    def __init__(self, exchanges: Exchanges, prepared: list[str]) -> None:
        self.provider = RabbitMQProvider(timeout_seconds=10, include_millisecond_timestamp=False)
        self._exchanges = exchanges
        self._prepared = prepared
        self._targets: dict[str, str] = {}

    def destination(
        self, *, broken: bool = False, delivery_metadata: StrMap | None = None
    ) -> Destination:
        exchange = f"missing-{uuid.uuid4().hex[:8]}" if broken else self._prepared.pop()
        config = {"server_url": SERVER, "exchange": exchange, "tls": "false"}
        destination = make_destination(
            "rabbitmq", config, dict(CREDENTIALS), delivery_metadata=delivery_metadata
        )
        self._targets[destination.id] = exchange
        return destination

    async def received(
        self, destination: Destination, count: int, timeout: float
    ) -> list[Received]:
        messages = await self._exchanges.messages(self._targets[destination.id], count, timeout)
        return [
            Received(
                data=json.loads(message.body),
                metadata={k: header_text(v) for k, v in (message.headers or {}).items()},
            )
            for message in messages
        ]


@asynccontextmanager
async def open_harness() -> AsyncIterator[RabbitMQHarness]:
    async with Exchanges.open() as exchanges:
        prepared = [await exchanges.create() for _ in range(PREPARED)]
        harness = RabbitMQHarness(exchanges, prepared)
        try:
            yield harness
        finally:
            await harness.provider.close()
