"""The `rabbitmq` destination type (contract.md §5.7): events published to a tenant's exchange."""

from waypost.destinations.rabbitmq.provider import RabbitMQProvider

provider = RabbitMQProvider.from_shared  # the catalog's factory for this type
