"""aws_eventbridge: the provider as the catalog builds it, a fresh event bus per destination on
moto with a rule forwarding `source: outpost` events to an SQS queue, read back from that queue."""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager
from typing import Any

from support import moto
from support.moto_harness import AwsHarness, QueueReader, Reader

from destinations.harness import Received, provider_closed
from waypost.core.models import StrMap
from waypost.destinations.aws_eventbridge.provider import SOURCE, AwsEventBridgeProvider


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


class EventBridgeHarness(AwsHarness):
    type = "aws_eventbridge"
    provider_class = AwsEventBridgeProvider

    def target(self, broken: bool) -> tuple[StrMap, Reader]:
        bus = moto.unique("suite")
        queue_url = moto.client("sqs").create_queue(QueueName=bus)["QueueUrl"]
        if not broken:  # a broken one names a bus that was never created
            queue_url = bus_to_queue(bus + "-bus")
            bus += "-bus"
        config = {"region": moto.REGION, "event_bus_name": bus, "endpoint": moto.endpoint()}
        return config, QueueReader(queue_url, parse)


def open_harness() -> AbstractAsyncContextManager[EventBridgeHarness]:
    return provider_closed(EventBridgeHarness())
