"""The `kafka` destination type (contract.md §5.8): each event produced to a topic of the tenant's
cluster."""

from waypost.destinations.kafka.provider import KafkaProvider

provider = KafkaProvider.from_shared  # the catalog's factory for this type
