"""`AwsProvider`, what the four AWS destination types are: credentials, endpoint rules, and one
API call per delivery through a shared client cache, with its failures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

from waypost.core.models import DeliveryResult, Destination, Event, StrMap
from waypost.destinations import sending
from waypost.destinations.aws.clients import AwsSettings, ClientCache, ClientKey, settings_from
from waypost.destinations.schema import SchemaProvider
from waypost.destinations.sending import failed, merged_metadata
from waypost.errors import DeliveryInfrastructureError
from waypost.transport.guard import REFUSED_CODE

if TYPE_CHECKING:
    from waypost.destinations.shared import Shared


def is_absolute_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def endpoint_errors(config: StrMap) -> list[str]:
    """`endpoint`, when given, is where the client sends requests: it must be an absolute URL."""
    endpoint = config.get("endpoint", "")
    if endpoint and not is_absolute_http_url(endpoint):
        return ["config.endpoint failed pattern validation"]
    return []


class AwsProvider(SchemaProvider):
    """A schema-driven provider that talks to one AWS service through a shared client cache."""

    service: str
    extra = "aws"
    url_fields: tuple[str, ...] = ("endpoint",)  # config URLs the client may connect to

    def __init__(self, settings: AwsSettings) -> None:
        super().__init__()
        self._settings = settings
        self._clients = ClientCache(settings)

    @classmethod
    def from_shared(cls, shared: Shared) -> Self:
        """The provider as configured (the catalog's factory for the type)."""
        return cls(settings_from(shared.config, shared.guard))

    def extra_errors(self, destination: Destination) -> list[str]:
        return endpoint_errors(destination.config) or self._address_errors(destination.config)

    def _address_errors(self, config: StrMap) -> list[str]:
        """Literal addresses the guard refuses, at create/update (names resolve at delivery)."""
        guard = self._settings.guard
        if guard is None:
            return []
        return [
            f"config.{key} failed ssrf validation"
            for key in self.url_fields
            if config.get(key) and guard.url_refusal(config[key]) is not None
        ]

    def client_key(self, destination: Destination, region: str, endpoint: str) -> ClientKey:
        credentials = destination.credentials
        return ClientKey(
            service=self.service,
            region=region,
            endpoint=endpoint,
            key=credentials.get("key", ""),
            secret=credentials.get("secret", ""),
            session=credentials.get("session", ""),
        )

    def metadata(self, event: Event, destination: Destination) -> StrMap:
        return merged_metadata(
            event, destination, include_ms=self._settings.include_millisecond_timestamp
        )

    async def call(
        self, destination: Destination, key: ClientKey, operation: str, **params: Any
    ) -> dict[str, Any] | DeliveryResult:
        """The operation's response, or the failed attempt it came to (code ERR, AWS's text)."""
        try:
            return await self._clients.call(key, destination.id, operation, **params)
        except DeliveryInfrastructureError:
            raise
        except Exception as error:  # botocore's, AWS's, and aiohttp's when a pool closes
            if self._clients.closed:
                raise DeliveryInfrastructureError("AWS client closed during delivery") from error
            refusal = sending.refusal(error)
            if refusal is not None:  # the tenant's text: not what the endpoint resolved to
                host = urlsplit(key.endpoint).hostname if key.endpoint else None
                return failed(refusal.refusal.message(host), REFUSED_CODE)
            return failed(str(error) or type(error).__name__)

    async def close(self) -> None:
        await self._clients.close()
