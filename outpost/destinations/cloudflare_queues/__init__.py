"""The `cloudflare_queues` destination type: each event sent to a Cloudflare Queue over its
HTTP API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from outpost.config import Config
from outpost.destinations.cloudflare_queues.provider import (
    CloudflareQueuesProvider,
    CloudflareQueuesSettings,
)
from outpost.destinations.webhook.settings import WebhookSettings

if TYPE_CHECKING:
    from outpost.destinations.catalog import Shared


def provider(shared: Shared) -> CloudflareQueuesProvider:
    return CloudflareQueuesProvider(settings_from(shared.config, shared.webhook), shared.client)


def settings_from(config: Config, webhook: WebhookSettings) -> CloudflareQueuesSettings:
    return CloudflareQueuesSettings(
        api_url=config.destinations_cloudflare_api_url,
        timeout_seconds=config.delivery_timeout_seconds,
        max_response_body_bytes=webhook.max_response_body_bytes,
        include_ms_timestamp=config.destinations_include_millisecond_timestamp,
    )
