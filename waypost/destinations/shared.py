"""What the catalog hands every destination type's factory (its own module, so that a type's
provider can name it without importing the catalog, which imports every type)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from waypost.config import Config
from waypost.destinations.provider import Provider
from waypost.destinations.webhook.settings import WebhookSettings
from waypost.transport.guard import AddressGuard
from waypost.transport.http import HttpClient


@dataclass(frozen=True, slots=True)
class Shared:
    """What every type's factory is given."""

    config: Config
    webhook: WebhookSettings  # deployment-wide: user agent, response body cap, ...
    client: HttpClient  # the HTTP client of the types that speak HTTP (it enforces the guard)
    guard: AddressGuard | None  # the deployment's SSRF guard; None when turned off

    def guard_for(self, type_: str) -> AddressGuard | None:
        """The guard for a type whose connections DESTINATIONS_UNGUARDED_TYPES may exempt."""
        return None if type_ in self.config.destinations_unguarded_types else self.guard


Factory = Callable[[Shared], Provider]
