"""The `aws_eventbridge` destination type."""

from __future__ import annotations

from typing import TYPE_CHECKING

from outpost.destinations.aws.clients import settings_from
from outpost.destinations.aws_eventbridge.provider import AwsEventBridgeProvider

if TYPE_CHECKING:
    from outpost.destinations.catalog import Shared


def provider(shared: Shared) -> AwsEventBridgeProvider:
    return AwsEventBridgeProvider(settings_from(shared.config, shared.guard))
