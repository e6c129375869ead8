"""Hookdeck: the provider as the catalog builds it, delivering to the test receiver on 127.0.0.1.

`DESTINATIONS_HOOKDECK_EVENTS_URL` points at the receiver, so each source id is one of its paths;
everything else (the libcurl client, the SSRF guard opened for loopback) is the real thing.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from support.receiver import Receiver
from support.waiting import arrivals

from destinations.harness import Received, make_destination
from outpost.config import Config
from outpost.core.models import Destination, StrMap
from outpost.destinations.catalog import address_guard
from outpost.destinations.hookdeck.provider import HookdeckProvider
from outpost.destinations.hookdeck.provider import settings_from as hookdeck_settings
from outpost.destinations.webhook.settings import settings_from as webhook_settings
from outpost.transport.http import HttpClient

PREFIX = "x-outpost-"
EVENTS_PATH = "/hook"  # Receiver.new_path gives /hook/<label>-<n>: the source id is the rest


def token_for(source_id: str) -> str:
    return base64.b64encode(f"{source_id}:suite-signing-part".encode()).decode()


class HookdeckHarness:
    type = "hookdeck"

    def __init__(self, receiver: Receiver) -> None:
        config = Config(
            destinations_allowed_networks=("127.0.0.0/8",),
            destinations_hookdeck_events_url=receiver.base_url + EVENTS_PATH,
            destinations_hookdeck_verify_tokens=False,
        )
        webhook = webhook_settings(config)
        client = HttpClient(max_connections=16, user_agent="suite", guard=address_guard(config))
        self.provider = HookdeckProvider(hookdeck_settings(config, webhook), client)
        self._receiver = receiver
        self._paths: dict[str, str] = {}

    def destination(
        self, *, broken: bool = False, delivery_metadata: StrMap | None = None
    ) -> Destination:
        path = self._receiver.new_path("suite")
        if broken:
            self._receiver.set_status(path, 503, b"source paused")
        source_id = path.removeprefix(EVENTS_PATH + "/")
        destination = make_destination(
            "hookdeck",
            {"source_id": source_id},
            {"token": token_for(source_id)},
            delivery_metadata=delivery_metadata,
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
                    if name.startswith(PREFIX)
                },
            )
            for request in requests
        ]


@asynccontextmanager
async def open_harness() -> AsyncIterator[HookdeckHarness]:
    with Receiver() as receiver:
        harness = HookdeckHarness(receiver)
        try:
            yield harness
        finally:
            await harness.provider.close()
