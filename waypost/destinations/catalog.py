"""Every destination type this server delivers to, each built by the factory in its own folder.

A type's package exposes `provider(shared) -> Provider` (its provider's `from_shared`): it reads
the type's settings from the configuration and takes what the types share (the webhook
settings, the HTTP client, the SSRF guard). Adding a type is a folder and one line in `TYPES`;
`build` makes the registry from them all, honouring DESTINATIONS_ENABLED_TYPES and
DESTINATIONS_UNGUARDED_TYPES. SDK-backed types import their SDK on first delivery, not here:
a type's modules import without it, so a type whose SDK (its extra, `SchemaProvider.extra`) is
not installed is still registered, as unavailable (registry.py says what that means).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from waypost import extras
from waypost.config import Config
from waypost.destinations import (
    aws_eventbridge,
    aws_kinesis,
    aws_s3,
    aws_sqs,
    azure_servicebus,
    cloudflare_queues,
    gcp_pubsub,
    hookdeck,
    kafka,
    rabbitmq,
    webhook,
)
from waypost.destinations.provider import Provider
from waypost.destinations.registry import Registry
from waypost.destinations.schema import SchemaProvider
from waypost.destinations.shared import Factory, Shared
from waypost.destinations.webhook.settings import settings_from as webhook_settings
from waypost.errors import ConfigError
from waypost.transport.guard import AddressGuard
from waypost.transport.http import HttpClient

# In `/destination-types` order.
TYPES: tuple[Factory, ...] = (
    webhook.provider,
    aws_sqs.provider,
    rabbitmq.provider,
    hookdeck.provider,
    aws_kinesis.provider,
    azure_servicebus.provider,
    aws_s3.provider,
    gcp_pubsub.provider,
    kafka.provider,
    aws_eventbridge.provider,
    cloudflare_queues.provider,
)


def address_guard(config: Config) -> AddressGuard | None:
    """The SSRF guard for deliveries; None when the deployment turned it off."""
    if config.destinations_allow_private_networks:
        return None
    try:
        return AddressGuard(config.destinations_allowed_networks)
    except ValueError as exc:
        raise ConfigError(f"DESTINATIONS_ALLOWED_NETWORKS: {exc}") from None


@dataclass(frozen=True, slots=True)
class Destinations:
    registry: Registry  # every type, the enabled ones creatable and listed
    user_agent: str  # what outgoing HTTP requests say they are
    shared: Shared

    @property
    def guarded(self) -> bool:
        return self.shared.guard is not None

    def unguarded(self) -> Registry:
        """Every type again with no SSRF guard of its own (the operator's sink, which may well
        be on a private network); the HTTP types keep the shared client."""
        config = replace(self.shared.config, destinations_allow_private_networks=True)
        unguarded = providers(replace(self.shared, config=config, guard=None))
        return Registry(unguarded, unavailable=unavailable(unguarded))


def build(config: Config) -> Destinations:
    """The registry of every type, built from `config`; raises ConfigError for settings that
    name no type or cannot work."""
    settings = webhook_settings(config)
    settings.check()
    guard = address_guard(config)
    client = HttpClient(
        max_connections=max(config.delivery_max_concurrency, 10),
        user_agent=settings.user_agent,
        proxy_url=config.destinations_webhook_proxy_url,
        guard=guard,
    )
    shared = Shared(config, settings, client, guard)
    return Destinations(registry(config, providers(shared)), settings.user_agent, shared)


def providers(shared: Shared) -> list[Provider]:
    """Every destination type this server delivers to, in `/destination-types` order."""
    return [make(shared) for make in TYPES]


def registry(config: Config, providers: list[Provider]) -> Registry:
    """The providers, with the types tenants may create (`DESTINATIONS_ENABLED_TYPES`)."""
    known = {provider.type for provider in providers}
    for setting, names in (
        ("DESTINATIONS_ENABLED_TYPES", config.destinations_enabled_types),
        ("DESTINATIONS_UNGUARDED_TYPES", config.destinations_unguarded_types),
    ):
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ConfigError(f"{setting}: unknown destination type(s) {', '.join(unknown)}")
    return Registry(
        providers,
        enabled=config.destinations_enabled_types or None,
        unavailable=unavailable(providers),
    )


def unavailable(providers: list[Provider]) -> dict[str, str]:
    """Type → the extra it needs that is not installed (found without importing it)."""
    return {
        provider.type: provider.extra
        for provider in providers
        if isinstance(provider, SchemaProvider)
        and provider.extra is not None
        and not extras.installed(provider.extra)
    }
