"""aws_sqs: the provider as the catalog builds it, a fresh queue per destination on moto."""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager
from typing import Any

from support import moto
from support.moto_harness import AwsHarness, QueueReader, Reader

from destinations.harness import Received, provider_closed
from waypost.core.models import StrMap
from waypost.destinations.aws_sqs.provider import AwsSqsProvider


def parse(message: dict[str, Any]) -> Received:
    metadata = json.loads(message["MessageAttributes"]["metadata"]["StringValue"])
    return Received(data=json.loads(message["Body"]), metadata=metadata)


class SqsHarness(AwsHarness):
    type = "aws_sqs"
    provider_class = AwsSqsProvider

    def target(self, broken: bool) -> tuple[StrMap, Reader]:
        name = moto.unique("suite")
        if broken:
            queue_url = f"{moto.endpoint()}/{moto.ACCOUNT}/{name}"  # never created
        else:
            queue_url = moto.client("sqs").create_queue(QueueName=name)["QueueUrl"]
        return {"queue_url": queue_url}, QueueReader(queue_url, parse)


def open_harness() -> AbstractAsyncContextManager[SqsHarness]:
    return provider_closed(SqsHarness())
