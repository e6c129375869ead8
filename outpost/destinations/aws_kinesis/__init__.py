"""The `aws_kinesis` destination type."""

from __future__ import annotations

from typing import TYPE_CHECKING

from outpost.destinations.aws.clients import settings_from
from outpost.destinations.aws_kinesis.provider import AwsKinesisProvider

if TYPE_CHECKING:
    from outpost.destinations.catalog import Shared


def provider(shared: Shared) -> AwsKinesisProvider:
    return AwsKinesisProvider(settings_from(shared.config, shared.guard))
