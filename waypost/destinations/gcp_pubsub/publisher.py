"""Publishing to Pub/Sub with google-cloud-pubsub's asyncio GAPIC client.

Imported on the first delivery only (the SDK takes about half a second to import), so an API
process, or a server with no gcp_pubsub destination, never pays for it.

One `PublisherAsyncClient` (gRPC on the event loop) per (endpoint, service account key), kept in
a `PublisherCache` and shared by every destination using them, so the destinations of one
project share one HTTP/2 channel.
The client's own retries are off: a failed publish is a failed attempt, and Outpost's retry
schedule takes it from there.

With the SSRF guard, an emulator endpoint's name is resolved here, every address checked, and the
channel opened to the checked address itself (`ipv4:`/`ipv6:` target, gRPC's proxy support off):
gRPC resolves and connects in its own C core, out of reach of a socket hook, and the emulator's
channel is plaintext, so no server name needs keeping. Google's own endpoint is ours, not the
tenant's; what the key can steer (its token URI, its universe domain) is checked by the provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
from collections.abc import AsyncIterator

import grpc
from google.api_core import exceptions as google_errors
from google.auth.credentials import AnonymousCredentials
from google.oauth2 import service_account
from google.pubsub_v1 import PubsubMessage
from google.pubsub_v1.services.publisher import PublisherAsyncClient
from google.pubsub_v1.services.publisher.transports import PublisherGrpcAsyncIOTransport

from waypost.core.models import StrMap
from waypost.destinations.publishers import PublisherCache
from waypost.transport.guard import AddressGuard, Refusal, RefusedAddress

PUBSUB_SCOPE = "https://www.googleapis.com/auth/pubsub"
_ClientKey = tuple[str, str]  # (endpoint, service account key JSON)


class PublishError(Exception):
    """Pub/Sub refused the message or could not be reached; the text says which and why."""


class ClientClosed(Exception):
    """`close()` shut the channel under the call: our shutdown, not the topic's failure."""


class PubSubPublisher:
    def __init__(self, timeout_seconds: float, guard: AddressGuard | None = None) -> None:
        self._timeout = timeout_seconds
        self._guard = guard
        self._clients: PublisherCache[_ClientKey, PublisherAsyncClient] = PublisherCache(
            self._new_client, _close, closed_message="gcp_pubsub provider closed"
        )

    @contextlib.asynccontextmanager
    async def client(
        self, endpoint: str, key_json: str, holder: str = ""
    ) -> AsyncIterator[PublisherAsyncClient]:
        """The shared client; raises ValueError for a key google-auth cannot load, and
        `RefusedAddress` when the guard allows no address of the endpoint."""
        async with self._clients.use((endpoint, "" if endpoint else key_json), holder) as client:
            yield client

    async def publish(
        self, client: PublisherAsyncClient, project: str, topic: str, data: bytes, attrs: StrMap
    ) -> str:
        """The message id Pub/Sub assigned."""
        try:
            response = await client.publish(
                topic=PublisherAsyncClient.topic_path(project, topic),
                messages=[PubsubMessage(data=data, attributes=attrs)],
                retry=None,
                timeout=self._timeout,
            )
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if self._clients.closed and task is not None and not task.cancelling():
                raise ClientClosed from exc
            raise
        except (google_errors.GoogleAPIError, grpc.RpcError) as exc:
            if self._clients.closed:
                raise ClientClosed from exc
            raise PublishError(_message(exc)) from exc
        [message_id] = response.message_ids
        return str(message_id)

    async def close(self) -> None:
        await self._clients.close()

    async def _new_client(self, key: _ClientKey) -> PublisherAsyncClient:
        endpoint, key_json = key
        target = endpoint
        if endpoint and self._guard is not None:
            target = await checked_target(self._guard, endpoint)
        return _new_client(endpoint, target, key_json)


async def _close(client: PublisherAsyncClient) -> None:
    await client.transport.close()  # type: ignore[no-untyped-call]


async def checked_target(guard: AddressGuard, endpoint: str) -> str:
    """A gRPC target naming the first address of `endpoint` (host:port) the guard allows."""
    host, _, port_text = endpoint.rpartition(":")
    if not host or not port_text.isdigit():
        host, port_text = endpoint, "443"
    host = host.strip("[]")
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, int(port_text), type=socket.SOCK_STREAM)
    refused: Refusal | None = None
    for family, _, _, _, address in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        refusal = guard.refusal(str(address[0]))
        if refusal is None:
            ip = ipaddress.ip_address(address[0])
            return f"ipv4:{ip}:{port_text}" if ip.version == 4 else f"ipv6:[{ip}]:{port_text}"
        refused = refused or refusal
    if refused is None:
        raise OSError(f"no IP address for {host}")
    refused.report(host, type_="gcp_pubsub")
    raise RefusedAddress(refused, host)


def _new_client(endpoint: str, target: str, key_json: str) -> PublisherAsyncClient:
    if endpoint:
        # The emulator: plaintext gRPC, no credentials at all (as Outpost does with an endpoint).
        # No proxy from the environment: the address checked must be the address connected to.
        channel = grpc.aio.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)])
        anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
        transport = PublisherGrpcAsyncIOTransport(
            host=endpoint, channel=channel, credentials=anonymous
        )
        return PublisherAsyncClient(transport=transport)
    info = json.loads(key_json)
    credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        info, scopes=[PUBSUB_SCOPE]
    )
    return PublisherAsyncClient(credentials=credentials)


def _message(exc: BaseException) -> str:
    if isinstance(exc, google_errors.GoogleAPICallError):
        status = exc.grpc_status_code
        return f"{status.name if status else 'error'}: {exc.message}"
    return str(exc) or type(exc).__name__
