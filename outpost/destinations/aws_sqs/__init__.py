"""The `aws_sqs` destination type."""

from __future__ import annotations

from typing import TYPE_CHECKING

from outpost.destinations.aws.clients import settings_from
from outpost.destinations.aws_sqs.provider import AwsSqsProvider

if TYPE_CHECKING:
    from outpost.destinations.catalog import Shared


def provider(shared: Shared) -> AwsSqsProvider:
    return AwsSqsProvider(settings_from(shared.config, shared.guard))
