"""The `gcp_pubsub` destination type (contract.md §5.6): one Pub/Sub message per event.

Schema, validation and display live here; delivery is `publisher.PubSubPublisher`, imported on
the first delivery (see its docstring for the client and why).
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from waypost.core.models import DeliveryResult, Destination, Event
from waypost.core.sent_headers import noted
from waypost.destinations.schema import BrokerProvider
from waypost.destinations.sending import failed, merged_metadata
from waypost.errors import DeliveryInfrastructureError
from waypost.transport.guard import REFUSED_CODE, AddressGuard, RefusedAddress, literal_address

if TYPE_CHECKING:
    from waypost.destinations.gcp_pubsub.publisher import PubSubPublisher

CONSOLE_URL = "https://console.cloud.google.com/cloudpubsub/topic/detail/{topic}?project={project}"
CLOSED = "gcp_pubsub provider closed"
KEY_REFUSED = (
    "delivery refused: the service account key's token_uri or universe_domain points away from "
    "Google, which the deployment does not allow"
)
# Where a service account key may send its token request while the SSRF guard is on: the token
# request goes out through google-auth's own HTTP client, which the guard cannot see into.
GOOGLE_TOKEN_HOSTS = frozenset({"oauth2.googleapis.com", "accounts.google.com"})


class GcpPubSubProvider(BrokerProvider):
    type = "gcp_pubsub"
    package = "waypost.destinations.gcp_pubsub"
    extra = "gcp"
    _publisher: PubSubPublisher | None = None  # made on the first delivery
    _closed = False

    # -- validation and display -------------------------------------------------------------

    def extra_errors(self, destination: Destination) -> list[str]:
        endpoint = destination.config.get("endpoint", "")
        if endpoint:  # an emulator takes no credentials
            if self._guard is not None and _refused_literal(self._guard, endpoint):
                return ["config.endpoint failed ssrf validation"]
            return []
        key_json = destination.credentials.get("service_account_json", "")
        errors = _key_errors(key_json)
        if not errors and self._guard is not None and _steered_key(key_json):
            return ["credentials.service_account_json failed ssrf validation"]
        return errors

    def target(self, destination: Destination) -> tuple[str, str]:
        project = destination.config.get("project_id", "")
        topic = destination.config.get("topic", "")
        return f"{project}/{topic}", CONSOLE_URL.format(topic=topic, project=project)

    # -- delivery -----------------------------------------------------------------------------

    async def publish(self, event: Event, destination: Destination) -> DeliveryResult:
        from waypost.destinations.gcp_pubsub.publisher import ClientClosed, PublishError

        publisher = self._open()
        project = destination.config.get("project_id", "")
        topic = destination.config.get("topic", "")
        endpoint = destination.config.get("endpoint", "")
        key_json = destination.credentials.get("service_account_json", "")
        if not endpoint and self._guard is not None and _steered_key(key_json):
            return failed(KEY_REFUSED, REFUSED_CODE)  # stored before the guard was on
        async with contextlib.AsyncExitStack() as using:
            try:
                client = await using.enter_async_context(
                    publisher.client(endpoint, key_json, destination.id)
                )
            except RefusedAddress as exc:
                return failed(str(exc), REFUSED_CODE)
            except OSError as exc:  # the endpoint's name does not resolve
                return failed(str(exc) or type(exc).__name__)
            except ValueError as exc:  # a stored key that google-auth cannot load
                return failed(str(exc))
            metadata = merged_metadata(event, destination, include_ms=self._include_ms)
            try:
                message_id = await publisher.publish(client, project, topic, event.data, metadata)
            except ClientClosed as exc:
                raise DeliveryInfrastructureError(CLOSED) from exc
            except PublishError as exc:
                return noted(failed(str(exc)), metadata.items())  # the message's attributes
        return noted(
            DeliveryResult(
                "success", "OK", {"message_id": message_id, "topic": topic, "project": project}
            ),
            metadata.items(),
        )

    async def close(self) -> None:
        self._closed = True
        if self._publisher is not None:
            await self._publisher.close()

    def _open(self) -> PubSubPublisher:
        if self._closed:
            raise DeliveryInfrastructureError(CLOSED)
        if self._publisher is None:
            from waypost.destinations.gcp_pubsub.publisher import PubSubPublisher

            self._publisher = PubSubPublisher(self._timeout, self._guard)
        return self._publisher


def _key_errors(key_json: str) -> list[str]:
    """contract.md §5.6: the key must be a JSON object with a `type` (what google-auth dispatches
    on)."""
    try:
        parsed: Any = json.loads(key_json)
    except ValueError:
        return ["credentials.service_account_json failed format validation"]
    if not isinstance(parsed, dict):
        return ["credentials.service_account_json failed format validation"]
    if "type" not in parsed:
        return ["credentials.service_account_json failed missing_type validation"]
    return []


def _steered_key(key_json: str) -> bool:
    """Whether a service account key sends its token request (`token_uri`) or its API calls
    (`universe_domain`) anywhere but Google's own endpoints."""
    try:
        info: Any = json.loads(key_json)
    except ValueError:
        return False  # refused as malformed elsewhere
    if not isinstance(info, dict):
        return False
    token_uri = info.get("token_uri", "https://oauth2.googleapis.com/token")
    universe = info.get("universe_domain", "googleapis.com")
    if not isinstance(token_uri, str) or universe != "googleapis.com":
        return True
    try:
        parts = urlsplit(token_uri)
        port = parts.port
    except ValueError:
        return True
    return (
        parts.scheme != "https"
        or parts.hostname not in GOOGLE_TOKEN_HOSTS
        or port
        not in (
            None,
            443,
        )
    )


def _refused_literal(guard: AddressGuard, endpoint: str) -> bool:
    """An emulator endpoint given as an IP literal the guard refuses (names: when connecting)."""
    host = endpoint.rpartition(":")[0] or endpoint
    address = literal_address(host.strip("[]"))
    return address is not None and guard.refusal(str(address)) is not None
