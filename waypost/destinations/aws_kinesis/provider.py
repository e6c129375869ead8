"""The `aws_kinesis` destination type (contract.md §5.3): one PutRecord per event.

With `DESTINATIONS_AWS_KINESIS_METADATA_IN_PAYLOAD` (the default) the record is the envelope
`{"metadata": {...}, "data": <event data>}`, else the event data alone. The partition key is the
optional JMESPath template evaluated over that record, falling back to the event id.
"""

from __future__ import annotations

import json
from typing import Any

from waypost.core.models import DeliveryResult, Destination, Event, StrMap
from waypost.destinations.aws.provider import AwsProvider
from waypost.destinations.aws.templates import TemplateError, as_text, evaluate
from waypost.destinations.sending import format_failure


def envelope(metadata: StrMap, data: bytes) -> bytes:
    """`{"metadata": ..., "data": ...}` around the event's data bytes exactly as published."""
    head = json.dumps({"metadata": metadata}, separators=(",", ":")).encode()
    return head[:-1] + b',"data":' + data + b"}"


def partition_key(template: str, record: Any, event_id: str) -> str:
    """The template's value over the record; the event id when it is empty or finds nothing."""
    if not template:
        return event_id
    try:
        value = evaluate(template, record)
    except TemplateError:
        return event_id
    if value is None:
        return event_id
    return as_text(value) or event_id


class AwsKinesisProvider(AwsProvider):
    type = "aws_kinesis"
    package = "waypost.destinations.aws_kinesis"
    service = "kinesis"

    def target(self, destination: Destination) -> tuple[str, str]:
        config = destination.config
        return f"{config.get('stream_name', '')} in {config.get('region', '')}", ""

    async def publish(self, event: Event, destination: Destination) -> DeliveryResult:
        config = destination.config
        template = config.get("partition_key_template", "")
        if self._settings.kinesis_metadata_in_payload:
            metadata = self.metadata(event, destination)
            record = envelope(metadata, event.data)
        else:
            record = event.data
        if template:
            try:
                document: Any = json.loads(record)
            except ValueError:
                return format_failure()
        else:
            document = None
        key = partition_key(template, document, event.id)
        client = self.client_key(destination, config.get("region", ""), config.get("endpoint", ""))
        outcome = await self.call(
            destination,
            client,
            "put_record",
            StreamName=config.get("stream_name", ""),
            Data=record,
            PartitionKey=key,
        )
        if isinstance(outcome, DeliveryResult):
            return outcome
        return DeliveryResult(
            "success",
            "OK",
            {
                "shard_id": outcome.get("ShardId", ""),
                "sequence_number": outcome.get("SequenceNumber", ""),
                "partition_key": key,
            },
        )
