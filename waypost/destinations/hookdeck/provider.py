"""The `hookdeck` destination type (contract.md §5.1): a signed POST to a Hookdeck managed source.

The tenant gives only a token; the source it names is stored as `config.source_id` (and, once
Hookdeck has confirmed the token, `config.source_name`). Delivery goes through the same libcurl
client and SSRF guard as webhooks.

One conscious divergence: Outpost records an HTTP status ≥ 400 as a failed attempt but schedules no
retry (its publisher returns no error, contract.md §11 quirk 21). Here such an attempt is failed
*and* retried like any other failure: a 429 or 5xx from Hookdeck is usually transient, and a failed
attempt that is never retried silently loses the event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from importlib import resources
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

from waypost.config import Config
from waypost.core.models import AttemptStatus, DeliveryResult, Destination, Event, StrMap
from waypost.core.sent_headers import noted
from waypost.destinations.hookdeck import token as tokens
from waypost.destinations.hookdeck import verification
from waypost.destinations.schema import SchemaProvider
from waypost.destinations.sending import failed, merged_metadata
from waypost.destinations.webhook.provider import canonical
from waypost.destinations.webhook.settings import WebhookSettings
from waypost.errors import DeliveryInfrastructureError
from waypost.transport.guard import REFUSED_CODE
from waypost.transport.http import HttpClient, HttpResponse, HttpTransportError

if TYPE_CHECKING:
    from waypost.destinations.shared import Shared

DASHBOARD_URL = "https://dashboard.hookdeck.com/sources/{id}"
METADATA_PREFIX = "X-Outpost-"
TRANSPORT_ERROR = "Request failed"


@dataclass(frozen=True, slots=True)
class HookdeckSettings:
    events_url: str = "https://hkdk.events"  # deliveries go to <events_url>/<source id>
    api_url: str = "https://api.hookdeck.com"  # where tokens are verified
    verify_tokens: bool = True
    timeout_seconds: float = 30.0
    max_response_body_bytes: int = 131072
    include_ms_timestamp: bool = False
    user_agent: str = "Outpost"


class HookdeckProvider(SchemaProvider):
    type = "hookdeck"
    package = "waypost.destinations.hookdeck"

    def __init__(self, settings: HookdeckSettings, client: HttpClient) -> None:
        super().__init__()
        metadata = json.loads((resources.files(self.package) / "metadata.json").read_text("utf-8"))
        # only this type has one (contract.md §1.5)
        self._schema["setup_link"] = metadata["setup_link"]
        self._settings = settings
        self._client = client
        self._events_url = settings.events_url.rstrip("/")
        self._cap = settings.max_response_body_bytes

    @classmethod
    def from_shared(cls, shared: Shared) -> Self:
        """The provider as configured (the catalog's factory for the type)."""
        return cls(settings_from(shared.config, shared.webhook), shared.client)

    # -- validation, preprocessing, display ----------------------------------------------

    def extra_errors(self, destination: Destination) -> list[str]:
        if tokens.source_id(destination.credentials.get("token", "")) is None:
            return [tokens.INVALID_FORMAT]
        return []

    def preprocess(
        self, destination: Destination, original: Destination | None, *, admin: bool, now: int
    ) -> Destination:
        # The config is the server's: whatever a client sent is replaced.
        token = destination.credentials.get("token", "")
        if original is not None and original.credentials.get("token") == token:
            return replace(destination, config=dict(original.config))
        return replace(destination, config={"source_id": tokens.source_id(token) or ""})

    async def verify(self, destination: Destination, original: Destination | None) -> Destination:
        """Hookdeck confirms a new or changed token; its source name is stored with it."""
        token = destination.credentials.get("token", "")
        unchanged = original is not None and original.credentials.get("token") == token
        if unchanged or not self._settings.verify_tokens:
            return destination
        source = await verification.verify(
            self._settings.api_url,
            destination.config.get("source_id", ""),
            token,
            self._settings.user_agent,
        )
        return replace(destination, config={"source_name": source.name, "source_id": source.id})

    def target(self, destination: Destination) -> tuple[str, str]:
        source_id = destination.config.get("source_id", "")
        name = destination.config.get("source_name", "")
        if not source_id:
            return name, ""
        return name or f"Hookdeck source ID: {source_id}", DASHBOARD_URL.format(id=source_id)

    # -- delivery -------------------------------------------------------------------------

    async def publish(self, event: Event, destination: Destination) -> DeliveryResult:
        token = destination.credentials.get("token", "")
        source_id = destination.config.get("source_id") or tokens.source_id(token)
        if not source_id:
            return failed(tokens.INVALID_FORMAT)
        headers = self._headers(event, destination, token)
        try:
            response = await self._client.post(
                f"{self._events_url}/{quote(source_id, safe='')}",  # one path segment, always
                headers,
                event.data,
                timeout=self._settings.timeout_seconds,
                max_body=self._cap,
            )
        except HttpTransportError as exc:
            if exc.infrastructure:  # our proxy or our shutdown: not Hookdeck's failure
                raise DeliveryInfrastructureError(str(exc)) from exc
            if exc.code == REFUSED_CODE:  # say that the address is not allowed (the log says which)
                return noted(failed(exc.message, exc.code), headers)
            return noted(failed(TRANSPORT_ERROR, "ERROR"), headers)
        return noted(self._result(response), headers)

    async def close(self) -> None:
        await self._client.aclose()

    def _headers(self, event: Event, destination: Destination, token: str) -> list[tuple[str, str]]:
        metadata = merged_metadata(
            event, destination, include_ms=self._settings.include_ms_timestamp
        )
        headers = {"Content-Type": "application/json", **metadata_headers(metadata)}
        headers["X-Hookdeck-Signature"] = tokens.signature(token, event.data)
        return list(headers.items())

    def _result(self, response: HttpResponse) -> DeliveryResult:
        if response.body_exceeded:
            body = f"Response body exceeded {self._cap} bytes and was not stored"
        else:
            body = response.body.decode("utf-8", "replace")
        status: AttemptStatus = "success" if response.status < 400 else "failed"
        # Outpost adds the response headers; the delivery client does not capture them.
        data: dict[str, Any] = {"status_code": response.status, "body": body}
        return DeliveryResult(status, str(response.status), data)


def metadata_headers(metadata: StrMap) -> dict[str, str]:
    """How merged metadata travels: one `X-Outpost-<Key>` header per key (canonical case)."""
    return {canonical(METADATA_PREFIX + key): value for key, value in metadata.items()}


def settings_from(config: Config, webhook: WebhookSettings) -> HookdeckSettings:
    return HookdeckSettings(
        events_url=config.destinations_hookdeck_events_url,
        api_url=config.destinations_hookdeck_api_url,
        verify_tokens=config.destinations_hookdeck_verify_tokens,
        timeout_seconds=config.delivery_timeout_seconds,
        max_response_body_bytes=webhook.max_response_body_bytes,
        include_ms_timestamp=config.destinations_include_millisecond_timestamp,
        user_agent=webhook.user_agent,
    )
