"""Publishing to Pub/Sub with google-cloud-pubsub's asyncio GAPIC client.

Imported on the first delivery only (the SDK takes about half a second to import), so an API
process, or a server with no gcp_pubsub destination, never pays for it.

One `PublisherAsyncClient` (gRPC on the event loop) per (endpoint, service account key), shared
by every destination using them, so the destinations of one project share one HTTP/2 channel.
The client's own retries are off: a failed publish is a failed attempt, and Outpost's retry
schedule takes it from there.
"""

from __future__ import annotations

import asyncio
import json

import grpc
from google.api_core import exceptions as google_errors
from google.auth.credentials import AnonymousCredentials
from google.oauth2 import service_account
from google.pubsub_v1 import PubsubMessage
from google.pubsub_v1.services.publisher import PublisherAsyncClient
from google.pubsub_v1.services.publisher.transports import PublisherGrpcAsyncIOTransport

from outpost.core.models import StrMap

PUBSUB_SCOPE = "https://www.googleapis.com/auth/pubsub"
_ClientKey = tuple[str, str]  # (endpoint, service account key JSON)


class PublishError(Exception):
    """Pub/Sub refused the message or could not be reached; the text says which and why."""


class ClientClosed(Exception):
    """`close()` shut the channel under the call: our shutdown, not the topic's failure."""


class PubSubPublisher:
    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = timeout_seconds
        self._clients: dict[_ClientKey, PublisherAsyncClient] = {}
        self._closed = False

    def client(self, endpoint: str, key_json: str) -> PublisherAsyncClient:
        """The shared client; raises ValueError for a key google-auth cannot load."""
        cache_key = (endpoint, "" if endpoint else key_json)
        client = self._clients.get(cache_key)
        if client is None:
            client = _new_client(endpoint, key_json)
            self._clients[cache_key] = client
        return client

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
            if self._closed and task is not None and not task.cancelling():
                raise ClientClosed from exc
            raise
        except (google_errors.GoogleAPIError, grpc.RpcError) as exc:
            if self._closed:
                raise ClientClosed from exc
            raise PublishError(_message(exc)) from exc
        [message_id] = response.message_ids
        return str(message_id)

    async def close(self) -> None:
        self._closed = True
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(
            *(c.transport.close() for c in clients),  # type: ignore[no-untyped-call]
            return_exceptions=True,
        )


def _new_client(endpoint: str, key_json: str) -> PublisherAsyncClient:
    if endpoint:
        # The emulator: plaintext gRPC, no credentials at all (as Outpost does with an endpoint).
        channel = grpc.aio.insecure_channel(endpoint)
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
