"""Webhook: the provider as the catalog builds it, and the test receiver on 127.0.0.1."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from support.receiver import Receiver

from destinations.harness import (
    Received,
    ReceiverHarness,
    loopback_client,
    make_destination,
    prefixed,
    with_receiver,
)
from waypost.config import Config
from waypost.core.models import Destination, StrMap
from waypost.destinations.webhook.provider import WebhookProvider
from waypost.destinations.webhook.settings import settings_from as webhook_settings

PREFIX = "x-outpost-"


class WebhookHarness(ReceiverHarness):
    type = "webhook"

    def __init__(self, receiver: Receiver) -> None:
        super().__init__(receiver)
        config = Config(destinations_allowed_networks=("127.0.0.0/8",))
        self.provider = WebhookProvider(webhook_settings(config), loopback_client(config))

    def destination(
        self, *, broken: bool = False, delivery_metadata: StrMap | None = None
    ) -> Destination:
        path = self._receiver.new_path("suite")
        if broken:
            self._receiver.set_status(path, 503, b"down for maintenance")
        config = {"url": self._receiver.url(path)}
        return self._at(
            path,
            make_destination(
                "webhook", config, {"secret": "suite-secret"}, delivery_metadata=delivery_metadata
            ),
        )

    async def received(
        self, destination: Destination, count: int, timeout: float
    ) -> list[Received]:
        return [
            Received(
                data=request.json(),
                metadata=prefixed(request, PREFIX, leave_out=PREFIX + "signature"),
            )
            for request in await self.requests(destination, count, timeout)
        ]


def open_harness() -> AbstractAsyncContextManager[WebhookHarness]:
    return with_receiver(WebhookHarness)
