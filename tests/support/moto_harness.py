"""What the four AWS publisher-suite harnesses share: the provider as bootstrap builds it, a
fresh remote target per destination on the moto server, and polling reads off the loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from destinations.harness import Received, make_destination

from support import moto
from support.waiting import arrivals
from waypost.config import Config
from waypost.core.models import Destination, StrMap
from waypost.destinations.aws.clients import settings_from
from waypost.destinations.aws.provider import AwsProvider
from waypost.destinations.catalog import address_guard
from waypost.destinations.provider import Provider

POLL_INTERVAL = 0.05

ProviderClass = Callable[[Any], AwsProvider]


def build_provider(provider_class: ProviderClass, config: Config | None = None) -> Any:
    # moto listens on loopback, which the SSRF guard opens only when allow-listed.
    allowed = replace(config or Config(), destinations_allowed_networks=("127.0.0.0/8",))
    return provider_class(settings_from(allowed, address_guard(allowed)))


def destination(type_: str, config: StrMap, delivery_metadata: StrMap | None) -> Destination:
    return make_destination(type_, config, moto.credentials(), delivery_metadata=delivery_metadata)


Reader = Callable[[], list[Received]]


class AwsHarness:
    """One AWS type on moto: a subclass names its provider and makes a fresh target (`target`),
    returning the destination's config and a reader of what arrived there."""

    type: str
    provider_class: ProviderClass
    provider: Provider

    def __init__(self) -> None:
        self.provider = build_provider(self.provider_class)
        self._readers: dict[str, Reader] = {}

    def target(self, broken: bool) -> tuple[StrMap, Reader]:
        """A fresh target's config (one the remote refuses when `broken`) and its reader."""
        raise NotImplementedError

    def destination(
        self, *, broken: bool = False, delivery_metadata: StrMap | None = None
    ) -> Destination:
        config, reader = self.target(broken)
        made = destination(self.type, config, delivery_metadata)
        self._readers[made.id] = reader
        return made

    async def received(
        self, destination: Destination, count: int, timeout: float
    ) -> list[Received]:
        return await poll(self._readers[destination.id], count, timeout)


async def poll(read: Callable[[], list[Received]], count: int, timeout: float) -> list[Received]:
    """What `read` (a reader below, blocking) returns once `count` arrived or `timeout` passed."""
    return await arrivals(read, count, timeout, blocking=True, interval=POLL_INTERVAL)


class QueueReader:
    """Drains an SQS queue on moto, keeping every message it has seen."""

    def __init__(self, queue_url: str, parse: Callable[[dict[str, Any]], Received]) -> None:
        self._sqs = moto.client("sqs")
        self._queue_url = queue_url
        self._parse = parse
        self._seen: list[Received] = []

    def __call__(self) -> list[Received]:
        while True:
            messages = self._sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not messages:
                return list(self._seen)
            for message in messages:
                self._seen.append(self._parse(message))
                self._sqs.delete_message(
                    QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
