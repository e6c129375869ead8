"""aiobotocore clients, one per distinct (service, region, endpoint, credentials), made on demand.

A client owns an aiohttp connection pool, so destinations sharing an account, region and
endpoint share connections. At most `max_clients` are kept: past that, the least recently used
idle one is closed (tenants come and go, credentials rotate). Building a client parses the
service's model files (60-140 ms for these services); that parsing is done once per service in a
worker thread so the event loop only pays the few milliseconds of wiring a client together.
aiobotocore itself (with botocore and aiohttp) takes about a second to import, so it is imported
in a worker thread at the first AWS delivery, not at start-up: servers with no AWS destination
never pay for it.

`close()` refuses new calls, lets the calls in flight finish (bounded), then closes every client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any

from outpost.errors import DeliveryInfrastructureError
from outpost.transport.guard import AddressGuard

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
    def __init__(self, settings: AwsSettings) -> None:
        self._settings = settings
        self._drain_seconds = settings.timeout_seconds * MAX_ATTEMPTS + 1
        self._sdk: asyncio.Task[_Sdk] | None = None
        self._max_clients = settings.max_clients
        self._clients: OrderedDict[ClientKey, asyncio.Task[Any]] = OrderedDict()  # LRU first
        self._users: Counter[ClientKey] = Counter()  # calls in flight per client
        self._closing: set[asyncio.Task[None]] = set()
        self._warmed: dict[str, asyncio.Task[None]] = {}
        self._in_flight = 0
        self._drained = asyncio.Event()
        self._closed = False

    async def call(self, key: ClientKey, operation: str, **params: Any) -> dict[str, Any]:
        """Run one API operation; AWS's and botocore's exceptions propagate to the caller."""
        if self._closed:
            raise DeliveryInfrastructureError("AWS destinations are shutting down")
        self._in_flight += 1
        self._users[key] += 1
        try:
            client = await self._client(key)
            response: dict[str, Any] = await getattr(client, operation)(**params)
            return response
        finally:
            self._in_flight -= 1
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key]
            if self._closed and not self._in_flight:
                self._drained.set()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        """How many clients are open or opening."""
        return len(self._clients)

    async def _client(self, key: ClientKey) -> Any:
        opening = self._clients.get(key)
        if opening is None:
            opening = self._clients[key] = asyncio.ensure_future(self._open(key))
            self._evict()
        else:
            self._clients.move_to_end(key)
        try:
            return await asyncio.shield(opening)
        except Exception:
            if self._clients.get(key) is opening:
                del self._clients[key]  # let the next delivery try again
            raise

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
        client = await context.__aenter__()
        if self._closed:  # close() ran while this one was being built: it would leak
            await client.close()
            raise DeliveryInfrastructureError("AWS destinations are shutting down")
        return client

    def _evict(self) -> None:
        """Close the least recently used clients beyond the bound that no call is using."""
        excess = len(self._clients) - self._max_clients
        idle = [k for k, t in self._clients.items() if t.done() and not self._users[k]]
        for key in idle[: max(excess, 0)]:
            closing = asyncio.ensure_future(_close(self._clients.pop(key)))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        self._closed = True
        if self._in_flight:
            # Calls still running after the wait fail once their client is closed below.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), self._drain_seconds)
        clients, self._clients = list(self._clients.values()), OrderedDict()
        await asyncio.gather(*(_close(opening) for opening in clients), *self._closing)


async def _close(opening: asyncio.Task[Any]) -> None:
    try:
        client = await opening
    except Exception:
        return  # a client that never opened has nothing to close
    await client.close()


def _load_models(session: Any, service: str) -> None:
    # The loader caches what it parses, so the client built next finds it ready.
    loader = session.get_component("data_loader")
    loader.load_service_model(service, "service-2")
    loader.load_service_model(service, "endpoint-rule-set-1")
