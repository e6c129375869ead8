"""The `gcp_pubsub` destination type (contract.md §5.6): each event published to a Pub/Sub topic."""

from waypost.destinations.gcp_pubsub.provider import GcpPubSubProvider

provider = GcpPubSubProvider.from_shared  # the catalog's factory for this type
