"""The `azure_servicebus` destination type (§5.5): each event sent to a queue or topic."""

from __future__ import annotations

from typing import TYPE_CHECKING

from outpost.destinations.azure_servicebus.provider import AzureServiceBusProvider

if TYPE_CHECKING:
    from outpost.destinations.catalog import Shared


def provider(shared: Shared) -> AzureServiceBusProvider:
    return AzureServiceBusProvider(
        timeout_seconds=shared.config.delivery_timeout_seconds,
        include_ms_timestamp=shared.config.destinations_include_millisecond_timestamp,
        guard=shared.guard_for(AzureServiceBusProvider.type),
    )
