"""The `aws_sqs` destination type (contract.md §5.2): one SendMessage per event.

The body is the event's data as sent; the merged metadata travels as one String message
attribute, `metadata`, holding a JSON object. The region comes from the queue URL's host.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote, urlsplit

from waypost.core.models import DeliveryResult, Destination, Event
from waypost.core.sent_headers import noted
from waypost.destinations.aws.clients import DEFAULT_REGION
from waypost.destinations.aws.provider import AwsProvider

# sqs.<region>.amazonaws.com (also LocalStack's sqs.<region>.localhost.localstack.cloud) and the
# legacy <region>.queue.amazonaws.com.
_REGION_IN_HOST = re.compile(
    r"(?:^|\.)sqs\.([a-z]{2}(?:-[a-z]+)+-\d+)\.|^([a-z]{2}(?:-[a-z]+)+-\d+)\.queue\."
)
_AWS_QUEUE_URL = re.compile(r"^https://sqs\.([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com/")


def queue_region(queue_url: str) -> str:
    """The region named by the queue URL's host, else the default (emulators ignore it)."""
    match = _REGION_IN_HOST.search(urlsplit(queue_url).hostname or "")
    return (match.group(1) or match.group(2)) if match else DEFAULT_REGION


def queue_endpoint(queue_url: str) -> str:
    parts = urlsplit(queue_url)
    return f"{parts.scheme}://{parts.netloc}"


class AwsSqsProvider(AwsProvider):
    type = "aws_sqs"
    package = "waypost.destinations.aws_sqs"
    service = "sqs"
    url_fields = ("queue_url", "endpoint")

    def target(self, destination: Destination) -> tuple[str, str]:
        queue_url = destination.config.get("queue_url", "")
        match = _AWS_QUEUE_URL.match(queue_url)
        if match is None:
            return queue_url, ""
        region = match.group(1)
        console = (
            f"https://{region}.console.aws.amazon.com/sqs/v2/home?region={region}"
            f"#/queues/{quote(queue_url, safe='')}"
        )
        return queue_url, console

    async def publish(self, event: Event, destination: Destination) -> DeliveryResult:
        queue_url = destination.config.get("queue_url", "")
        endpoint = destination.config.get("endpoint") or queue_endpoint(queue_url)
        key = self.client_key(destination, queue_region(queue_url), endpoint)
        metadata = json.dumps(self.metadata(event, destination), separators=(",", ":"))
        outcome = await self.call(
            destination,
            key,
            "send_message",
            QueueUrl=queue_url,
            MessageBody=event.data.decode("utf-8"),
            MessageAttributes={"metadata": {"DataType": "String", "StringValue": metadata}},
        )
        sent = [("metadata", metadata)]  # the message attribute, a JSON object as text
        if isinstance(outcome, DeliveryResult):
            return noted(outcome, sent)
        return noted(DeliveryResult("success", "OK", {}), sent)
