"""The `gcp_pubsub` destination type (§5.6): each event published to a Pub/Sub topic."""

from __future__ import annotations

from typing import TYPE_CHECKING

from outpost.destinations.gcp_pubsub.provider import GcpPubSubProvider

if TYPE_CHECKING:
    from outpost.destinations.catalog import Shared


def provider(shared: Shared) -> GcpPubSubProvider:
    return GcpPubSubProvider(
        timeout_seconds=shared.config.delivery_timeout_seconds,
        include_ms_timestamp=shared.config.destinations_include_millisecond_timestamp,
        guard=shared.guard_for(GcpPubSubProvider.type),
    )
