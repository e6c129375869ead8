"""Deployment-wide webhook behaviour (§4.7): one frozen value, built from Config and checked once.

Header directives are three-state, as in Outpost: None means `<prefix><key>`, "" means the
header is not sent, anything else is the exact header name. They apply in default mode only;
Standard Webhooks mode always sends `<prefix>id`, `<prefix>timestamp` and `<prefix>signature`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from outpost import __version__
from outpost.destinations.webhook import signing
from outpost.errors import ConfigError

MODES = ("default", "standard")
DEFAULT_PREFIXES = {"default": "x-outpost-", "standard": "webhook-"}
SYSTEM_KEYS = ("event-id", "timestamp", "topic", "signature")
STANDARD_KEYS = {"event-id": "id", "timestamp": "timestamp", "signature": "signature"}
RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "connection", "user-agent"})
HEADER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]*")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]*")


@dataclass(frozen=True)
class WebhookSettings:
    mode: str = "default"
    header_prefix: str | None = None
    event_id_header: str | None = None
    timestamp_header: str | None = None
    topic_header: str | None = None
    signature_header: str | None = None
    signature_algorithm: str = "hmac-sha256"
    signature_encoding: str = "hex"
    signature_content_template: str = "{{.Body}}"
    signature_header_template: str = 'v0={{.Signatures | join ","}}'
    signing_secret_template: str = "whsec_{{.RandomHex}}"  # noqa: S105 (a template, no secret)
    max_response_body_bytes: int = 131072
    include_millisecond_timestamp: bool = False
    user_agent: str = f"Outpost/{__version__}"
    delivery_timeout_seconds: float = 5.0
    proxy_url: str = ""

    @property
    def standard(self) -> bool:
        return self.mode == "standard"

    @property
    def prefix(self) -> str:
        if self.header_prefix is None:
            return DEFAULT_PREFIXES.get(self.mode, DEFAULT_PREFIXES["default"])
        return self.header_prefix if self.header_prefix.strip() else ""

    def header_name(self, key: str) -> str:
        """The header carrying system key `key` ("" when switched off)."""
        if self.standard:
            return self.prefix + STANDARD_KEYS[key] if key in STANDARD_KEYS else self.prefix + key
        directive = self._directives()[key]
        return self.prefix + key if directive is None else directive.strip()

    def _directives(self) -> dict[str, str | None]:
        return {
            "event-id": self.event_id_header,
            "timestamp": self.timestamp_header,
            "topic": self.topic_header,
            "signature": self.signature_header,
        }

    def check(self) -> None:
        """Raise ConfigError for settings Outpost refuses at startup, or this port cannot honour."""
        if self.mode not in MODES:
            raise ConfigError(f"DESTINATIONS_WEBHOOK_MODE must be one of {MODES}: {self.mode!r}")
        if self.max_response_body_bytes < 0:
            raise ConfigError("DESTINATIONS_WEBHOOK_MAX_RESPONSE_BODY_BYTES must not be negative")
        if self.delivery_timeout_seconds <= 0:
            raise ConfigError("DELIVERY_TIMEOUT_SECONDS must be positive")
        if not _TOKEN.fullmatch(self.prefix):
            raise ConfigError(f"DESTINATIONS_WEBHOOK_HEADER_PREFIX {self.prefix!r} is not a header")
        if not self.standard:
            self._check_pinned_names()
            self._check_signing()
        self._check_collisions()
        if not self.standard:
            _compile(self.signing_secret_template, signing.SecretTemplate, "SIGNING_SECRET")

    def _check_pinned_names(self) -> None:
        for key, directive in self._directives().items():
            name = (directive or "").strip()
            if not name:
                continue
            variable = f"DESTINATIONS_WEBHOOK_{key.replace('-', '_').upper()}_HEADER_NAME"
            if not HEADER_NAME.fullmatch(name):
                raise ConfigError(f"{variable} {name!r} is not a valid header name")
            if name.lower() in RESERVED_HEADERS:
                raise ConfigError(f"{variable} {name!r} is a reserved header")

    def _check_collisions(self) -> None:
        seen: dict[str, str] = {}
        for key in SYSTEM_KEYS:
            name = self.header_name(key).lower()
            if name and name in seen:
                raise ConfigError(f"webhook headers for {seen[name]} and {key} are both {name!r}")
            seen[name] = key

    def _check_signing(self) -> None:
        if self.signature_algorithm not in signing.ALGORITHMS:
            raise ConfigError(
                f"DESTINATIONS_WEBHOOK_SIGNATURE_ALGORITHM {self.signature_algorithm!r} "
                f"is not one of {sorted(signing.ALGORITHMS)}"
            )
        if self.signature_encoding not in signing.ENCODINGS:
            raise ConfigError(
                f"DESTINATIONS_WEBHOOK_SIGNATURE_ENCODING {self.signature_encoding!r} "
                f"is not one of {sorted(signing.ENCODINGS)}"
            )
        _compile(self.signature_content_template, signing.ContentTemplate, "SIGNATURE_CONTENT")
        _compile(self.signature_header_template, signing.HeaderTemplate, "SIGNATURE_HEADER")


def _compile(source: str, template: Callable[[str], object], name: str) -> None:
    try:
        template(source)
    except signing.TemplateError as exc:
        raise ConfigError(f"DESTINATIONS_WEBHOOK_{name}_TEMPLATE: {exc}") from None
