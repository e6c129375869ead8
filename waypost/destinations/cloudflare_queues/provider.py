"""The `cloudflare_queues` destination type: one message per event via Cloudflare's HTTP API.

`POST <api>/accounts/<account_id>/queues/<queue_id>/messages` with a Bearer API token. Queue
messages carry no attributes, so the merged metadata rides inside the message body as
`{"data": <event data>, "metadata": {...}}`, the envelope Outpost uses for this type. The request
goes through the shared libcurl client, so the SSRF guard and proxy settings apply as they do to
webhooks; `api_url` lets tests (or a Cloudflare-compatible gateway) stand in for Cloudflare.

Results follow Outpost: success only when Cloudflare answers `"success": true` without errors
(code `OK`, `{"status", "result"}`); otherwise the HTTP status is the code, with Cloudflare's
`errors` (or the raw body when it is not JSON). No answer at all is `ERR` with the reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from waypost.config import Config
from waypost.core.models import DeliveryResult, Destination, Event
from waypost.core.sent_headers import noted
from waypost.destinations.schema import SchemaProvider
from waypost.destinations.sending import failed, merged_metadata
from waypost.destinations.webhook.settings import WebhookSettings
from waypost.errors import DeliveryInfrastructureError
from waypost.transport.http import HttpClient, HttpResponse, HttpTransportError

if TYPE_CHECKING:
    from waypost.destinations.shared import Shared

DASHBOARD_URL = "https://dash.cloudflare.com/{account}/queues/{queue}"


@dataclass(frozen=True, slots=True)
class CloudflareQueuesSettings:
    api_url: str = "https://api.cloudflare.com/client/v4"
    timeout_seconds: float = 30.0
    max_response_body_bytes: int = 131072
    include_ms_timestamp: bool = False


class CloudflareQueuesProvider(SchemaProvider):
    type = "cloudflare_queues"
    package = "waypost.destinations.cloudflare_queues"

    def __init__(self, settings: CloudflareQueuesSettings, client: HttpClient) -> None:
        super().__init__()
        self._settings = settings
        self._client = client
        self._api_url = settings.api_url.rstrip("/")

    @classmethod
    def from_shared(cls, shared: Shared) -> Self:
        """The provider as configured (the catalog's factory for the type)."""
        return cls(settings_from(shared.config, shared.webhook), shared.client)

    def target(self, destination: Destination) -> tuple[str, str]:
        account = destination.config.get("account_id", "")
        queue = destination.config.get("queue_id", "")
        url = DASHBOARD_URL.format(account=account, queue=queue) if account and queue else ""
        return queue, url

    async def publish(self, event: Event, destination: Destination) -> DeliveryResult:
        account = destination.config.get("account_id", "")
        queue = destination.config.get("queue_id", "")
        headers = [
            ("Content-Type", "application/json"),
            ("Authorization", f"Bearer {destination.credentials.get('api_token', '')}"),
        ]
        try:
            response = await self._client.post(
                f"{self._api_url}/accounts/{account}/queues/{queue}/messages",
                headers,
                self.message(event, destination),
                timeout=self._settings.timeout_seconds,
                max_body=self._settings.max_response_body_bytes,
            )
        except HttpTransportError as exc:
            if exc.infrastructure:  # our proxy or our shutdown: not Cloudflare's failure
                raise DeliveryInfrastructureError(str(exc)) from exc
            return noted(failed(exc.message), headers)  # the API token's value is masked
        return noted(_result(response), headers)

    def message(self, event: Event, destination: Destination) -> bytes:
        """The request body. The event's data is spliced in as published, never re-encoded."""
        metadata = merged_metadata(
            event, destination, include_ms=self._settings.include_ms_timestamp
        )
        encoded = json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode()
        return b'{"body":{"data":%s,"metadata":%s},"content_type":"json"}' % (event.data, encoded)

    async def close(self) -> None:
        await self._client.aclose()


def _result(response: HttpResponse) -> DeliveryResult:
    code = str(response.status)
    try:
        answer: Any = json.loads(response.body) if not response.body_exceeded else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        if response.status >= 400:
            text = response.body.decode("utf-8", "replace")
            return DeliveryResult("failed", code, {"status": response.status, "body": text})
        answer = {}
    errors = answer.get("errors") or []
    if answer.get("success") is not True or errors:
        data = {"status": response.status, "success": bool(answer.get("success")), "errors": errors}
        return DeliveryResult("failed", code, data)
    return DeliveryResult(
        "success", "OK", {"status": response.status, "result": answer.get("result")}
    )


def settings_from(config: Config, webhook: WebhookSettings) -> CloudflareQueuesSettings:
    return CloudflareQueuesSettings(
        api_url=config.destinations_cloudflare_api_url,
        timeout_seconds=config.delivery_timeout_seconds,
        max_response_body_bytes=webhook.max_response_body_bytes,
        include_ms_timestamp=config.destinations_include_millisecond_timestamp,
    )
