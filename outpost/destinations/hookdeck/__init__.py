"""The `hookdeck` destination type (§5.1): events forwarded to a Hookdeck source."""

from __future__ import annotations

from typing import TYPE_CHECKING

from outpost.config import Config
from outpost.destinations.hookdeck.provider import HookdeckProvider, HookdeckSettings
from outpost.destinations.webhook.settings import WebhookSettings

if TYPE_CHECKING:
    from outpost.destinations.catalog import Shared


def provider(shared: Shared) -> HookdeckProvider:
    return HookdeckProvider(settings_from(shared.config, shared.webhook), shared.client)


def settings_from(config: Config, webhook: WebhookSettings) -> HookdeckSettings:
    return HookdeckSettings(
        events_url=config.destinations_hookdeck_events_url,
        api_url=config.destinations_hookdeck_api_url,
        verify_tokens=config.destinations_hookdeck_verify_tokens,
        timeout_seconds=config.delivery_timeout_seconds,
        max_response_body_bytes=webhook.max_response_body_bytes,
        include_ms_timestamp=config.destinations_include_millisecond_timestamp,
        user_agent=webhook.user_agent,
    )
