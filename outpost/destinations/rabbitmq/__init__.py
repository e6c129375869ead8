"""The `rabbitmq` destination type (§5.7): events published to a tenant's exchange."""

from __future__ import annotations

from typing import TYPE_CHECKING

from outpost.destinations.rabbitmq.provider import RabbitMQProvider

if TYPE_CHECKING:
    from outpost.destinations.catalog import Shared


def provider(shared: Shared) -> RabbitMQProvider:
    return RabbitMQProvider(
        timeout_seconds=shared.config.delivery_timeout_seconds,
        include_millisecond_timestamp=shared.config.destinations_include_millisecond_timestamp,
        guard=shared.guard_for(RabbitMQProvider.type),
    )
