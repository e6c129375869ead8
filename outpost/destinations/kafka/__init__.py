"""The `kafka` destination type (§5.8): each event produced to a topic of the tenant's cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING

from outpost.destinations.kafka.provider import KafkaProvider

if TYPE_CHECKING:
    from outpost.destinations.catalog import Shared


def provider(shared: Shared) -> KafkaProvider:
    return KafkaProvider(
        timeout_seconds=shared.config.delivery_timeout_seconds,
        include_millisecond_timestamp=shared.config.destinations_include_millisecond_timestamp,
        guard=shared.guard_for(KafkaProvider.type),
    )
