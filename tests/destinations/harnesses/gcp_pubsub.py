"""GCP Pub/Sub: the provider as the catalog builds it, against Google's Pub/Sub emulator.

The emulator (from the Google Cloud CLI) runs on loopback and the provider reaches it through
`config.endpoint`, plaintext gRPC without credentials, exactly as a tenant would configure it.
What the emulator does not exercise: service-account authentication against Google.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from support.pubsub import PubSubEmulator, emulator_binary, running_emulator

from destinations.harness import Received, make_destination
from waypost.config import Config
from waypost.core.models import Destination, StrMap
from waypost.destinations.gcp_pubsub.provider import GcpPubSubProvider

PROJECT = "suite-project"
_topics = itertools.count(1)


class PubSubHarness:
    type = "gcp_pubsub"

    def __init__(self, emulator: PubSubEmulator) -> None:
        config = Config()
        self.provider = GcpPubSubProvider(timeout_seconds=config.delivery_timeout_seconds)
        self._emulator = emulator
        self._subscriptions: dict[str, str] = {}

    def destination(
        self, *, broken: bool = False, delivery_metadata: StrMap | None = None
    ) -> Destination:
        topic = f"suite-topic-{next(_topics)}"
        if not broken:  # a topic that was never created: the emulator answers NOT_FOUND
            subscription = self._emulator.create_topic(PROJECT, topic)
        config = {"project_id": PROJECT, "topic": topic, "endpoint": self._emulator.endpoint}
        destination = make_destination(
            "gcp_pubsub",
            config,
            {"service_account_json": "{}"},
            delivery_metadata=delivery_metadata,
        )
        if not broken:
            self._subscriptions[destination.id] = subscription
        return destination

    async def received(
        self, destination: Destination, count: int, timeout: float
    ) -> list[Received]:
        subscription = self._subscriptions[destination.id]
        deadline = asyncio.get_running_loop().time() + timeout
        got: list[Received] = []
        while len(got) < count and asyncio.get_running_loop().time() < deadline:
            pulled = await asyncio.to_thread(self._emulator.pull, subscription)
            got += [Received(json.loads(m.data), m.attributes) for m in pulled]
            if not pulled:
                await asyncio.sleep(0.05)
        return got


@asynccontextmanager
async def open_harness() -> AsyncIterator[PubSubHarness]:
    if emulator_binary() is None:
        pytest.skip("the Pub/Sub emulator (google-cloud-cli-pubsub-emulator) is not installed")
    with tempfile.TemporaryDirectory() as folder, running_emulator(Path(folder)) as emulator:
        harness = PubSubHarness(emulator)
        try:
            yield harness
        finally:
            await harness.provider.close()
