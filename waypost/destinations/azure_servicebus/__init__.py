"""The `azure_servicebus` destination type (contract.md §5.5): each event sent to a queue or
topic."""

from waypost.destinations.azure_servicebus.provider import AzureServiceBusProvider

provider = AzureServiceBusProvider.from_shared  # the catalog's factory for this type
