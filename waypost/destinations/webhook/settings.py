"""Deployment-wide webhook behaviour (contract.md §4.7): one frozen value, built from Config and
checked once.

Header directives are three-state, as in Outpost: None means `<prefix><key>`, "" means the
header is not sent, anything else is the exact header name. They apply in default mode only;
Standard Webhooks mode always sends `<prefix>id`, `<prefix>timestamp` and `<prefix>signature`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from waypost import __version__
from waypost.config import Config
from waypost.destinations.webhook import signing
from waypost.errors import ConfigError

MODES = ("default", "standard")
DEFAULT_PREFIXES = {"default": "x-outpost-", "standard": "webhook-"}
SYSTEM_KEYS = ("event-id", "timestamp", "topic", "signature")
STANDARD_KEYS = {"event-id": "id", "timestamp": "timestamp", "signature": "signature"}
RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "connection", "user-agent"})
HEADER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]*")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]*")


@dataclass(frozen=True)
class CompatSignature:
    """A second signature, in an older scheme, sent alongside the primary one (with optional
    extra headers) so that receivers can migrate; enabled by naming its header."""

    header_name: str
    algorithm: str = "hmac-sha256"
    encoding: str = "hex"
    content_template: str = "{{.Body}}"
    header_template: str = 'v0={{.Signatures | join ","}}'
    secret_encoding: str = "raw"  # noqa: S105 (an encoding name, no secret)
    secret_prefix: str = ""
    headers: str = ""  # DESTINATIONS_WEBHOOK_COMPAT_HEADERS: name=template,...

    def signer(self) -> signing.DefaultSigner:
        return signing.DefaultSigner(
            self.algorithm,
            self.encoding,
            self.content_template,
            self.header_template,
            self.secret_encoding or "raw",
            self.secret_prefix,
            strict=False,  # a secret that does not decode gets no compat signature
        )

    def extra_headers(self) -> list[tuple[str, signing.ValueTemplate]]:
        return [
            (name, signing.ValueTemplate(template))
            for name, template in signing.header_templates(self.headers)
        ]

    def check(self) -> None:
        prefix = "DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE"
        _check_header_name(f"{prefix}_HEADER_NAME", self.header_name.strip())
        _check_choice(f"{prefix}_ALGORITHM", self.algorithm, signing.ALGORITHMS)
        _check_choice(f"{prefix}_ENCODING", self.encoding, signing.ENCODINGS)
        _check_choice(
            f"{prefix}_SECRET_ENCODING", self.secret_encoding or "raw", signing.SECRET_ENCODINGS
        )
        _compile(self.content_template, signing.ContentTemplate, "COMPAT_SIGNATURE_CONTENT")
        _compile(self.header_template, signing.HeaderTemplate, "COMPAT_SIGNATURE_HEADER")
        try:
            pairs = signing.header_templates(self.headers)
            for name, template in pairs:
                _check_header_name("DESTINATIONS_WEBHOOK_COMPAT_HEADERS", name)
                signing.ValueTemplate(template)
        except signing.TemplateError as exc:
            raise ConfigError(f"DESTINATIONS_WEBHOOK_COMPAT_HEADERS: {exc}") from None


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
    timestamp_format: str = ""  # "" = the mode's own: rfc3339 (default), unix (standard)
    signature_secret_encoding: str = ""  # "" = the mode's own: raw (default), base64 (standard)
    signature_secret_prefix: str = ""
    compat: CompatSignature | None = None
    max_response_body_bytes: int = 131072
    include_millisecond_timestamp: bool = False
    user_agent: str = f"Outpost/{__version__}"
    delivery_timeout_seconds: float = 5.0
    proxy_url: str = ""

    @property
    def standard(self) -> bool:
        return self.mode == "standard"

    @property
    def unix_timestamp(self) -> bool:
        """The timestamp header (and metadata) as epoch seconds rather than RFC 3339."""
        return (self.timestamp_format or ("unix" if self.standard else "rfc3339")) == "unix"

    @property
    def secret_encoding(self) -> str:
        return self.signature_secret_encoding or ("base64" if self.standard else "raw")

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
        self._check_formats()
        if not self.standard:
            self._check_pinned_names()
            self._check_signing()
        if self.compat is not None:
            self.compat.check()
        self._check_collisions()
        if not self.standard:
            _compile(self.signing_secret_template, signing.SecretTemplate, "SIGNING_SECRET")
            self._check_generated_secrets_decode()

    def _check_formats(self) -> None:
        _check_choice(
            "DESTINATIONS_WEBHOOK_TIMESTAMP_FORMAT",
            self.timestamp_format or "rfc3339",
            ("rfc3339", "unix"),
        )
        _check_choice(
            "DESTINATIONS_WEBHOOK_SIGNATURE_SECRET_ENCODING",
            self.secret_encoding,
            signing.SECRET_ENCODINGS,
        )
        if not self.standard:
            return
        # Standard Webhooks fixes these (unix timestamps, whsec_ + base64 secrets); Outpost keeps
        # an operator's other value in that mode, which this server does not implement.
        fixed = {
            "DESTINATIONS_WEBHOOK_TIMESTAMP_FORMAT": (self.timestamp_format, "unix"),
            "DESTINATIONS_WEBHOOK_SIGNATURE_SECRET_ENCODING": (
                self.signature_secret_encoding,
                "base64",
            ),
            "DESTINATIONS_WEBHOOK_SIGNATURE_SECRET_PREFIX": (
                self.signature_secret_prefix,
                signing.STANDARD_PREFIX,
            ),
        }
        for variable, (value, only) in fixed.items():
            if value and value != only:
                raise ConfigError(
                    f"{variable}={value!r} is not supported in standard mode (only {only!r})"
                )

    def _check_generated_secrets_decode(self) -> None:
        sample = signing.SecretTemplate(self.signing_secret_template).generate()
        try:
            signing.hmac_key(sample, self.secret_encoding, self.signature_secret_prefix)
        except signing.SigningError:
            raise ConfigError(
                "DESTINATIONS_WEBHOOK_SIGNING_SECRET_TEMPLATE generates secrets that "
                f"DESTINATIONS_WEBHOOK_SIGNATURE_SECRET_ENCODING={self.secret_encoding} cannot "
                "decode (set DESTINATIONS_WEBHOOK_SIGNATURE_SECRET_PREFIX to strip a prefix)"
            ) from None

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
        if self.compat is not None:
            name = self.compat.header_name.strip().lower()
            if name in seen:
                raise ConfigError(
                    f"DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_HEADER_NAME {name!r} is also the "
                    f"{seen[name]} header"
                )

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


def _check_choice(variable: str, value: str, allowed: Iterable[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"{variable} {value!r} is not one of {sorted(allowed)}")


def _check_header_name(variable: str, name: str) -> None:
    if not HEADER_NAME.fullmatch(name):
        raise ConfigError(f"{variable} {name!r} is not a valid header name")
    if name.lower() in RESERVED_HEADERS:
        raise ConfigError(f"{variable} {name!r} is a reserved header")


def _compile(source: str, template: Callable[[str], object], name: str) -> None:
    try:
        template(source)
    except signing.TemplateError as exc:
        raise ConfigError(f"DESTINATIONS_WEBHOOK_{name}_TEMPLATE: {exc}") from None


def settings_from(config: Config) -> WebhookSettings:
    return WebhookSettings(
        mode=config.destinations_webhook_mode,
        header_prefix=config.destinations_webhook_header_prefix,
        event_id_header=_header(
            config.destinations_webhook_event_id_header_name,
            config.destinations_webhook_disable_default_event_id_header,
        ),
        timestamp_header=_header(
            config.destinations_webhook_timestamp_header_name,
            config.destinations_webhook_disable_default_timestamp_header,
        ),
        topic_header=_header(
            config.destinations_webhook_topic_header_name,
            config.destinations_webhook_disable_default_topic_header,
        ),
        signature_header=_header(
            config.destinations_webhook_signature_header_name,
            config.destinations_webhook_disable_default_signature_header,
        ),
        signature_algorithm=config.destinations_webhook_signature_algorithm,
        signature_encoding=config.destinations_webhook_signature_encoding,
        signature_content_template=config.destinations_webhook_signature_content_template,
        signature_header_template=config.destinations_webhook_signature_header_template,
        signing_secret_template=config.destinations_webhook_signing_secret_template,
        timestamp_format=config.destinations_webhook_timestamp_format,
        signature_secret_encoding=config.destinations_webhook_signature_secret_encoding,
        signature_secret_prefix=config.destinations_webhook_signature_secret_prefix,
        compat=_compat_signature(config),
        max_response_body_bytes=config.destinations_webhook_max_response_body_bytes,
        include_millisecond_timestamp=config.destinations_include_millisecond_timestamp,
        user_agent=config.http_user_agent or f"Outpost/{__version__}",
        delivery_timeout_seconds=config.delivery_timeout_seconds,
        proxy_url=config.destinations_webhook_proxy_url,
    )


def _compat_signature(config: Config) -> CompatSignature | None:
    if not config.destinations_webhook_compat_signature_header_name.strip():
        # Its other settings are refused without it (config.py declares so).
        return None
    return CompatSignature(
        header_name=config.destinations_webhook_compat_signature_header_name,
        algorithm=config.destinations_webhook_compat_signature_algorithm,
        encoding=config.destinations_webhook_compat_signature_encoding,
        content_template=config.destinations_webhook_compat_signature_content_template,
        header_template=config.destinations_webhook_compat_signature_header_template,
        secret_encoding=config.destinations_webhook_compat_signature_secret_encoding,
        secret_prefix=config.destinations_webhook_compat_signature_secret_prefix,
        headers=config.destinations_webhook_compat_headers,
    )


def _header(name: str | None, disabled_by_deprecated_flag: bool) -> str | None:
    """An explicit name wins; otherwise the deprecated boolean can still switch the header off."""
    if name is None and disabled_by_deprecated_flag:
        return ""
    return name
