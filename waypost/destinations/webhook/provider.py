"""The `webhook` destination type (contract.md §4): schema, credential rules and the signed POST
itself.

Everything that depends only on settings (header names, signer, templates, the oversize text)
is resolved once in `__init__`; a delivery builds one header dict and hands the event's raw
bytes to the HTTP client untouched.
"""

from __future__ import annotations

import functools
import json
import re
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Self

from waypost.core import sent_headers, timefmt
from waypost.core.models import AttemptStatus, DeliveryResult, Destination, Event, StrMap
from waypost.core.retry_after import retry_after_seconds
from waypost.destinations.provider import Display
from waypost.destinations.schema import SchemaProvider
from waypost.destinations.sending import rfc3339_nano
from waypost.destinations.webhook import signing
from waypost.destinations.webhook.reserved import ReservedHeaders
from waypost.destinations.webhook.settings import (
    HEADER_NAME,
    RESERVED_HEADERS,
    SYSTEM_KEYS,
    WebhookSettings,
)
from waypost.errors import DeliveryInfrastructureError, ValidationError
from waypost.transport.guard import REFUSED_CODE
from waypost.transport.http import HttpClient, HttpResponse, HttpTransportError

if TYPE_CHECKING:
    from waypost.destinations.shared import Shared

CREDENTIAL_KEYS = ("secret", "previous_secret", "previous_secret_invalid_at")
ROTATION_GRACE_MS = 24 * 3600 * 1000
UNSENT_KEY = "metadata_not_sent"  # response_data: metadata keys the server's headers kept out
_TRUTHY = frozenset({"true", "1", "on", "yes"})
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_JSON_TYPE = "application/json"


class WebhookProvider(SchemaProvider):
    type = "webhook"
    package = "waypost.destinations.webhook"

    def __init__(self, settings: WebhookSettings, client: HttpClient) -> None:
        settings.check()
        super().__init__("metadata_standard.json" if settings.standard else "metadata.json")
        self._client = client
        self._guard = client.guard  # the client enforces it at delivery; create checks literals
        self._standard = settings.standard
        self._prefix = settings.prefix
        self._ms_timestamp = settings.include_millisecond_timestamp
        self._timeout = settings.delivery_timeout_seconds
        self._cap = settings.max_response_body_bytes
        self._oversize = f"Response body exceeded {self._cap} bytes and was not stored"
        self._names = {key: canonical(settings.header_name(key)) for key in SYSTEM_KEYS}
        # Only these metadata keys follow a directive; any other key, "signature" included,
        # travels as <prefix><key>.
        self._metadata_names = {key: self._names[key] for key in ("event-id", "timestamp", "topic")}
        self._reserved = ReservedHeaders(settings)
        self._signer = _signer(settings)
        self._unix_timestamp = settings.unix_timestamp
        compat = settings.compat
        self._compat_name = canonical(compat.header_name.strip()) if compat else ""
        self._compat_signer = compat.signer() if compat else None
        self._compat_headers = (
            [(canonical(n), t) for n, t in compat.extra_headers()] if compat else []
        )
        self._generate_secret = (
            signing.generate_standard_secret
            if self._standard
            else signing.SecretTemplate(settings.signing_secret_template).generate
        )
        self._second = (-1, "")

    @classmethod
    def from_shared(cls, shared: Shared) -> Self:
        """The provider as configured (the catalog's factory for the type)."""
        return cls(shared.webhook, shared.client)

    # -- schema, validation, credentials ------------------------------------------------------

    def extra_errors(self, destination: Destination) -> list[str]:
        # Outpost stops at the first group that fails: schema fields, custom headers, secrets.
        # The SSRF check follows the schema (so the URL is well formed); it never resolves names.
        return (
            self._address_errors(destination.config.get("url", ""))
            or _custom_header_errors(destination.config.get("custom_headers", ""))
            or self._credential_errors(destination.credentials)
        )

    def metadata_errors(self, delivery_metadata: StrMap | None) -> list[str]:
        """A delivery_metadata key may not replace a header the server computes (see reserved)."""
        errors = []
        for key in delivery_metadata or {}:
            header = self._reserved.collision(key, event=False)
            if header is not None:
                errors.append(
                    f"delivery_metadata.{key} is forbidden: it would replace the "
                    f"{canonical(header)} header, which the server sets"
                )
        return errors

    def preprocess(
        self, destination: Destination, original: Destination | None, *, admin: bool, now: int
    ) -> Destination:
        given = destination.credentials or {}
        if _rotating(given):
            credentials = self._rotated(given, original, now)
        else:
            credentials = _kept(given, original, admin)
            if original is None and not credentials:
                credentials = {"secret": self._generate_secret()}
        if credentials.get("previous_secret") and not credentials.get("previous_secret_invalid_at"):
            credentials["previous_secret_invalid_at"] = timefmt.format_seconds(
                now + ROTATION_GRACE_MS
            )
        return replace(destination, credentials=credentials)

    def display(self, destination: Destination, now: int) -> Display:
        credentials = {k: v for k, v in destination.credentials.items() if k in CREDENTIAL_KEYS}
        invalid_at = _instant(credentials.get("previous_secret_invalid_at", ""))
        if invalid_at is not None and invalid_at < now:
            credentials.pop("previous_secret", None)
            credentials.pop("previous_secret_invalid_at", None)
        return Display(credentials=credentials, target=destination.config.get("url", ""))

    def _address_errors(self, url: str) -> list[str]:
        if self._guard is None or self._guard.url_refusal(url) is None:
            return []
        return ["config.url failed ssrf validation"]

    def _credential_errors(self, credentials: StrMap) -> list[str]:
        secret, previous, invalid_at = (credentials.get(key, "") for key in CREDENTIAL_KEYS)
        if _rotating(credentials):
            # Rotation makes the pair itself (contract.md §4.6): the stored secret becomes the
            # previous one, a new secret is generated, and only a given end of the overlap is taken
            # from the request. So only that end is checked here; a missing secret or a create is
            # preprocessing's to refuse.
            if invalid_at and _instant(invalid_at) is None:
                return ["credentials.previous_secret_invalid_at failed pattern validation"]
            return []
        if not (secret or previous or invalid_at):
            return []
        if not secret:
            return ["credentials.secret is required"]
        if invalid_at and _instant(invalid_at) is None:
            return ["credentials.previous_secret_invalid_at failed pattern validation"]
        if previous and not invalid_at:
            return ["credentials.previous_secret_invalid_at is required"]
        if invalid_at and not previous:
            return ["credentials.previous_secret is required"]
        if self._standard:
            return [
                f"credentials.{key} failed pattern validation"
                for key, value in (("secret", secret), ("previous_secret", previous))
                if value and not signing.standard_secret_valid(value)
            ]
        return []

    def _rotated(self, given: StrMap, original: Destination | None, now: int) -> StrMap:
        if original is None:
            raise ValidationError(["credentials.rotate_secret failed invalid validation"])
        current = original.credentials.get("secret", "")
        if not current:
            raise ValidationError(["credentials.secret is required"])
        # `given` is the request merged over the stored credentials: the stored end of an earlier
        # overlap is not one this request asked for (kept, it would cut the new overlap short,
        # or to nothing once it has passed).
        sent = given.get("previous_secret_invalid_at", "")
        if sent == original.credentials.get("previous_secret_invalid_at", ""):
            sent = ""
        invalid_at = sent or timefmt.format_seconds(now + ROTATION_GRACE_MS)
        return {
            "secret": self._generate_secret(),
            "previous_secret": current,
            "previous_secret_invalid_at": invalid_at,
        }

    # -- delivery -------------------------------------------------------------------------

    async def publish(self, event: Event, destination: Destination) -> DeliveryResult:
        now_ns = time.time_ns()
        try:
            headers, unsent = self._headers(event, destination, now_ns)
            headers += self._compat(event, destination, now_ns)
        except ValueError as exc:  # stored config Outpost would refuse to build a publisher from
            return DeliveryResult("failed", "ERR", {"error": str(exc)})
        return _noting_unsent(await self._send(destination, headers, event), unsent)

    async def _send(
        self, destination: Destination, headers: list[tuple[str, str]], event: Event
    ) -> DeliveryResult:
        try:
            response = await self._client.post(
                destination.config.get("url", ""),
                headers,
                event.data,
                timeout=self._timeout,
                max_body=self._cap,
            )
        except HttpTransportError as exc:
            if exc.infrastructure:  # our proxy or our shutdown: not the destination's failure
                raise DeliveryInfrastructureError(str(exc)) from exc
            sent = sent_headers.recorded(headers)
            if exc.code == REFUSED_CODE:  # say which address and which setting would open it
                return DeliveryResult(
                    "failed", exc.code, {"error": exc.message}, request_headers=sent
                )
            return DeliveryResult("failed", exc.code, request_headers=sent)
        return self._result(response, sent_headers.recorded(headers))

    async def close(self) -> None:
        await self._client.aclose()

    def _result(self, response: HttpResponse, sent: StrMap) -> DeliveryResult:
        if response.body_exceeded:
            body = self._oversize
        else:
            body = response.body.decode("utf-8", "replace")
        status: AttemptStatus = "success" if response.status < 400 else "failed"
        data = {"status": response.status, "body": body}
        retry_after = None
        if response.retry_after is not None and response.status in (429, 503):
            retry_after = retry_after_seconds(response.retry_after, timefmt.now_ms())
        return DeliveryResult(
            status, str(response.status), data, request_headers=sent, retry_after_s=retry_after
        )

    def _headers(
        self, event: Event, dest: Destination, now_ns: int
    ) -> tuple[list[tuple[str, str]], list[str]]:
        """The request's headers, and the metadata keys left out because the server owns them."""
        # Keyed by Go's canonical form, so a later write replaces an earlier one whatever its
        # case (Outpost's header.Set), and the wire shows the names Go would send.
        headers = {"Content-Type": _JSON_TYPE}
        for custom, value in custom_headers(dest.config.get("custom_headers", "")):
            headers[canonical(custom)] = value
        metadata, event_metadata, unsent = self._metadata(event, dest, now_ns)
        signature = self._signature(event, dest, now_ns)
        if self._standard:
            self._standard_headers(headers, event, metadata, event_metadata, signature, now_ns)
            return list(headers.items()), unsent
        for key, value in metadata.items():
            name = self._metadata_names.get(key)
            if name is None:
                headers[canonical(self._prefix + key)] = value
            elif name:
                headers[name] = value
        if signature and self._names["signature"]:
            headers[self._names["signature"]] = signature
        return list(headers.items()), unsent

    def _standard_headers(
        self,
        headers: dict[str, str],
        event: Event,
        metadata: StrMap,
        event_metadata: StrMap,
        signature: str | None,
        now_ns: int,
    ) -> None:
        headers[self._names["event-id"]] = event.id
        headers[self._names["timestamp"]] = str(now_ns // 1_000_000_000)
        if signature:
            headers[self._names["signature"]] = signature
        for key, value in metadata.items():
            if key not in ("event-id", "timestamp"):
                headers[canonical(self._prefix + key)] = value
        # Outpost repeats event metadata without the prefix in this mode (contract.md §11 quirk 23).
        for key, value in event_metadata.items():
            headers[canonical(key)] = value

    def _metadata(
        self, event: Event, destination: Destination, now_ns: int
    ) -> tuple[StrMap, StrMap, list[str]]:
        """system < destination.delivery_metadata < event.metadata (contract.md §4.3), but a key
        that would replace a header the server computes is left out (and named in the third value).

        Returns the merged metadata and the event's own part that may be sent.
        """
        metadata = {
            "event-id": event.id,
            "topic": event.topic,
            "timestamp": self._timestamp(now_ns),
        }
        if self._ms_timestamp:
            metadata["timestamp-ms"] = rfc3339_nano(now_ns)
        unsent: list[str] = []
        sendable = self._sendable(destination.delivery_metadata, False, unsent)
        event_metadata = self._sendable(event.metadata, True, unsent)
        metadata.update(sendable)
        metadata.update(event_metadata)
        return metadata, event_metadata, unsent

    def _sendable(self, given: StrMap | None, event: bool, unsent: list[str]) -> StrMap:
        if not given:
            return {}
        kept = {}
        for key, value in given.items():
            if self._reserved.collision(key, event=event) is None:
                kept[key] = value
            elif key not in unsent:
                unsent.append(key)
        return kept

    def _signature(self, event: Event, destination: Destination, now_ns: int) -> str | None:
        keys = _signing_keys(destination.credentials, now_ns // 1_000_000)
        data = signing.SigningInput(event.id, event.topic, now_ns, event.data)
        return self._signer.header_value(keys, data)

    def _compat(self, event: Event, destination: Destination, now_ns: int) -> list[tuple[str, str]]:
        """The compat signature and its extra headers; none for a secret it cannot decode."""
        if self._compat_signer is None:
            return []
        keys = _signing_keys(destination.credentials, now_ns // 1_000_000)
        data = signing.SigningInput(event.id, event.topic, now_ns, event.data)
        signature = self._compat_signer.header_value(keys, data)
        if signature is None:
            return []
        extra = [(name, template.render(data)) for name, template in self._compat_headers]
        return [(self._compat_name, signature), *extra]

    def _timestamp(self, now_ns: int) -> str:
        # DESTINATIONS_WEBHOOK_TIMESTAMP_FORMAT. Deliveries in the same second share one value.
        second = now_ns // 1_000_000_000
        if self._second[0] != second:
            text = str(second) if self._unix_timestamp else timefmt.format_seconds(second * 1000)
            self._second = (second, text)
        return self._second[1]


def _noting_unsent(result: DeliveryResult, unsent: list[str]) -> DeliveryResult:
    """The attempt names the metadata keys it did not send as headers (they stay on the event)."""
    if not unsent:
        return result
    return replace(result, response_data={**(result.response_data or {}), UNSENT_KEY: unsent})


def _signer(settings: WebhookSettings) -> signing.DefaultSigner | signing.StandardSigner:
    if settings.standard:
        return signing.StandardSigner()
    return signing.DefaultSigner(
        settings.signature_algorithm,
        settings.signature_encoding,
        settings.signature_content_template,
        settings.signature_header_template,
        settings.secret_encoding,
        settings.signature_secret_prefix,
    )


def _rotating(credentials: StrMap) -> bool:
    return credentials.get("rotate_secret", "").lower() in _TRUTHY


def _kept(given: StrMap, original: Destination | None, admin: bool) -> StrMap:
    """Credentials without rotation: admins set what they like, tenants may only resend."""
    if admin:
        return {key: given[key] for key in CREDENTIAL_KEYS if given.get(key)}
    stored = original.credentials if original is not None else {}
    forbidden = [
        f"credentials.{key} is forbidden"
        for key in CREDENTIAL_KEYS
        if given.get(key) and given[key] != stored.get(key)
    ]
    if forbidden:
        raise ValidationError(forbidden[:1])  # Outpost reports the first offending key only
    return {key: stored[key] for key in CREDENTIAL_KEYS if stored.get(key)}


def _signing_keys(credentials: StrMap, now_ms: int) -> list[str]:
    """Current secret first, then the previous one while its grace period lasts."""
    keys = [credentials["secret"]] if credentials.get("secret") else []
    previous = credentials.get("previous_secret")
    if previous:
        invalid_at = _instant(credentials.get("previous_secret_invalid_at", ""))
        if invalid_at is not None and now_ms < invalid_at:
            keys.append(previous)
    return keys


def _custom_header_errors(text: str) -> list[str]:
    try:
        pairs = custom_headers(text)
    except ValueError:
        return ["config.custom_headers failed invalid validation"]
    errors = []
    for name, value in pairs:
        path = f"config.custom_headers.{name}".lower()
        if not HEADER_NAME.fullmatch(name):
            errors.append(f"{path} failed pattern validation")
        elif name.lower() in RESERVED_HEADERS:
            errors.append(f"{path} is forbidden")
        elif not value:
            errors.append(f"{path} is required")
    return errors


@functools.lru_cache(maxsize=4096)
def custom_headers(text: str) -> tuple[tuple[str, str], ...]:
    """`config.custom_headers`, a JSON object of strings, as pairs. Raises ValueError."""
    if not text:
        return ()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = []
    if parsed is None:  # Go decodes JSON null into an empty map
        return ()
    if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
        raise ValueError("config.custom_headers is not a JSON object of strings")
    return tuple(parsed.items())


@functools.lru_cache(maxsize=4096)
def canonical(name: str) -> str:
    """Go's CanonicalMIMEHeaderKey: `x-outpost-event-id` → `X-Outpost-Event-Id`."""
    if not _TOKEN.fullmatch(name):
        return name  # Go leaves names it cannot canonicalise untouched
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


@functools.lru_cache(maxsize=1024)
def _instant(text: str) -> int | None:
    """Strict RFC 3339 (what Go's time.Parse accepts) to epoch ms; None when not one."""
    if not _RFC3339.fullmatch(text):
        return None
    try:
        return timefmt.parse(text)
    except ValueError:
        return None
