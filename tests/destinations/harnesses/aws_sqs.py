"""aws_sqs: the provider as the catalog builds it, a fresh queue per destination on moto."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from support import moto
from support.moto_harness import QueueReader, build_provider, destination, poll

from destinations.harness import Received
from outpost.core.models import Destination, StrMap
from outpost.destinations.aws_sqs.provider import AwsSqsProvider


def parse(message: dict[str, Any]) -> Received:
    metadata = json.loads(message["MessageAttributes"]["metadata"]["StringValue"])
    return Received(data=json.loads(message["Body"]), metadata=metadata)


class SqsHarness:
    type = "aws_sqs"

    def __init__(self) -> None:
        self.provider = build_provider(AwsSqsProvider)
        self._sqs = moto.client("sqs")
        self._readers: dict[str, QueueReader] = {}

    def destination(
        self, *, broken: bool = False, delivery_metadata: StrMap | None = None
    ) -> Destination:
        name = moto.unique("suite")
        if broken:
            queue_url = f"{moto.endpoint()}/{moto.ACCOUNT}/{name}"  # never created
        else:
            queue_url = self._sqs.create_queue(QueueName=name)["QueueUrl"]
        made = destination("aws_sqs", {"queue_url": queue_url}, delivery_metadata)
        self._readers[made.id] = QueueReader(queue_url, parse)
        return made

    async def received(
        self, destination: Destination, count: int, timeout: float
    ) -> list[Received]:
        return await poll(self._readers[destination.id], count, timeout)


@asynccontextmanager
async def open_harness() -> AsyncIterator[SqsHarness]:
    harness = SqsHarness()
    try:
        yield harness
    finally:
        await harness.provider.close()
