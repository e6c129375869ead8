"""The `rabbitmq` destination type (§5.7): events published to a tenant's exchange."""
