"""The `gcp_pubsub` destination type (§5.6): one Pub/Sub message per event.

Schema, validation and display live here; delivery is `publisher.PubSubPublisher`, imported on
the first delivery (see its docstring for the client and why).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from outpost.core.models import DeliveryResult, Destination, Event
from outpost.destinations.common import SchemaProvider, failed, merged_metadata
from outpost.errors import DeliveryInfrastructureError

if TYPE_CHECKING:
    from outpost.destinations.gcp_pubsub.publisher import PubSubPublisher

CONSOLE_URL = "https://console.cloud.google.com/cloudpubsub/topic/detail/{topic}?project={project}"
CLOSED = "gcp_pubsub provider closed"


class GcpPubSubProvider(SchemaProvider):
    type = "gcp_pubsub"
    package = "outpost.destinations.gcp_pubsub"

    def __init__(self, *, timeout_seconds: float, include_ms_timestamp: bool = False) -> None:
        super().__init__()
        self._timeout = timeout_seconds
        self._include_ms = include_ms_timestamp
        self._publisher: PubSubPublisher | None = None
        self._closed = False

    # -- validation and display -------------------------------------------------------------

    def extra_errors(self, destination: Destination) -> list[str]:
        if destination.config.get("endpoint"):
            return []  # an emulator takes no credentials
        return _key_errors(destination.credentials.get("service_account_json", ""))

    def target(self, destination: Destination) -> tuple[str, str]:
        project = destination.config.get("project_id", "")
        topic = destination.config.get("topic", "")
        return f"{project}/{topic}", CONSOLE_URL.format(topic=topic, project=project)

    # -- delivery -----------------------------------------------------------------------------

    async def publish(self, event: Event, destination: Destination) -> DeliveryResult:
        from outpost.destinations.gcp_pubsub.publisher import ClientClosed, PublishError

        publisher = self._open()
        project = destination.config.get("project_id", "")
        topic = destination.config.get("topic", "")
        try:
            client = publisher.client(
                destination.config.get("endpoint", ""),
                destination.credentials.get("service_account_json", ""),
            )
        except ValueError as exc:  # a stored key that google-auth cannot load
            return failed(str(exc))
        metadata = merged_metadata(event, destination, include_ms=self._include_ms)
        try:
            message_id = await publisher.publish(client, project, topic, event.data, metadata)
        except ClientClosed as exc:
            raise DeliveryInfrastructureError(CLOSED) from exc
        except PublishError as exc:
            return failed(str(exc))
        return DeliveryResult(
            "success", "OK", {"message_id": message_id, "topic": topic, "project": project}
        )

    async def close(self) -> None:
        self._closed = True
        if self._publisher is not None:
            await self._publisher.close()

    def _open(self) -> PubSubPublisher:
        if self._closed:
            raise DeliveryInfrastructureError(CLOSED)
        if self._publisher is None:
            from outpost.destinations.gcp_pubsub.publisher import PubSubPublisher

            self._publisher = PubSubPublisher(self._timeout)
        return self._publisher


def _key_errors(key_json: str) -> list[str]:
    """§5.6: the key must be a JSON object with a `type` (what google-auth dispatches on)."""
    try:
        parsed: Any = json.loads(key_json)
    except ValueError:
        return ["credentials.service_account_json failed format validation"]
    if not isinstance(parsed, dict):
        return ["credentials.service_account_json failed format validation"]
    if "type" not in parsed:
        return ["credentials.service_account_json failed missing_type validation"]
    return []
