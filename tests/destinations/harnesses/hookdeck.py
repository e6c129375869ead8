"""Hookdeck: the provider as the catalog builds it, delivering to the test receiver on 127.0.0.1.

`DESTINATIONS_HOOKDECK_EVENTS_URL` points at the receiver, so each source id is one of its paths;
everything else (the libcurl client, the SSRF guard opened for loopback) is the real thing.
"""

from __future__ import annotations

import base64
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
from waypost.destinations.hookdeck.provider import HookdeckProvider
from waypost.destinations.hookdeck.provider import settings_from as hookdeck_settings
from waypost.destinations.webhook.settings import settings_from as webhook_settings

PREFIX = "x-outpost-"
EVENTS_PATH = "/hook"  # Receiver.new_path gives /hook/<label>-<n>: the source id is the rest


def token_for(source_id: str) -> str:
    return base64.b64encode(f"{source_id}:suite-signing-part".encode()).decode()


class HookdeckHarness(ReceiverHarness):
    type = "hookdeck"

    def __init__(self, receiver: Receiver) -> None:
        super().__init__(receiver)
        config = Config(
            destinations_allowed_networks=("127.0.0.0/8",),
            destinations_hookdeck_events_url=receiver.base_url + EVENTS_PATH,
            destinations_hookdeck_verify_tokens=False,
        )
        settings = hookdeck_settings(config, webhook_settings(config))
        self.provider = HookdeckProvider(settings, loopback_client(config))

    def destination(
        self, *, broken: bool = False, delivery_metadata: StrMap | None = None
    ) -> Destination:
        path = self._receiver.new_path("suite")
        if broken:
            self._receiver.set_status(path, 503, b"source paused")
        source_id = path.removeprefix(EVENTS_PATH + "/")
        return self._at(
            path,
            make_destination(
                "hookdeck",
                {"source_id": source_id},
                {"token": token_for(source_id)},
                delivery_metadata=delivery_metadata,
            ),
        )

    async def received(
        self, destination: Destination, count: int, timeout: float
    ) -> list[Received]:
        return [
            Received(data=request.json(), metadata=prefixed(request, PREFIX))
            for request in await self.requests(destination, count, timeout)
        ]


def open_harness() -> AbstractAsyncContextManager[HookdeckHarness]:
    return with_receiver(HookdeckHarness)
