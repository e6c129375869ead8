"""Webhook: the provider as the catalog builds it, and the test receiver on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from support.receiver import Receiver
from support.waiting import arrivals

from destinations.harness import Received, make_destination
from outpost.config import Config
from outpost.core.models import Destination, StrMap
from outpost.destinations.catalog import address_guard
from outpost.destinations.webhook.provider import WebhookProvider
from outpost.destinations.webhook.settings import settings_from as webhook_settings
from outpost.transport.http import HttpClient

PREFIX = "x-outpost-"


class WebhookHarness:
    type = "webhook"

    def __init__(self, receiver: Receiver) -> None:
        config = Config(destinations_allowed_networks=("127.0.0.0/8",))
        settings = webhook_settings(config)
        client = HttpClient(max_connections=16, user_agent="suite", guard=address_guard(config))
        self.provider = WebhookProvider(settings, client)
        self._receiver = receiver
        self._paths: dict[str, str] = {}

    def destination(
        self, *, broken: bool = False, delivery_metadata: StrMap | None = None
    ) -> Destination:
        path = self._receiver.new_path("suite")
        if broken:
            self._receiver.set_status(path, 503, b"down for maintenance")
        config = {"url": self._receiver.url(path)}
        destination = make_destination(
            "webhook", config, {"secret": "suite-secret"}, delivery_metadata=delivery_metadata
        )
        self._paths[destination.id] = path
        return destination

    async def received(
        self, destination: Destination, count: int, timeout: float
    ) -> list[Received]:
        path = self._paths[destination.id]
        requests = await arrivals(lambda: self._receiver.requests_for(path), count, timeout)
        return [
            Received(
                data=request.json(),
                metadata={
                    name[len(PREFIX) :]: value
                    for name, value in request.headers.items()
                    if name.lower().startswith(PREFIX) and name.lower() != PREFIX + "signature"
                },
            )
            for request in requests
        ]


@asynccontextmanager
async def open_harness() -> AsyncIterator[WebhookHarness]:
    with Receiver() as receiver:
        harness = WebhookHarness(receiver)
        try:
            yield harness
        finally:
            await harness.provider.close()
