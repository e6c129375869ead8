"""Settings, under Outpost's environment-variable names.

Sources, lowest precedence first: the defaults below; one config file (`CONFIG`, or the first of
`CONFIG_SEARCH_PATH` that exists: `.env` files hold `NAME=value` lines, YAML files hold the same
names in snake_case, or nested as in Outpost's file); the process environment. Every setting is
declared once, as a field of `Config`: its variable name, default, what it does, and its rule
(choices, bounds, format, whether it is secret, the setting it needs). `waypost config` prints
the table of them that docs/configuration.md holds (`scripts/docs` regenerates it); `find_problems`
checks the rules, and the few that involve several settings.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from waypost import extras
from waypost.errors import ConfigError

CONFIG_SEARCH_PATH = (
    ".env",
    ".outpost.yaml",
    "config/outpost.yaml",
    "config/outpost/config.yaml",
    "config/outpost/.env",
    "/config/outpost.yaml",
    "/config/outpost/config.yaml",
    "/config/outpost/.env",
)


Check = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class Rule:
    """What one setting's value may be, declared with it: `problem()` says what is wrong.

    Choices are matched case-insensitively when read (and stored as declared); numbers must be
    finite and within the bounds (each entry, for a list); `fmt` checks anything else (formats).
    `needs` names the setting (its attribute) without which this one, set, cannot work, and the
    message that says so; `find_problems` checks it, seeing all the settings.
    """

    choices: tuple[str, ...] = ()
    at_least: float | None = None
    at_most: float | None = None
    above: float | None = None
    fmt: Check | None = None
    secret: bool = False  # masked wherever settings are shown
    needs: tuple[str, str] | None = None

    def problem(self, name: str, value: Any) -> str | None:
        if value is None:  # `int | None` settings: empty turns the feature off
            return None
        if self.choices and value not in self.choices:
            shown = ["empty" if c == "" else c for c in self.choices]
            return f"{name} must be {', '.join(shown[:-1])} or {shown[-1]}, not {value!r}"
        for number in value if isinstance(value, tuple) else (value,):
            if isinstance(number, bool) or not isinstance(number, int | float):
                continue
            problem = self._number_problem(name, number)
            if problem:
                return problem
        problem = self.fmt(value) if self.fmt is not None else None
        return f"{name}: {problem}" if problem else None

    def _number_problem(self, name: str, number: float) -> str | None:
        if not math.isfinite(number):
            return f"{name} must be a finite number, not {number!r}"
        low, high = self.at_least, self.at_most
        outside = (low is not None and number < low) or (high is not None and number > high)
        if outside and low is not None and high is not None:
            return f"{name} must be between {low:g} and {high:g}, not {number!r}"
        if outside:
            bound = f"at least {low:g}" if low is not None else f"at most {high:g}"
            return f"{name} must be {bound}, not {number!r}"
        if self.above is not None and number <= self.above:
            return f"{name} must be more than {self.above:g}, not {number!r}"
        return None


def _setting(
    env: str,
    default: Any,
    doc: str,
    *aliases: str,
    choices: tuple[str, ...] = (),
    at_least: float | None = None,
    at_most: float | None = None,
    above: float | None = None,
    fmt: Check | None = None,
    secret: bool = False,
    needs: tuple[str, str] | None = None,
) -> Any:
    rule = Rule(choices, at_least, at_most, above, fmt, secret, needs)
    return field(
        default=default, metadata={"env": env, "doc": doc, "aliases": aliases, "rule": rule}
    )


# The compat signature's settings do nothing without its header name (Outpost ignores them then;
# a setting that would do nothing is refused instead, so that a typo cannot pass unnoticed).
_COMPAT = (
    "destinations_webhook_compat_signature_header_name",
    "{name} is set but does nothing without {needed}",
)


def _non_empty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _not_blank(value: str) -> str | None:
    return (
        "must not be only spaces (leave it empty instead)" if value and not value.strip() else None
    )


def _url(*schemes: str, host: bool = True) -> Check:
    def check(value: str) -> str | None:
        if not value:
            return None
        parsed = urlsplit(value)
        if parsed.scheme.lower() not in schemes or (host and not parsed.hostname):
            wanted = f"a {' or '.join(schemes)} URL" + (" with a host" if host else "")
            return f"expected {wanted}, not {_mask_url(value)!r}"
        try:
            parsed.port  # noqa: B018 - raises on a port that is not a number or out of range
        except ValueError as exc:
            return str(exc)
        return None

    return check


def _site_url(value: str) -> str | None:
    """An http(s) origin with nothing after it: the portal lives at the root of its host (its
    assets and API calls use absolute paths), so a path, query or fragment could never work."""
    problem = _url("http", "https")(value)
    if problem or not value:
        return problem
    parsed = urlsplit(value)
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment:
        return f"expected a scheme and host only (no path, query or fragment), not {_mask_url(value)!r}"
    return None


def _networks(value: tuple[str, ...]) -> str | None:
    for entry in value:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return f"{entry!r} is not a network (CIDR such as 10.0.0.0/8, or an address)"
    return None


def _topic_list(value: tuple[str, ...]) -> str | None:
    seen: set[str] = set()
    for topic in value:
        if any(ch.isspace() for ch in topic):
            return f"topic {topic!r} contains whitespace"
        if topic in seen:
            return f"topic {topic!r} is listed twice"
        seen.add(topic)
    return None


@dataclass(frozen=True)
class Config:
    # Service
    service: str = _setting(
        "SERVICE",
        "all",
        "Which services this process runs: `all` (or empty), `api`, `delivery`.",
        choices=("", "all", "api", "delivery"),
    )
    host: str = _setting(
        "HOST",
        "127.0.0.1",
        "Address the API listens on. Use `0.0.0.0` to serve other machines.",
        fmt=_non_empty,
    )
    port: int = _setting(
        "API_PORT",
        3333,
        "Port the API listens on (`PORT` is accepted too).",
        "PORT",
        at_least=1,
        at_most=65535,
    )
    data_dir: str = _setting(
        "OUTPOST_DATA_DIR",
        "./outpost-data",
        "Embedded mode: folder holding the SQLite database and the generated keys.",
        fmt=_non_empty,
    )
    log_level: str = _setting(
        "LOG_LEVEL",
        "info",
        "`debug`, `info`, `warn` or `error`.",
        choices=("trace", "debug", "info", "warn", "warning", "error"),
    )
    log_format: str = _setting(
        "LOG_FORMAT",
        "text",
        "`text` (readable lines) or `json` (one object per line: `time`, `level`, `logger`, `message`, and the context: `request_id` while an API request is handled, `event_id`, `destination_id`, `attempt` during a delivery). Every API response carries its request id in `X-Request-Id` (the caller's, when well formed).",
        choices=("text", "json"),
    )
    # OpenTelemetry
    otel_service_name: str = _setting(
        "OTEL_SERVICE_NAME",
        "",
        "Turns OpenTelemetry on: traces (publish → each delivery attempt) and the `outpost` meter's metrics, under this service name. Endpoints, headers and TLS come from the standard `OTEL_EXPORTER_OTLP_*` variables (process environment); per-signal endpoints without the generic one export only those signals. Unset: the SDK is not even imported. Needs the `otel` extra.",
    )
    otel_exporter: str = _setting(
        "OTEL_EXPORTER",
        "otlp",
        "`otlp`, `console` (or `stdout`) or `none`; `OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER` override it per signal.",
        choices=("otlp", "console", "stdout", "none"),
    )
    otel_protocol: str = _setting(
        "OTEL_PROTOCOL",
        "grpc",
        "OTLP protocol: `grpc`, `http` or `http/protobuf`; `OTEL_EXPORTER_OTLP_PROTOCOL` (or its per-signal variants) wins when set.",
        choices=("grpc", "http", "http/protobuf"),
    )
    # Security
    api_key: str = _setting(
        "API_KEY",
        "",
        "Admin bearer token. Unset: one is generated, kept in the data folder and printed at start (never an open server).",
        secret=True,
    )
    api_jwt_secret: str = _setting(
        "API_JWT_SECRET",
        "",
        "HS256 secret for tenant JWTs. Unset: generated and kept in the data folder.",
        secret=True,
    )
    aes_encryption_secret: str = _setting(
        "AES_ENCRYPTION_SECRET",
        "",
        "Secret from which the AES-256-GCM key sealing destination credentials at rest is derived. Unset: generated and kept in the data folder; required with POSTGRES_URL.",
        secret=True,
    )
    aes_encryption_secret_previous: str = _setting(
        "AES_ENCRYPTION_SECRET_PREVIOUS",
        "",
        "While rotating: the former AES_ENCRYPTION_SECRET. Credentials sealed under it still read, and are resealed under the new one when their destination is next written.",
        secret=True,
    )
    deployment_id: str = _setting(
        "DEPLOYMENT_ID", "", "Namespace put into tenant JWTs (`deployment_id` claim)."
    )
    max_request_body_bytes: int = _setting(
        "API_MAX_REQUEST_BODY_BYTES",
        1_048_576,
        "Largest request body the API accepts; larger gets 413.",
        at_least=1024,
    )
    max_destination_body_bytes: int = _setting(
        "API_MAX_DESTINATION_BODY_BYTES",
        262_144,
        "Largest body of a destination create or update (413 above it, before it is read): decoding a body holds the event loop every tenant shares, and a destination within the topic, filter and metadata limits fits (raise it with MAX_METADATA_* if both metadata maps must be near their maximum).",
        at_least=1024,
    )
    max_request_header_bytes: int = _setting(
        "API_MAX_REQUEST_HEADER_BYTES",
        32_768,
        "Largest request line plus headers the API accepts; larger gets 431 and the connection is closed.",
        at_least=1024,
    )
    api_header_timeout_seconds: float = _setting(
        "API_HEADER_TIMEOUT_SECONDS",
        10.0,
        "A connection's request line and headers must arrive within this many seconds of it opening (on a kept-alive connection: of the request's first byte); else it is closed, after a 408 if part of them came.",
        above=0,
    )
    api_body_timeout_seconds: float = _setting(
        "API_BODY_TIMEOUT_SECONDS",
        30.0,
        "A request's body must arrive within this many seconds of its headers; else the connection is closed, after a 408 if no response was started.",
        above=0,
    )
    api_keepalive_timeout_seconds: int = _setting(
        "API_KEEPALIVE_TIMEOUT_SECONDS",
        30,
        "A kept-alive connection that sends no new request for this many seconds is closed.",
        at_least=1,
    )
    api_max_connections: int = _setting(
        "API_MAX_CONNECTIONS",
        1000,
        "Client connections the API keeps open at once (per process); one more is closed as soon as it is accepted.",
        at_least=1,
    )
    max_metadata_keys: int = _setting(
        "MAX_METADATA_KEYS",
        64,
        "Keys allowed in one `metadata` or `delivery_metadata` map (events, tenants, destinations); more gets 422.",
        at_least=1,
    )
    max_metadata_key_bytes: int = _setting(
        "MAX_METADATA_KEY_BYTES",
        256,
        "Longest metadata key in UTF-8 bytes; longer gets 422.",
        at_least=1,
    )
    max_metadata_value_bytes: int = _setting(
        "MAX_METADATA_VALUE_BYTES",
        4096,
        "Longest metadata value in UTF-8 bytes; longer gets 422.",
        at_least=1,
    )
    max_destination_topics: int = _setting(
        "MAX_DESTINATION_TOPICS",
        128,
        "Entries allowed in one destination's `topics`; more gets 422.",
        at_least=1,
    )
    max_topic_length: int = _setting(
        "MAX_TOPIC_LENGTH",
        256,
        "Longest topic in UTF-8 bytes, in a destination's `topics` or a published event; longer gets 422.",
        at_least=1,
    )
    max_filter_bytes: int = _setting(
        "MAX_FILTER_BYTES",
        65_536,
        "Largest destination `filter`, in bytes of compact JSON; larger gets 422.",
        at_least=1,
    )
    max_filter_nodes: int = _setting(
        "MAX_FILTER_NODES",
        2_000,
        "Most values (objects, arrays, and the scalars in them) one destination `filter` may hold; more gets 422.",
        at_least=1,
    )
    max_json_depth: int = _setting(
        "MAX_JSON_DEPTH",
        128,
        "Deepest nesting of objects and arrays a JSON request body may have (event `data` included); deeper gets 422.",
        at_least=34,
        at_most=500,
    )
    api_rate_limit: int = _setting(
        "API_RATE_LIMIT",
        0,
        "Requests per window allowed to each caller (the admin key; each tenant's JWTs); over it gets 429 with `Retry-After`. 0: no limit.",
        at_least=0,
    )
    api_rate_limit_window_seconds: int = _setting(
        "API_RATE_LIMIT_WINDOW_SECONDS",
        60,
        "Length of the API_RATE_LIMIT window (fixed windows; shared by all API processes with POSTGRES_URL).",
        at_least=1,
    )
    # Topics and tenants
    topics: tuple[str, ...] = _setting(
        "TOPICS", (), "Comma-separated topics. Unset: any topic is accepted.", fmt=_topic_list
    )
    topics_allow_wildcards: bool = _setting(
        "TOPICS_ALLOW_WILDCARDS",
        False,
        "Allow `*` patterns such as `user.*` in destination topics.",
    )
    max_destinations_per_tenant: int = _setting(
        "MAX_DESTINATIONS_PER_TENANT", 20, "Destinations a tenant may have.", at_least=1
    )
    publish_idempotency_key_ttl: int = _setting(
        "PUBLISH_IDEMPOTENCY_KEY_TTL",
        3600,
        "Seconds during which re-publishing an event id is answered `duplicate: true`.",
        at_least=0,
    )
    # Delivery
    delivery_max_concurrency: int = _setting(
        "DELIVERY_MAX_CONCURRENCY",
        64,
        "Deliveries in flight per delivery process (Outpost's default is 1).",
        at_least=1,
    )
    delivery_timeout_seconds: float = _setting(
        "DELIVERY_TIMEOUT_SECONDS", 5.0, "Timeout of one delivery attempt.", above=0
    )
    max_retry_limit: int = _setting(
        "MAX_RETRY_LIMIT", 10, "Automatic retries after the first attempt.", at_least=0
    )
    retry_interval_seconds: int = _setting(
        "RETRY_INTERVAL_SECONDS",
        30,
        "Exponential backoff base: retry n waits interval × 2^(n-1).",
        at_least=0,
    )
    retry_schedule: tuple[int, ...] = _setting(
        "RETRY_SCHEDULE",
        (),
        "Comma-separated delays in seconds (e.g. `5,60,600`); overrides the two above, its length is the retry limit.",
        at_least=1,
    )
    retry_poll_backoff_ms: int = _setting(
        "RETRY_POLL_BACKOFF_MS",
        0,
        "Longest idle sleep of the scheduler in ms (0: automatic, at most 1 s).",
        at_least=0,
    )
    destination_max_concurrency: int = _setting(
        "DESTINATION_MAX_CONCURRENCY",
        0,
        "Deliveries in flight to one destination per delivery process (0: DELIVERY_MAX_CONCURRENCY / 8, at least 1); a destination's `outpost.max_concurrency` metadata overrides it.",
        at_least=0,
    )
    tenant_max_concurrency: int = _setting(
        "TENANT_MAX_CONCURRENCY",
        0,
        "Deliveries in flight to one tenant's destinations per delivery process (0: DELIVERY_MAX_CONCURRENCY / 2, at least 1).",
        at_least=0,
    )
    destination_rate_limit_per_second: float = _setting(
        "DESTINATION_RATE_LIMIT_PER_SECOND",
        0.0,
        "Deliveries started per second to one destination per delivery process (0: no limit); a destination's `outpost.rate_limit_per_second` metadata overrides it.",
        at_least=0,
    )
    delivery_circuit_failure_threshold: int = _setting(
        "DELIVERY_CIRCUIT_FAILURE_THRESHOLD",
        5,
        "Consecutive timeouts or connection failures after which a destination gets one delivery in flight at a time until one is answered (0: never).",
        at_least=0,
    )
    retry_after_max_seconds: int = _setting(
        "RETRY_AFTER_MAX_SECONDS",
        3600,
        "Longest `Retry-After` (of a 429 or 503) honoured for the next automatic retry, which then replaces the backoff (0: ignore Retry-After).",
        at_least=0,
    )
    delivery_lease_seconds: int = _setting(
        "DELIVERY_LEASE_SECONDS",
        60,
        "How long a claimed delivery stays invisible to other workers; must outlast the delivery timeout.",
        at_least=1,
    )
    log_batch_threshold_seconds: float = _setting(
        "LOG_BATCH_THRESHOLD_SECONDS",
        10.0,
        "Accepted for compatibility. Attempts are written by group commit as they finish, with no flush delay.",
        at_least=0,
    )
    log_batch_size: int = _setting(
        "LOG_BATCH_SIZE", 1000, "Largest number of writes committed in one transaction.", at_least=1
    )
    # Webhooks
    destinations_webhook_mode: str = _setting(
        "DESTINATIONS_WEBHOOK_MODE",
        "default",
        "`default` (Outpost headers, `v0=` signature) or `standard` (Standard Webhooks).",
        choices=("default", "standard"),
    )
    destinations_webhook_header_prefix: str | None = _setting(
        "DESTINATIONS_WEBHOOK_HEADER_PREFIX",
        None,
        "Header prefix; default `x-outpost-` (default mode) or `webhook-` (standard mode); blank means none.",
    )
    destinations_webhook_event_id_header_name: str | None = _setting(
        "DESTINATIONS_WEBHOOK_EVENT_ID_HEADER_NAME",
        None,
        "Event id header name; unset: `<prefix>event-id`; empty: omitted.",
    )
    destinations_webhook_timestamp_header_name: str | None = _setting(
        "DESTINATIONS_WEBHOOK_TIMESTAMP_HEADER_NAME",
        None,
        "Timestamp header name; unset: `<prefix>timestamp`; empty: omitted.",
    )
    destinations_webhook_topic_header_name: str | None = _setting(
        "DESTINATIONS_WEBHOOK_TOPIC_HEADER_NAME",
        None,
        "Topic header name; unset: `<prefix>topic`; empty: omitted.",
    )
    destinations_webhook_signature_header_name: str | None = _setting(
        "DESTINATIONS_WEBHOOK_SIGNATURE_HEADER_NAME",
        None,
        "Signature header name; unset: `<prefix>signature`; empty: omitted.",
    )
    destinations_webhook_disable_default_event_id_header: bool = _setting(
        "DESTINATIONS_WEBHOOK_DISABLE_DEFAULT_EVENT_ID_HEADER",
        False,
        "Deprecated: omit the event id header when its name is unset.",
    )
    destinations_webhook_disable_default_timestamp_header: bool = _setting(
        "DESTINATIONS_WEBHOOK_DISABLE_DEFAULT_TIMESTAMP_HEADER",
        False,
        "Deprecated: omit the timestamp header when its name is unset.",
    )
    destinations_webhook_disable_default_topic_header: bool = _setting(
        "DESTINATIONS_WEBHOOK_DISABLE_DEFAULT_TOPIC_HEADER",
        False,
        "Deprecated: omit the topic header when its name is unset.",
    )
    destinations_webhook_disable_default_signature_header: bool = _setting(
        "DESTINATIONS_WEBHOOK_DISABLE_DEFAULT_SIGNATURE_HEADER",
        False,
        "Deprecated: omit the signature header when its name is unset.",
    )
    destinations_webhook_signature_algorithm: str = _setting(
        "DESTINATIONS_WEBHOOK_SIGNATURE_ALGORITHM",
        "hmac-sha256",
        "`hmac-sha256` or `hmac-sha1` (default mode).",
        choices=("hmac-sha256", "hmac-sha1"),
    )
    destinations_webhook_signature_encoding: str = _setting(
        "DESTINATIONS_WEBHOOK_SIGNATURE_ENCODING",
        "hex",
        "`hex` or `base64` (default mode).",
        choices=("hex", "base64"),
    )
    destinations_webhook_signature_content_template: str = _setting(
        "DESTINATIONS_WEBHOOK_SIGNATURE_CONTENT_TEMPLATE",
        "{{.Body}}",
        "What is signed; supports `{{.Body}}`, `{{.EventID}}`, `{{.Topic}}`, `{{.Timestamp.Unix}}`.",
    )
    destinations_webhook_signature_header_template: str = _setting(
        "DESTINATIONS_WEBHOOK_SIGNATURE_HEADER_TEMPLATE",
        'v0={{.Signatures | join ","}}',
        "Signature header value; also `{{.Timestamp.Unix}}`, `{{.EventID}}`, `{{.Topic}}`.",
    )
    destinations_webhook_signing_secret_template: str = _setting(
        "DESTINATIONS_WEBHOOK_SIGNING_SECRET_TEMPLATE",
        "whsec_{{.RandomHex}}",
        "Generated secrets; `{{.RandomHex}}`, `{{.RandomBase64}}`, `{{.RandomAlphanumeric}}`.",
    )
    destinations_webhook_timestamp_format: str = _setting(
        "DESTINATIONS_WEBHOOK_TIMESTAMP_FORMAT",
        "",
        "Timestamp header (and `timestamp` metadata): `rfc3339` or `unix` (epoch seconds); unset: `rfc3339` in default mode, `unix` in standard mode (which accepts only `unix`).",
        choices=("", "rfc3339", "unix"),
    )
    destinations_webhook_signature_secret_encoding: str = _setting(
        "DESTINATIONS_WEBHOOK_SIGNATURE_SECRET_ENCODING",
        "",
        "How the HMAC key comes from a destination's secret: `raw` (its UTF-8 bytes, the default) or `hex` / `base64` (decoded, after the prefix below). The signing-secret template must generate decodable secrets (checked at start); a stored secret that does not decode fails its attempts with `ERR`. Standard mode accepts only `base64`.",
        choices=("", "raw", "hex", "base64"),
    )
    destinations_webhook_signature_secret_prefix: str = _setting(
        "DESTINATIONS_WEBHOOK_SIGNATURE_SECRET_PREFIX",
        "",
        "Prefix stripped from the secret before it is decoded (e.g. `whsec_`); ignored with `raw`. Standard mode accepts only `whsec_`.",
    )
    destinations_webhook_compat_signature_header_name: str = _setting(
        "DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_HEADER_NAME",
        "",
        "Setting it sends a second signature, in an older scheme, under this exact header name, alongside the primary one (for receivers migrating between schemes).",
        fmt=_not_blank,
    )
    destinations_webhook_compat_signature_algorithm: str = _setting(
        "DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_ALGORITHM",
        "hmac-sha256",
        "Compat signature: `hmac-sha256` or `hmac-sha1`.",
        choices=("hmac-sha256", "hmac-sha1"),
        needs=_COMPAT,
    )
    destinations_webhook_compat_signature_encoding: str = _setting(
        "DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_ENCODING",
        "hex",
        "Compat signature: `hex` or `base64`.",
        choices=("hex", "base64"),
        needs=_COMPAT,
    )
    destinations_webhook_compat_signature_content_template: str = _setting(
        "DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_CONTENT_TEMPLATE",
        "{{.Body}}",
        "Compat signature: what is signed (the primary content template's variables).",
        needs=_COMPAT,
    )
    destinations_webhook_compat_signature_header_template: str = _setting(
        "DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_HEADER_TEMPLATE",
        'v0={{.Signatures | join ","}}',
        "Compat signature: the header's value (the primary header template's variables).",
        needs=_COMPAT,
    )
    destinations_webhook_compat_signature_secret_encoding: str = _setting(
        "DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_SECRET_ENCODING",
        "raw",
        "Compat signature: `raw`, `hex` or `base64`; a destination whose secret does not decode gets no compat signature (nor the compat headers).",
        choices=("", "raw", "hex", "base64"),
        needs=_COMPAT,
    )
    destinations_webhook_compat_signature_secret_prefix: str = _setting(
        "DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_SECRET_PREFIX",
        "",
        "Compat signature: prefix stripped from the secret before it is decoded.",
        needs=_COMPAT,
    )
    destinations_webhook_compat_headers: str = _setting(
        "DESTINATIONS_WEBHOOK_COMPAT_HEADERS",
        "",
        "Extra headers sent with the compat signature: `name=template` pairs separated by commas (`\\,` for a literal comma); templates may use `{{.EventID}}`, `{{.Topic}}`, `{{.Timestamp}}`, `{{.Timestamp.Unix}}`.",
        needs=_COMPAT,
    )
    destinations_webhook_max_response_body_bytes: int = _setting(
        "DESTINATIONS_WEBHOOK_MAX_RESPONSE_BODY_BYTES",
        131072,
        "Largest response body stored on an attempt (0: no limit).",
        at_least=0,
    )
    destinations_webhook_proxy_url: str = _setting(
        "DESTINATIONS_WEBHOOK_PROXY_URL",
        "",
        "Forward proxy for webhook deliveries.",
        fmt=_url("http", "https", "socks5", "socks5h"),
    )
    destinations_allowed_networks: tuple[str, ...] = _setting(
        "DESTINATIONS_ALLOWED_NETWORKS",
        (),
        "Comma-separated CIDRs destinations may reach despite the SSRF guard, e.g. `127.0.0.0/8,::1/128`. The guard refuses loopback, private, link-local (cloud metadata), CGNAT, multicast, reserved and IPv6 local addresses, also inside IPv4-mapped, NAT64 and 6to4 forms. It checks the address each connection is opened to (after DNS) for webhook, hookdeck, cloudflare_queues, the AWS types, rabbitmq, kafka (advertised brokers too) and gcp_pubsub emulator endpoints; refuses IP literals in those ranges at create/update (422); and stops following redirects. Through DESTINATIONS_WEBHOOK_PROXY_URL the proxy resolves names, so only IP-literal webhook URLs are checked. The tenant's attempt error says an address is not allowed; the log names it.",
        fmt=_networks,
    )
    destinations_allow_private_networks: bool = _setting(
        "DESTINATIONS_ALLOW_PRIVATE_NETWORKS",
        False,
        "Turn the SSRF guard off: destinations may reach any address and webhook redirects are followed. Only for deployments whose destinations are all trusted.",
    )
    destinations_unguarded_types: tuple[str, ...] = _setting(
        "DESTINATIONS_UNGUARDED_TYPES",
        (),
        "Comma-separated destination types delivered without the SSRF guard while it is on. `azure_servicebus` needs listing here to be usable with the guard on: its connections cannot be checked, so it is otherwise refused at create/update (422) and at delivery. Any other type listed loses its guard.",
    )
    destinations_enabled_types: tuple[str, ...] = _setting(
        "DESTINATIONS_ENABLED_TYPES",
        (),
        "Comma-separated destination types tenants may create (unset: all). Other types are not listed by `/destination-types`, and creating one answers 422; destinations already stored keep delivering.",
    )
    destinations_include_millisecond_timestamp: bool = _setting(
        "DESTINATIONS_INCLUDE_MILLISECOND_TIMESTAMP", False, "Add a `timestamp-ms` metadata header."
    )
    destinations_aws_kinesis_metadata_in_payload: bool = _setting(
        "DESTINATIONS_AWS_KINESIS_METADATA_IN_PAYLOAD",
        True,
        'Kinesis records are `{"metadata": {...}, "data": <event data>}`; false: the event data alone.',
    )
    destinations_hookdeck_events_url: str = _setting(
        "DESTINATIONS_HOOKDECK_EVENTS_URL",
        "https://hkdk.events",
        "Where hookdeck deliveries go: `<url>/<source id>` (through the SSRF guard).",
        fmt=_url("http", "https"),
    )
    destinations_hookdeck_api_url: str = _setting(
        "DESTINATIONS_HOOKDECK_API_URL",
        "https://api.hookdeck.com",
        "Hookdeck API that verifies hookdeck source tokens on destination create/update.",
        fmt=_url("http", "https"),
    )
    destinations_hookdeck_verify_tokens: bool = _setting(
        "DESTINATIONS_HOOKDECK_VERIFY_TOKENS",
        True,
        "Verify hookdeck tokens with the Hookdeck API (422 when refused). Off: store the source id the token names, without a source name (offline servers, tests).",
    )
    destinations_cloudflare_api_url: str = _setting(
        "DESTINATIONS_CLOUDFLARE_API_URL",
        "https://api.cloudflare.com/client/v4",
        "Cloudflare API base for cloudflare_queues deliveries (through the SSRF guard).",
        fmt=_url("http", "https"),
    )
    http_user_agent: str = _setting(
        "HTTP_USER_AGENT", "", "Outbound User-Agent; default `Outpost/<version>`."
    )
    # Alerts and operator events (waypost/operator)
    alert_consecutive_failure_count: int | None = _setting(
        "ALERT_CONSECUTIVE_FAILURE_COUNT",
        100,
        "Consecutive failed attempts of a destination that make 100 %; alerts at 50, 70, 90 and 100 % (empty: no counting).",
        at_least=1,
    )
    alert_auto_disable_destination: bool = _setting(
        "ALERT_AUTO_DISABLE_DESTINATION",
        False,
        "Disable a destination at 100 % of ALERT_CONSECUTIVE_FAILURE_COUNT, and a webhook at once when it answers `410 Gone`.",
    )
    alert_exhausted_retries_window_seconds: int | None = _setting(
        "ALERT_EXHAUSTED_RETRIES_WINDOW_SECONDS",
        3600,
        "At most one `alert.attempt.exhausted_retries` per destination in this many seconds (0: every time; empty: never).",
        at_least=0,
    )
    operator_events_topics: tuple[str, ...] = _setting(
        "OPERATOR_EVENTS_TOPICS",
        (),
        "Operator event topics to send (comma-separated, or `*`); unset: none. Needs exactly one OPERATOR_EVENTS_* sink.",
    )
    operator_events_http_url: str = _setting(
        "OPERATOR_EVENTS_HTTP_URL",
        "",
        "HTTP sink: operator events are POSTed here.",
        fmt=_url("http", "https"),
    )
    operator_events_http_signing_secret: str = _setting(
        "OPERATOR_EVENTS_HTTP_SIGNING_SECRET",
        "",
        "HTTP sink: sign each body as `X-Outpost-Signature: v0=<hex HMAC-SHA256>`.",
        secret=True,
    )
    operator_events_rabbitmq_server_url: str = _setting(
        "OPERATOR_EVENTS_RABBITMQ_SERVER_URL",
        "",
        "RabbitMQ sink: `amqp[s]://user:pass@host:port`; routing key = operator topic. Needs the `rabbitmq` extra.",
        fmt=_url("amqp", "amqps"),
        secret=True,
    )
    operator_events_rabbitmq_exchange: str = _setting(
        "OPERATOR_EVENTS_RABBITMQ_EXCHANGE", "", "RabbitMQ sink: exchange (empty: the default)."
    )
    operator_events_aws_sqs_queue_url: str = _setting(
        "OPERATOR_EVENTS_AWS_SQS_QUEUE_URL", "", "AWS SQS sink: queue URL. Needs the `aws` extra."
    )
    operator_events_aws_sqs_access_key_id: str = _setting(
        "OPERATOR_EVENTS_AWS_SQS_ACCESS_KEY_ID", "", "AWS SQS sink: access key id."
    )
    operator_events_aws_sqs_secret_access_key: str = _setting(
        "OPERATOR_EVENTS_AWS_SQS_SECRET_ACCESS_KEY",
        "",
        "AWS SQS sink: secret access key.",
        secret=True,
    )
    operator_events_aws_sqs_region: str = _setting(
        "OPERATOR_EVENTS_AWS_SQS_REGION", "", "AWS SQS sink: region."
    )
    operator_events_aws_sqs_endpoint: str = _setting(
        "OPERATOR_EVENTS_AWS_SQS_ENDPOINT", "", "AWS SQS sink: endpoint (e.g. LocalStack)."
    )
    operator_events_gcp_pubsub_project_id: str = _setting(
        "OPERATOR_EVENTS_GCP_PUBSUB_PROJECT_ID",
        "",
        "GCP Pub/Sub sink: project id. Needs the `gcp` extra.",
    )
    operator_events_gcp_pubsub_topic_id: str = _setting(
        "OPERATOR_EVENTS_GCP_PUBSUB_TOPIC_ID", "", "GCP Pub/Sub sink: topic id."
    )
    operator_events_gcp_pubsub_credentials: str = _setting(
        "OPERATOR_EVENTS_GCP_PUBSUB_CREDENTIALS",
        "",
        "GCP Pub/Sub sink: service-account JSON (empty with an emulator).",
        secret=True,
    )
    operator_events_gcp_pubsub_endpoint: str = _setting(
        "OPERATOR_EVENTS_GCP_PUBSUB_ENDPOINT",
        "",
        "GCP Pub/Sub sink: `host:port` of an emulator (plaintext, no credentials); not in Outpost.",
    )
    # Ids
    idgen_type: str = _setting(
        "IDGEN_TYPE",
        "uuidv4",
        "`uuidv4`, `uuidv7` or `nanoid`.",
        choices=("uuidv4", "uuidv7", "nanoid"),
    )
    idgen_event_prefix: str = _setting("IDGEN_EVENT_PREFIX", "", "Prefix of generated event ids.")
    idgen_destination_prefix: str = _setting(
        "IDGEN_DESTINATION_PREFIX", "", "Prefix of generated destination ids."
    )
    idgen_attempt_prefix: str = _setting(
        "IDGEN_ATTEMPT_PREFIX", "", "Prefix of generated attempt ids."
    )
    # Storage
    postgres_url: str = _setting(
        "POSTGRES_URL",
        "",
        "PostgreSQL for everything (tenants, logs, queue), e.g. `postgresql://user:pass@host/db`. Unset: embedded SQLite in the data folder.",
        fmt=_url("postgres", "postgresql", host=False),
        secret=True,
    )
    postgres_pool_size: int = _setting(
        "POSTGRES_POOL_SIZE", 10, "Connections per process.", at_least=1
    )
    postgres_timeout_seconds: float = _setting(
        "POSTGRES_TIMEOUT_SECONDS",
        5.0,
        "Longest wait for the database on any request; past it the API answers 503.",
        above=0,
    )
    postgres_migrate_on_start: bool = _setting(
        "POSTGRES_MIGRATE_ON_START",
        True,
        "Apply pending migrations at start (serialised by an advisory lock). `waypost migrate` does it on its own.",
    )
    rabbitmq_server_url: str = _setting(
        "RABBITMQ_SERVER_URL",
        "",
        "With POSTGRES_URL: hand delivery tasks out through RabbitMQ, e.g. `amqp://guest:guest@127.0.0.1:5672/`. PostgreSQL stays the source of truth. Needs the `rabbitmq` extra.",
        fmt=_url("amqp", "amqps"),
        secret=True,
        needs=("postgres_url", "{name} needs {needed} (the queue's source of truth)"),
    )
    rabbitmq_exchange: str = _setting(
        "RABBITMQ_EXCHANGE",
        "outpost",
        "Exchange for delivery tasks (its dead-letter exchange is `<exchange>.dlx`).",
    )
    rabbitmq_delivery_queue: str = _setting(
        "RABBITMQ_DELIVERY_QUEUE", "outpost-delivery", "Durable quorum queue of delivery tasks."
    )
    rabbitmq_delivery_dlq: str = _setting(
        "RABBITMQ_DELIVERY_DLQ", "", "Dead-letter queue; default `<queue>.dlq`."
    )
    rabbitmq_hold_seconds: int = _setting(
        "RABBITMQ_HOLD_SECONDS",
        30,
        "How long a task handed to RabbitMQ is kept from database claims; past it, a lost message costs only this delay.",
        at_least=0,
    )
    sqlite_synchronous: str = _setting(
        "SQLITE_SYNCHRONOUS",
        "FULL",
        "Embedded mode: `FULL` survives power loss; `NORMAL` survives process crashes only.",
        choices=("FULL", "NORMAL", "EXTRA"),
    )
    sqlite_delivery_process: str = _setting(
        "SQLITE_DELIVERY_PROCESS",
        "auto",
        "Embedded mode: deliver from a second process on the same database file, so publishing and delivering each get a core (`true`, `false`, or `auto`: when this process may run on two or more CPUs). The server starts it, restarts it if it dies, and stops it; it exits if the server dies.",
        choices=("auto", "true", "false"),
    )
    # Log retention (waypost/retention.py)
    log_retention_ttl_days: int = _setting(
        "LOG_RETENTION_TTL_DAYS",
        0,
        "Delete events and attempts older than this many days, in the background (0: keep forever). Outpost's `CLICKHOUSE_LOG_RETENTION_TTL_DAYS` is read too. An event still being delivered, or with a newer attempt, is kept.",
        "CLICKHOUSE_LOG_RETENTION_TTL_DAYS",
        at_least=0,
    )
    log_retention_interval_seconds: int = _setting(
        "LOG_RETENTION_INTERVAL_SECONDS",
        3600,
        "How often the retention sweep runs (with PostgreSQL, one process at a time sweeps).",
        at_least=1,
    )
    log_retention_batch_size: int = _setting(
        "LOG_RETENTION_BATCH_SIZE",
        500,
        "Rows of each kind one retention or erase transaction deletes at most.",
        at_least=1,
    )
    log_erase_on_tenant_delete: bool = _setting(
        "LOG_ERASE_ON_TENANT_DELETE",
        False,
        "`DELETE /tenants/{id}` also erases that tenant's events and attempts (opt-in; `waypost erase-logs --tenant` does it on demand).",
    )
    # Portal (used for portal URLs)
    portal_public_url: str = _setting(
        "PORTAL_PUBLIC_URL",
        "",
        "Where tenants reach the portal, e.g. `https://portal.example.com`: the base of the `redirect_url` that `GET /tenants/{id}/portal` returns. Empty: the scheme and Host header of that admin call (which hands tenants an unreachable link when your backend calls a private API hostname).",
        fmt=_site_url,
    )
    portal_referer_url: str = _setting(
        "PORTAL_REFERER_URL", "", "Where the portal sends a user whose session cannot start."
    )
    portal_refresh_url: str = _setting(
        "PORTAL_REFRESH_URL",
        "",
        "Where the portal sends a user whose token expired (falls back to the referer URL).",
    )
    portal_organization_name: str = _setting(
        "PORTAL_ORGANIZATION_NAME", "", "Portal: your name, shown in its header and title."
    )
    portal_brand_color: str = _setting(
        "PORTAL_BRAND_COLOR",
        "",
        "Portal: CSS colour of buttons and links, e.g. `#6d28d9` (`PORTAL_ACCENT_COLOR` is accepted too).",
        "PORTAL_ACCENT_COLOR",
    )
    portal_logo: str = _setting(
        "PORTAL_LOGO", "", "Portal: URL of the logo shown in its header (light theme)."
    )
    portal_logo_dark: str = _setting(
        "PORTAL_LOGO_DARK",
        "",
        "Portal: URL of the logo for the dark theme (default: `PORTAL_LOGO`).",
    )
    portal_favicon_url: str = _setting("PORTAL_FAVICON_URL", "", "Portal: URL of its favicon.")
    portal_force_theme: str = _setting(
        "PORTAL_FORCE_THEME",
        "",
        "Portal: `light` or `dark` to fix the theme; empty follows the user.",
        choices=("", "light", "dark"),
    )
    portal_disable_outpost_branding: bool = _setting(
        "PORTAL_DISABLE_OUTPOST_BRANDING", False, "Portal: hide the “Powered by Outpost” footer."
    )
    portal_enable_destination_filter: bool = _setting(
        "PORTAL_ENABLE_DESTINATION_FILTER",
        False,
        "Portal: let tenants edit a destination's filter.",
    )
    portal_enable_webhook_custom_headers: bool = _setting(
        "PORTAL_ENABLE_WEBHOOK_CUSTOM_HEADERS",
        False,
        "Portal: let tenants edit a webhook's custom headers.",
    )
    # Prometheus (waypost/prometheus/): prometheus_client is imported only when enabled
    prometheus_enabled: bool = _setting(
        "PROMETHEUS_ENABLED",
        False,
        "Serve Prometheus metrics at `/metrics` (see docs/prometheus.md): on the API port behind the admin key, or on `PROMETHEUS_PORT`.",
    )
    prometheus_port: int = _setting(
        "PROMETHEUS_PORT",
        0,
        "With `PROMETHEUS_ENABLED`: serve `/metrics` on this port of `HOST` instead, without authentication (0: on the API port, admin key required).",
        at_least=0,
        at_most=65535,
    )
    # Recovery jobs (the /recoveries extension)
    recovery_batch_size: int = _setting(
        "RECOVERY_BATCH_SIZE",
        500,
        "Recovery jobs: events scanned, and at most this many deliveries queued, per batch; the next batch waits until fewer than this many of the job's deliveries are still queued.",
        at_least=1,
    )
    recovery_lease_seconds: int = _setting(
        "RECOVERY_LEASE_SECONDS",
        30,
        "Recovery jobs: how long a delivery process holds a job without a step before another may resume it (after a crash).",
        at_least=1,
    )


_FIELDS = {f.name: f for f in fields(Config)}


def _parse(kind: Any, raw: Any, name: str) -> Any:
    if not isinstance(raw, str):
        if kind in ("tuple[str, ...]", "tuple[int, ...]") and isinstance(raw, list):
            raw = ",".join(str(x) for x in raw)
        else:
            raw = "" if raw is None else str(raw).lower() if isinstance(raw, bool) else str(raw)
    parsers: dict[str, Callable[[str], Any]] = {
        "str": lambda s: s,
        "str | None": lambda s: s,
        "int": int,
        "int | None": lambda s: int(s) if s.strip() else None,  # empty turns the feature off
        "float": float,
        "bool": _parse_bool,
        "tuple[str, ...]": lambda s: tuple(t.strip() for t in s.split(",") if t.strip()),
        "tuple[int, ...]": lambda s: tuple(int(t) for t in s.split(",") if t.strip()),
    }
    try:
        return parsers[kind](raw)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"{name}: cannot read {raw!r} ({exc})") from exc


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("", "0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


# Outpost's YAML file nests settings in sections: a key path joined by `_` is the variable's name
# (`destinations.webhook.mode` → DESTINATIONS_WEBHOOK_MODE, `idgen.type` → IDGEN_TYPE), except:
_YAML_NAMES = {
    "postgres": "POSTGRES_URL",
    "retry_max_limit": "MAX_RETRY_LIMIT",
    "portal.org_name": "PORTAL_ORGANIZATION_NAME",
    "mqs.rabbitmq.server_url": "RABBITMQ_SERVER_URL",
    "mqs.rabbitmq.exchange": "RABBITMQ_EXCHANGE",
    "mqs.rabbitmq.delivery_queue": "RABBITMQ_DELIVERY_QUEUE",
    "mqs.rabbitmq.delivery_dlq": "RABBITMQ_DELIVERY_DLQ",
}
# Outpost settings of the parts this server replaces (Redis, ClickHouse, the other queues and
# their log queue, its anonymous telemetry, the publish MQ): read, and ignored with a warning,
# so that an Outpost configuration file works here unchanged. YAML paths, then variable names.
_OUTPOST_UNUSED_PATHS = (
    "redis",
    "clickhouse",
    "mqs",
    "publishmq",
    "telemetry",
    "disable_telemetry",
    "gin_mode",
    "audit_log",
    "publish_max_concurrency",
    "log_max_concurrency",
    "delivery_idempotency_key_ttl",
    "retry_visibility_timeout_seconds",
    "mqs_auto_provision",
    "destinations.metadata_path",
    "portal.proxy_url",
    "alert.callback_url",
)
_OUTPOST_UNUSED_VARS = (
    "REDIS_",
    "CLICKHOUSE_",
    "AWS_SQS_",
    "GCP_PUBSUB_",
    "AZURE_SERVICEBUS_",
    "PUBLISH_RABBITMQ_",
    "PUBLISH_AWS_SQS_",
    "PUBLISH_GCP_PUBSUB_",
    "PUBLISH_AZURE_SERVICEBUS_",
    "TELEMETRY_",
    "GIN_MODE",
    "DISABLE_TELEMETRY",
    "AUDIT_LOG",
    "PUBLISH_MAX_CONCURRENCY",
    "LOG_MAX_CONCURRENCY",
    "DELIVERY_IDEMPOTENCY_KEY_TTL",
    "RETRY_VISIBILITY_TIMEOUT_SECONDS",
    "MQS_AUTO_PROVISION",
    "PORTAL_PROXY_URL",
    "DESTINATIONS_METADATA_PATH",
    "RABBITMQ_LOG_QUEUE",
    "RABBITMQ_LOG_DLQ",
)
# A variable beginning so is meant for this server: if it is not a setting, it is a typo.
_OUR_PREFIXES = (
    "OUTPOST_",
    "DESTINATIONS_",
    "PORTAL_",
    "ALERT_",
    "OPERATOR_EVENTS_",
    "SQLITE_",
    "IDGEN_",
    "LOG_RETENTION_",
    "RABBITMQ_",
    "POSTGRES_",
    "TOPICS_",
    "RETRY_",
    "DELIVERY_",
    "AES_",
)
_VARIABLE = re.compile(r"[A-Z][A-Z0-9_]*")


def choices(attribute: str) -> tuple[str, ...]:
    """The values a setting may take, as its declaration lists them (empty: any)."""
    rule: Rule = _FIELDS[attribute].metadata["rule"]
    return rule.choices


def known_names() -> dict[str, str]:
    """Every variable name a setting is read from (aliases included) → its attribute."""
    return {
        name: f.name for f in fields(Config) for name in (f.metadata["env"], *f.metadata["aliases"])
    }


@dataclass
class Report:
    """What reading the settings found: the values, where each came from, and what is wrong."""

    config: Config
    sources: dict[str, str]  # attribute → "environment" or the file's path; absent: the default
    problems: list[str]
    warnings: list[str]
    file: Path | None = None


def read_config_file(
    path: Path, problems: list[str] | None = None, warnings: list[str] | None = None
) -> dict[str, Any]:
    """A config file's settings by variable name. YAML may nest them as Outpost's file does."""
    problems = [] if problems is None else problems
    warnings = [] if warnings is None else warnings
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read it ({exc.strerror})") from None
    if path.name.endswith(".env"):
        return read_env_file(path)
    try:
        loaded = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"config file {path}: not valid YAML{line}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path}: expected a mapping of settings")
    values: dict[str, Any] = {}
    _flatten(loaded, (), values, problems, warnings, path)
    return values


def _flatten(
    section: Mapping[Any, Any],
    at: tuple[str, ...],
    values: dict[str, Any],
    problems: list[str],
    warnings: list[str],
    path: Path,
) -> None:
    names = known_names()
    for key, value in section.items():
        keys = (*at, str(key).lower())
        dotted = ".".join(keys)
        name = _YAML_NAMES.get(dotted) or "_".join(keys).upper()
        if name in names:
            values[name] = value
        elif isinstance(value, dict):
            _flatten(value, keys, values, problems, warnings, path)
        elif any(dotted == u or dotted.startswith(u + ".") for u in _OUTPOST_UNUSED_PATHS):
            warnings.append(
                f"{path}: `{dotted}` configures a part of Outpost this server does not have; ignored"
            )
        else:
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.8)
            hint = f" (did you mean {close[0].lower()}?)" if close else ""
            problems.append(f"{path}: `{dotted}` is not a setting{hint}")


def _doubtful(name: str, names: Mapping[str, str]) -> str | None:
    """Why a variable that is not a setting looks meant as one, or None."""
    if name in names or name == "CONFIG" or not _VARIABLE.fullmatch(name):
        return None
    if name.startswith(_OUTPOST_UNUSED_VARS):
        return f"{name} configures a part of Outpost this server does not have; ignored"
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.85)
    if close:
        return f"{name} is not a setting (did you mean {close[0]}?); ignored"
    if name.startswith(_OUR_PREFIXES):
        return f"{name} is not a setting; ignored"
    return None


def _find_config_file(env: Mapping[str, str], explicit: str | None) -> Path | None:
    chosen = explicit or env.get("CONFIG")
    if chosen:
        path = Path(chosen)
        if not path.is_file():
            raise ConfigError(f"config file {chosen} does not exist")
        return path
    return next((Path(p) for p in CONFIG_SEARCH_PATH if Path(p).is_file()), None)


def inspect(env: Mapping[str, str] | None = None, config_file: str | None = None) -> Report:
    """Read every source and report all that is wrong or doubtful; never raises."""
    env = os.environ if env is None else env
    problems: list[str] = []
    warnings: list[str] = []
    path: Path | None = None
    from_file: dict[str, Any] = {}
    try:
        path = _find_config_file(env, config_file)
        if path is not None:
            from_file = read_config_file(path, problems, warnings)
    except ConfigError as exc:
        problems.append(str(exc))
    names = known_names()
    for origin, given in (("", env), (f" (in {path})", from_file)):
        warnings += [doubt + origin for name in given if (doubt := _doubtful(name, names))]
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for f in fields(Config):
        found = _given(f, (("environment", env), (str(path), from_file)))
        if found is None:
            continue
        origin, raw, name = found
        try:
            values[f.name] = _read(f, raw, name)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        sources[f.name] = origin
    config = Config(**values)
    problems.extend(find_problems(config))
    return Report(config, sources, problems, warnings, path)


def _given(
    f: Any, sources: tuple[tuple[str, Mapping[str, Any]], ...]
) -> tuple[str, Any, str] | None:
    """(where, raw value, variable name) of a setting in the first source that gives it."""
    return next(
        (
            (origin, source[name], name)
            for origin, source in sources
            for name in (f.metadata["env"], *f.metadata["aliases"])
            if name in source
        ),
        None,
    )


def _read(f: Any, raw: Any, name: str) -> Any:
    """A given value as its setting's type; a choice is matched in any case and kept as declared."""
    value = _parse(f.type, raw, name)
    choices = f.metadata["rule"].choices
    if choices and isinstance(value, str):
        value = next((c for c in choices if c.lower() == value.lower()), value)
    return value


def load(
    env: Mapping[str, str] | None = None,
    config_file: str | None = None,
    warnings: list[str] | None = None,
) -> Config:
    """The settings, or ConfigError naming every problem (one line); `warnings` collects doubts."""
    report = inspect(env, config_file)
    if report.problems:
        raise ConfigError("; ".join(report.problems))
    if warnings is not None:
        warnings.extend(report.warnings)
    return report.config


def find_problems(config: Config) -> list[str]:
    """Each setting against its declaration, then the rules that involve several settings."""
    problems = [problem for f in fields(Config) if (problem := _problem(config, f))]
    problems += _timing_problems(config)
    problems += _deployment_problems(config)
    problems += _topic_problems(config)
    problems += _extras_problems(config)
    return problems


def _timing_problems(config: Config) -> list[str]:
    problems = []
    if not config.retry_schedule and config.retry_interval_seconds < 1:
        problems.append("RETRY_INTERVAL_SECONDS must be at least 1 (or set RETRY_SCHEDULE)")
    if config.delivery_lease_seconds <= config.delivery_timeout_seconds:
        problems.append("DELIVERY_LEASE_SECONDS must exceed DELIVERY_TIMEOUT_SECONDS")
    return problems


def _deployment_problems(config: Config) -> list[str]:
    problems = []
    # Processes on several machines must agree: with PostgreSQL nothing is generated per folder.
    needs_keys = config.postgres_url and config.service != "delivery"
    if needs_keys and not (config.api_key and config.api_jwt_secret):
        problems.append("with POSTGRES_URL, set API_KEY and API_JWT_SECRET")
    # Delivery processes open the credentials they sign with, so every process needs the key.
    if config.postgres_url and not config.aes_encryption_secret:
        problems.append("with POSTGRES_URL, set AES_ENCRYPTION_SECRET (the same in every process)")
    if not config.postgres_url and config.service not in ("", "all"):
        problems.append(
            "SERVICE=api or delivery needs POSTGRES_URL: the embedded store is one process"
        )
    if config.prometheus_enabled and config.prometheus_port == config.port:
        problems.append("PROMETHEUS_PORT must differ from PORT (0 serves /metrics on the API port)")
    return problems


# Settings that turn on what an optional dependency provides: (setting, its value's field, extra).
_EXTRA_SETTINGS = (
    ("RABBITMQ_SERVER_URL", "rabbitmq_server_url", "rabbitmq"),
    ("OTEL_SERVICE_NAME", "otel_service_name", "otel"),
    ("OPERATOR_EVENTS_RABBITMQ_SERVER_URL", "operator_events_rabbitmq_server_url", "rabbitmq"),
    ("OPERATOR_EVENTS_AWS_SQS_QUEUE_URL", "operator_events_aws_sqs_queue_url", "aws"),
    ("OPERATOR_EVENTS_GCP_PUBSUB_PROJECT_ID", "operator_events_gcp_pubsub_project_id", "gcp"),
    ("OPERATOR_EVENTS_GCP_PUBSUB_TOPIC_ID", "operator_events_gcp_pubsub_topic_id", "gcp"),
)


def _extras_problems(config: Config) -> list[str]:
    """A setting that needs an optional dependency that is not installed (waypost/extras.py):
    refused at start rather than failing on first use."""
    problems = []
    for name, attribute, extra in _EXTRA_SETTINGS:
        if getattr(config, attribute) and not extras.installed(extra):
            problem = extras.refusal(name, extra)
            if problem not in problems:
                problems.append(problem)
    return problems


def _topic_problems(config: Config) -> list[str]:
    problems = []
    patterns = [t for t in config.topics if "*" in t]
    if patterns and not config.topics_allow_wildcards:
        problems.append(
            f"TOPICS: {patterns[0]!r} is a pattern, which needs TOPICS_ALLOW_WILDCARDS=true"
        )
    too_long = [t for t in config.topics if len(t.encode()) > config.max_topic_length]
    if too_long:
        problems.append(f"TOPICS: {too_long[0]!r} is longer than MAX_TOPIC_LENGTH")
    return problems


def _problem(config: Config, f: Any) -> str | None:
    """What is wrong with one setting, by its declaration (its rule, and what it needs)."""
    rule: Rule = f.metadata["rule"]
    value = getattr(config, f.name)
    problem = rule.problem(" or ".join((f.metadata["env"], *f.metadata["aliases"])), value)
    if problem or rule.needs is None or value == f.default:
        return problem
    needed, message = rule.needs
    given = getattr(config, needed)
    if (given.strip() if isinstance(given, str) else given) != _FIELDS[needed].default:
        return None
    return message.format(name=f.metadata["env"], needed=_FIELDS[needed].metadata["env"])


def mask(f: Any, value: Any) -> str:
    """A setting's value as shown to an operator: secrets hidden, a URL's password too."""
    shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
    shown = "" if shown is None else str(shown).lower() if isinstance(shown, bool) else str(shown)
    if not f.metadata["rule"].secret or not shown:
        return shown
    if "://" in shown:
        return _mask_url(shown)
    return "********"


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":********@", 1)
    return parts._replace(netloc=netloc).geturl()


def effective_settings(report: Report) -> str:
    """`NAME=value  # where from`, one line per setting, secrets masked."""
    lines = []
    for f in fields(Config):
        value = mask(f, getattr(report.config, f.name))
        origin = report.sources.get(f.name, "default")
        lines.append(f"{f.metadata['env']}={value}  # {origin}")
    return "\n".join(lines) + "\n"


def with_generated_secrets(config: Config) -> tuple[Config, list[str]]:
    """Fill an unset API key / JWT secret / AES secret from files in the data folder, once created.

    Returns the config and the files generated just now (not those read), so the CLI shows a
    new API key once. A folder that cannot be written is a ConfigError naming it.
    """
    filled: dict[str, Any] = {}
    created: list[str] = []
    generated = [("api_key", "api_key"), ("api_jwt_secret", "jwt_secret")]
    if not config.postgres_url:  # a shared database needs the one secret every process was given
        generated.append(("aes_encryption_secret", "aes_encryption_secret"))
    for attr, filename in generated:
        if getattr(config, attr):
            continue
        path = Path(config.data_dir) / filename
        try:
            if not path.exists():
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # its owner's only
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_urlsafe(32))
                created.append(str(path))
            filled[attr] = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot keep {filename} in OUTPOST_DATA_DIR {config.data_dir} "
                f"({exc.strerror}): give this user that folder, or choose another"
            ) from None
    return (replace(config, **filled), created) if filled else (config, created)


def markdown_table() -> str:
    rows = ["| Variable | Default | What it does |", "|---|---|---|"]
    for f in fields(Config):
        default = f.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        shown = (
            "(unset)"
            if shown in (None, "")
            else f"`{str(shown).lower() if isinstance(default, bool) else shown}`"
        )
        rows.append(f"| `{f.metadata['env']}` | {shown} | {_described(f)} |")
    return "\n".join(rows) + "\n"


def _described(f: Any) -> str:
    """A setting's doc, and the setting it needs when the doc does not say so already."""
    doc: str = f.metadata["doc"]
    needs = f.metadata["rule"].needs
    needed = _FIELDS[needs[0]].metadata["env"] if needs else ""
    return f"{doc} Needs `{needed}`." if needed and needed not in doc else doc
