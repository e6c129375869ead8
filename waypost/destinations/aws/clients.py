"""aiobotocore clients, one per distinct (service, region, endpoint, credentials), made on demand.

A client owns an aiohttp connection pool, so destinations sharing an account, region and
endpoint share connections. Clients are kept in a `PublisherCache` (at most `max_clients`, the
least recently used idle one closed past that, a destination's old client closed when its
credentials change). Building a client parses the
service's model files (60-140 ms for these services); that parsing is done once per service in a
worker thread so the event loop only pays the few milliseconds of wiring a client together.
aiobotocore itself (with botocore and aiohttp) takes about a second to import, so it is imported
in a worker thread at the first AWS delivery, not at start-up: servers with no AWS destination
never pay for it.

`close()` refuses new calls, lets the calls in flight finish (bounded), then closes every client.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from waypost.config import Config
from waypost.destinations.publishers import PublisherCache
from waypost.transport.guard import AddressGuard

# The AWS SDKs' default: a throttled or dropped request is tried up to 3 times in all.
MAX_ATTEMPTS = 3
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True, slots=True)
class AwsSettings:
    timeout_seconds: float = 5.0  # connect and read, per HTTP request
    max_connections: int = 10  # per client
    max_clients: int = 100
    include_millisecond_timestamp: bool = False
    kinesis_metadata_in_payload: bool = True
    guard: AddressGuard | None = None  # the SSRF guard, checked on every connection opened


def settings_from(config: Config, guard: AddressGuard | None) -> AwsSettings:
    return AwsSettings(
        timeout_seconds=config.delivery_timeout_seconds,
        max_connections=max(config.delivery_max_concurrency, 10),
        include_millisecond_timestamp=config.destinations_include_millisecond_timestamp,
        kinesis_metadata_in_payload=config.destinations_aws_kinesis_metadata_in_payload,
        guard=guard,
    )


@dataclass(frozen=True, slots=True)
class ClientKey:
    service: str
    region: str
    endpoint: str  # "" = AWS's own endpoint for the region
    key: str
    secret: str
    session: str  # "" = long-term credentials


@dataclass(frozen=True, slots=True)
class _Sdk:
    """The aiobotocore session and client configurations, built once in a worker thread."""

    session: Any
    config: Any
    path_style: Any  # `config` with S3 path-style addressing

    @classmethod
    def load(cls, settings: AwsSettings) -> _Sdk:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        config = AioConfig(
            connect_timeout=settings.timeout_seconds,
            read_timeout=settings.timeout_seconds,
            max_pool_connections=settings.max_connections,
            retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
            connector_args={"socket_factory": settings.guard.open_socket} if settings.guard else {},
        )
        path_style = config.merge(AioConfig(s3={"addressing_style": "path"}))
        return cls(get_session(), config, path_style)


class ClientCache:
    """Calls through the clients of a `PublisherCache` (see the module's docstring)."""

    def __init__(self, settings: AwsSettings) -> None:
        self._settings = settings
        self._sdk: asyncio.Task[_Sdk] | None = None
        self._warmed: dict[str, asyncio.Task[None]] = {}
        self._clients: PublisherCache[ClientKey, Any] = PublisherCache(
            self._open,
            _close,
            closed_message="AWS destinations are shutting down",
            max_entries=settings.max_clients,
            drain_seconds=settings.timeout_seconds * MAX_ATTEMPTS + 1,
        )

    async def call(
        self, key: ClientKey, holder: str, operation: str, **params: Any
    ) -> dict[str, Any]:
        """Run one API operation for destination `holder`; AWS's and botocore's exceptions
        propagate to the caller."""
        async with self._clients.use(key, holder) as client:
            response: dict[str, Any] = await getattr(client, operation)(**params)
            return response

    @property
    def closed(self) -> bool:
        return self._clients.closed

    def __len__(self) -> int:
        """How many clients are open or opening."""
        return len(self._clients)

    async def _open(self, key: ClientKey) -> Any:
        if self._sdk is None:
            self._sdk = asyncio.ensure_future(asyncio.to_thread(_Sdk.load, self._settings))
        sdk = await asyncio.shield(self._sdk)
        warming = self._warmed.get(key.service)
        if warming is None:
            warming = self._warmed[key.service] = asyncio.ensure_future(
                asyncio.to_thread(_load_models, sdk.session, key.service)
            )
        await asyncio.shield(warming)
        context = sdk.session.create_client(
            key.service,
            region_name=key.region or DEFAULT_REGION,
            endpoint_url=key.endpoint or None,
            aws_access_key_id=key.key,
            aws_secret_access_key=key.secret,
            aws_session_token=key.session or None,
            # An S3 endpoint of our own (an emulator, a proxy) is addressed path-style: no
            # bucket-name subdomains to resolve.
            config=sdk.path_style if key.service == "s3" and key.endpoint else sdk.config,
        )
        return await context.__aenter__()

    async def close(self) -> None:
        await self._clients.close()


async def _close(client: Any) -> None:
    await client.close()


def _load_models(session: Any, service: str) -> None:
    # The loader caches what it parses, so the client built next finds it ready.
    loader = session.get_component("data_loader")
    loader.load_service_model(service, "service-2")
    loader.load_service_model(service, "endpoint-rule-set-1")
