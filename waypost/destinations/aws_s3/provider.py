"""The `aws_s3` destination type (contract.md §5.4): one PutObject per event.

The object is the event's data as published; its key is a JMESPath template evaluated over
`{"data", "metadata", "time"}` with `time` taken from the event (not the delivery), so a retry
writes the same key. A template that yields nothing is a formatting failure: nothing is written.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from waypost.core.models import DeliveryResult, Destination, Event, StrMap
from waypost.core.sent_headers import noted
from waypost.destinations.aws.provider import AwsProvider
from waypost.destinations.aws.templates import (
    TemplateError,
    as_text,
    compiles,
    evaluate,
    time_fields,
)
from waypost.destinations.sending import format_failure

DEFAULT_KEY_TEMPLATE = "join('', [time.rfc3339_nano, '_', metadata.\"event-id\", '.json'])"
DEFAULT_STORAGE_CLASS = "STANDARD"
# S3's StorageClass values (a unit test keeps this in step with botocore's model of S3).
STORAGE_CLASSES = frozenset(
    {
        "STANDARD",
        "REDUCED_REDUNDANCY",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER",
        "DEEP_ARCHIVE",
        "OUTPOSTS",
        "GLACIER_IR",
        "SNOW",
        "EXPRESS_ONEZONE",
        "FSX_OPENZFS",
        "FSX_ONTAP",
        "AWS_BACKUP_WARM",
        "AWS_BACKUP_LOW_COST_WARM",
    }
)


def object_key(template: str, event: Event, metadata: StrMap) -> str:
    """The key the template gives for this event; `TemplateError` when it gives none."""
    document = {
        "data": json.loads(event.data),
        "metadata": metadata,
        "time": time_fields(event.time),
    }
    value: Any = evaluate(template or DEFAULT_KEY_TEMPLATE, document)
    if value is None or isinstance(value, dict | list):
        raise TemplateError(f"key template gave {json.dumps(value)}")
    key = as_text(value)
    if not key:
        raise TemplateError("key template gave an empty key")
    return key


class AwsS3Provider(AwsProvider):
    type = "aws_s3"
    package = "waypost.destinations.aws_s3"
    service = "s3"

    def extra_errors(self, destination: Destination) -> list[str]:
        config = destination.config
        errors = []
        template = config.get("key_template", "")
        if template and not compiles(template):
            errors.append("config.key_template failed pattern validation")
        storage_class = config.get("storage_class", "")
        if storage_class and storage_class.upper() not in STORAGE_CLASSES:
            errors.append("config.storage_class failed enum validation")
        return errors + super().extra_errors(destination)

    def target(self, destination: Destination) -> tuple[str, str]:
        bucket, region = destination.config.get("bucket", ""), destination.config.get("region", "")
        console = f"https://s3.console.aws.amazon.com/s3/buckets/{bucket}?region={region}"
        return f"{bucket} in {region}", console

    async def publish(self, event: Event, destination: Destination) -> DeliveryResult:
        config = destination.config
        metadata = self.metadata(event, destination)
        try:
            key = object_key(config.get("key_template", ""), event, metadata)
        except (TemplateError, ValueError):
            return format_failure()
        bucket = config.get("bucket", "")
        client = self.client_key(destination, config.get("region", ""), config.get("endpoint", ""))
        outcome = await self.call(
            destination,
            client,
            "put_object",
            Bucket=bucket,
            Key=key,
            Body=event.data,
            ContentType="application/json",
            Metadata=metadata,
            StorageClass=(config.get("storage_class") or DEFAULT_STORAGE_CLASS).upper(),
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=base64.b64encode(hashlib.sha256(event.data).digest()).decode(),
        )
        # The object's headers as S3 stores them: its content type and user metadata.
        sent = [("Content-Type", "application/json")]
        sent += [(f"x-amz-meta-{name}", value) for name, value in metadata.items()]
        if isinstance(outcome, DeliveryResult):
            return noted(outcome, sent)
        return noted(DeliveryResult("success", "OK", {"bucket": bucket, "key": key}), sent)
