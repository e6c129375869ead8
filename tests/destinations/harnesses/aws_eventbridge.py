"""aws_eventbridge: the provider as the catalog builds it, a fresh event bus per destination on
moto with a rule forwarding `source: outpost` events to an SQS queue, read back from that queue."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from support import moto
from support.moto_harness import QueueReader, build_provider, destination, poll

from destinations.harness import Received
from outpost.core.models import Destination, StrMap
from outpost.destinations.aws_eventbridge.provider import SOURCE, AwsEventBridgeProvider


def parse(message: dict[str, Any]) -> Received:
    event = json.loads(message["Body"])  # the EventBridge event the rule forwarded
    assert event["source"] == SOURCE
    detail = event["detail"]
    return Received(data=detail["data"], metadata=detail["metadata"])


def bus_to_queue(name: str) -> str:
    """A new event bus `name` whose `source: outpost` events land in a new queue; its URL."""
    events, sqs = moto.client("events"), moto.client("sqs")
    queue_url: str = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.create_event_bus(Name=name)
    events.put_rule(Name=name, EventBusName=name, EventPattern=json.dumps({"source": [SOURCE]}))
    events.put_targets(Rule=name, EventBusName=name, Targets=[{"Id": "queue", "Arn": queue_arn}])
    return queue_url


class EventBridgeHarness:
    type = "aws_eventbridge"

    def __init__(self) -> None:
        self.provider = build_provider(AwsEventBridgeProvider)
        self._readers: dict[str, QueueReader] = {}

    def destination(
        self, *, broken: bool = False, delivery_metadata: StrMap | None = None
    ) -> Destination:
        bus = moto.unique("suite")
        queue_url = moto.client("sqs").create_queue(QueueName=bus)["QueueUrl"]
        if not broken:  # a broken one names a bus that was never created
            queue_url = bus_to_queue(bus + "-bus")
            bus += "-bus"
        config = {"region": moto.REGION, "event_bus_name": bus, "endpoint": moto.endpoint()}
        made = destination("aws_eventbridge", config, delivery_metadata)
        self._readers[made.id] = QueueReader(queue_url, parse)
        return made

    async def received(
        self, destination: Destination, count: int, timeout: float
    ) -> list[Received]:
        return await poll(self._readers[destination.id], count, timeout)


@asynccontextmanager
async def open_harness() -> AsyncIterator[EventBridgeHarness]:
    harness = EventBridgeHarness()
    try:
        yield harness
    finally:
        await harness.provider.close()
