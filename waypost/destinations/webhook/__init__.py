"""The `webhook` destination type: signed JSON POSTs to a customer's HTTP endpoint (contract.md
§4)."""

from waypost.destinations.webhook.provider import WebhookProvider
from waypost.destinations.webhook.settings import WebhookSettings

__all__ = ["WebhookProvider", "WebhookSettings", "provider"]

provider = WebhookProvider.from_shared  # the catalog's factory for this type
