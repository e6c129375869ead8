"""The `webhook` destination type: signed JSON POSTs to a customer's HTTP endpoint (§4)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from outpost.destinations.webhook.provider import WebhookProvider
from outpost.destinations.webhook.settings import WebhookSettings

if TYPE_CHECKING:
    from outpost.destinations.catalog import Shared

__all__ = ["WebhookProvider", "WebhookSettings", "provider"]


def provider(shared: Shared) -> WebhookProvider:
    return WebhookProvider(shared.webhook, shared.client)
