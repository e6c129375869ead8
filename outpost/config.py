"""Settings, under Outpost's environment-variable names.

Sources, lowest precedence first: the defaults below; one config file (`CONFIG`, or the first of
`CONFIG_SEARCH_PATH` that exists: `.env` files hold `NAME=value` lines, YAML files hold the same
names in snake_case); the process environment. Every setting is declared once, in `SETTINGS`,
with its default and what it does: `outpost config --markdown` prints that table, and
docs/configuration.md is that output.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from outpost.errors import ConfigError

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


def _setting(env: str, default: Any, doc: str, *aliases: str) -> Any:
    return field(default=default, metadata={"env": env, "doc": doc, "aliases": aliases})


@dataclass(frozen=True)
class Config:
    # Service
    service: str = _setting(
        "SERVICE", "all", "Which services this process runs: `all` (or empty), `api`, `delivery`."
    )
    host: str = _setting(
        "HOST", "127.0.0.1", "Address the API listens on. Use `0.0.0.0` to serve other machines."
    )
    port: int = _setting(
        "API_PORT", 3333, "Port the API listens on (`PORT` is accepted too).", "PORT"
    )
    data_dir: str = _setting(
        "OUTPOST_DATA_DIR",
        "./outpost-data",
        "Embedded mode: folder holding the SQLite database and the generated keys.",
    )
    log_level: str = _setting("LOG_LEVEL", "info", "`debug`, `info`, `warn` or `error`.")
    log_format: str = _setting(
        "LOG_FORMAT",
        "text",
        "`text` (readable lines) or `json` (one object per line: `time`, `level`, `logger`, `message`, and the context: `request_id` while an API request is handled, `event_id`, `destination_id`, `attempt` during a delivery). Every API response carries its request id in `X-Request-Id` (the caller's, when well formed).",
    )
    # OpenTelemetry
    otel_service_name: str = _setting(
        "OTEL_SERVICE_NAME",
        "",
        "Turns OpenTelemetry on: traces (publish → each delivery attempt) and the `outpost` meter's metrics, under this service name. Endpoints, headers and TLS come from the standard `OTEL_EXPORTER_OTLP_*` variables (process environment); per-signal endpoints without the generic one export only those signals. Unset: the SDK is not even imported.",
    )
    otel_exporter: str = _setting(
        "OTEL_EXPORTER",
        "otlp",
        "`otlp`, `console` (or `stdout`) or `none`; `OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER` override it per signal.",
    )
    otel_protocol: str = _setting(
        "OTEL_PROTOCOL",
        "grpc",
        "OTLP protocol: `grpc`, `http` or `http/protobuf`; `OTEL_EXPORTER_OTLP_PROTOCOL` (or its per-signal variants) wins when set.",
    )
    # Security
    api_key: str = _setting(
        "API_KEY",
        "",
        "Admin bearer token. Unset: one is generated, kept in the data folder and printed at start (never an open server).",
    )
    api_jwt_secret: str = _setting(
        "API_JWT_SECRET",
        "",
        "HS256 secret for tenant JWTs. Unset: generated and kept in the data folder.",
    )
    aes_encryption_secret: str = _setting(
        "AES_ENCRYPTION_SECRET",
        "",
        "Secret from which the AES-256-GCM key sealing destination credentials at rest is derived. Unset: generated and kept in the data folder; required with POSTGRES_URL.",
    )
    aes_encryption_secret_previous: str = _setting(
        "AES_ENCRYPTION_SECRET_PREVIOUS",
        "",
        "While rotating: the former AES_ENCRYPTION_SECRET. Credentials sealed under it still read, and are resealed under the new one when their destination is next written.",
    )
    deployment_id: str = _setting(
        "DEPLOYMENT_ID", "", "Namespace put into tenant JWTs (`deployment_id` claim)."
    )
    max_request_body_bytes: int = _setting(
        "API_MAX_REQUEST_BODY_BYTES",
        1_048_576,
        "Largest request body the API accepts; larger gets 413.",
    )
    max_request_header_bytes: int = _setting(
        "API_MAX_REQUEST_HEADER_BYTES",
        32_768,
        "Largest request line plus headers the API accepts; larger gets 431 and the connection is closed.",
    )
    api_header_timeout_seconds: float = _setting(
        "API_HEADER_TIMEOUT_SECONDS",
        10.0,
        "A connection's request line and headers must arrive within this many seconds of it opening (on a kept-alive connection: of the request's first byte); else it is closed, after a 408 if part of them came.",
    )
    api_keepalive_timeout_seconds: int = _setting(
        "API_KEEPALIVE_TIMEOUT_SECONDS",
        30,
        "A kept-alive connection that sends no new request for this many seconds is closed.",
    )
    api_max_connections: int = _setting(
        "API_MAX_CONNECTIONS",
        1000,
        "Client connections the API keeps open at once (per process); one more is closed as soon as it is accepted.",
    )
    max_metadata_keys: int = _setting(
        "MAX_METADATA_KEYS",
        64,
        "Keys allowed in one `metadata` or `delivery_metadata` map (events, tenants, destinations); more gets 422.",
    )
    max_metadata_key_bytes: int = _setting(
        "MAX_METADATA_KEY_BYTES", 256, "Longest metadata key in UTF-8 bytes; longer gets 422."
    )
    max_metadata_value_bytes: int = _setting(
        "MAX_METADATA_VALUE_BYTES", 4096, "Longest metadata value in UTF-8 bytes; longer gets 422."
    )
    max_destination_topics: int = _setting(
        "MAX_DESTINATION_TOPICS",
        128,
        "Entries allowed in one destination's `topics`; more gets 422.",
    )
    max_topic_length: int = _setting(
        "MAX_TOPIC_LENGTH",
        256,
        "Longest topic in UTF-8 bytes, in a destination's `topics` or a published event; longer gets 422.",
    )
    max_filter_bytes: int = _setting(
        "MAX_FILTER_BYTES",
        65_536,
        "Largest destination `filter`, in bytes of compact JSON; larger gets 422.",
    )
    max_filter_nodes: int = _setting(
        "MAX_FILTER_NODES",
        2_000,
        "Most values (objects, arrays, and the scalars in them) one destination `filter` may hold; more gets 422.",
    )
    max_json_depth: int = _setting(
        "MAX_JSON_DEPTH",
        128,
        "Deepest nesting of objects and arrays a JSON request body may have (event `data` included); deeper gets 422.",
    )
    api_rate_limit: int = _setting(
        "API_RATE_LIMIT",
        0,
        "Requests per window allowed to each caller (the admin key; each tenant's JWTs); over it gets 429 with `Retry-After`. 0: no limit.",
    )
    api_rate_limit_window_seconds: int = _setting(
        "API_RATE_LIMIT_WINDOW_SECONDS",
        60,
        "Length of the API_RATE_LIMIT window (fixed windows; shared by all API processes with POSTGRES_URL).",
    )
    # Topics and tenants
    topics: tuple[str, ...] = _setting(
        "TOPICS", (), "Comma-separated topics. Unset: any topic is accepted."
    )
    topics_allow_wildcards: bool = _setting(
        "TOPICS_ALLOW_WILDCARDS",
        False,
        "Allow `*` patterns such as `user.*` in destination topics.",
    )
    max_destinations_per_tenant: int = _setting(
        "MAX_DESTINATIONS_PER_TENANT", 20, "Destinations a tenant may have."
    )
    publish_idempotency_key_ttl: int = _setting(
        "PUBLISH_IDEMPOTENCY_KEY_TTL",
        3600,
        "Seconds during which re-publishing an event id is answered `duplicate: true`.",
    )
    # Delivery
    delivery_max_concurrency: int = _setting(
        "DELIVERY_MAX_CONCURRENCY",
        64,
        "Deliveries in flight per delivery process (Outpost's default is 1).",
    )
    delivery_timeout_seconds: float = _setting(
        "DELIVERY_TIMEOUT_SECONDS", 5.0, "Timeout of one delivery attempt."
    )
    max_retry_limit: int = _setting(
        "MAX_RETRY_LIMIT", 10, "Automatic retries after the first attempt."
    )
    retry_interval_seconds: int = _setting(
        "RETRY_INTERVAL_SECONDS", 30, "Exponential backoff base: retry n waits interval × 2^(n-1)."
    )
    retry_schedule: tuple[int, ...] = _setting(
        "RETRY_SCHEDULE",
        (),
        "Comma-separated delays in seconds (e.g. `5,60,600`); overrides the two above, its length is the retry limit.",
    )
    retry_poll_backoff_ms: int = _setting(
        "RETRY_POLL_BACKOFF_MS",
        0,
        "Longest idle sleep of the scheduler in ms (0: automatic, at most 1 s).",
    )
    destination_max_concurrency: int = _setting(
        "DESTINATION_MAX_CONCURRENCY",
        0,
        "Deliveries in flight to one destination per delivery process (0: DELIVERY_MAX_CONCURRENCY / 8, at least 1); a destination's `outpost.max_concurrency` metadata overrides it.",
    )
    tenant_max_concurrency: int = _setting(
        "TENANT_MAX_CONCURRENCY",
        0,
        "Deliveries in flight to one tenant's destinations per delivery process (0: DELIVERY_MAX_CONCURRENCY / 2, at least 1).",
    )
    destination_rate_limit_per_second: float = _setting(
        "DESTINATION_RATE_LIMIT_PER_SECOND",
        0.0,
        "Deliveries started per second to one destination per delivery process (0: no limit); a destination's `outpost.rate_limit_per_second` metadata overrides it.",
    )
    delivery_circuit_failure_threshold: int = _setting(
        "DELIVERY_CIRCUIT_FAILURE_THRESHOLD",
        5,
        "Consecutive timeouts or connection failures after which a destination gets one delivery in flight at a time until one is answered (0: never).",
    )
    retry_after_max_seconds: int = _setting(
        "RETRY_AFTER_MAX_SECONDS",
        3600,
        "Longest `Retry-After` (of a 429 or 503) honoured for the next automatic retry, which then replaces the backoff (0: ignore Retry-After).",
    )
    delivery_lease_seconds: int = _setting(
        "DELIVERY_LEASE_SECONDS",
        60,
        "How long a claimed delivery stays invisible to other workers; must outlast the delivery timeout.",
    )
    log_batch_threshold_seconds: float = _setting(
        "LOG_BATCH_THRESHOLD_SECONDS",
        10.0,
        "Accepted for compatibility. Attempts are written by group commit as they finish, with no flush delay.",
    )
    log_batch_size: int = _setting(
        "LOG_BATCH_SIZE", 1000, "Largest number of writes committed in one transaction."
    )
    # Webhooks
    destinations_webhook_mode: str = _setting(
        "DESTINATIONS_WEBHOOK_MODE",
        "default",
        "`default` (Outpost headers, `v0=` signature) or `standard` (Standard Webhooks).",
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
    )
    destinations_webhook_signature_encoding: str = _setting(
        "DESTINATIONS_WEBHOOK_SIGNATURE_ENCODING", "hex", "`hex` or `base64` (default mode)."
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
    )
    destinations_webhook_signature_secret_encoding: str = _setting(
        "DESTINATIONS_WEBHOOK_SIGNATURE_SECRET_ENCODING",
        "",
        "How the HMAC key comes from a destination's secret: `raw` (its UTF-8 bytes, the default) or `hex` / `base64` (decoded, after the prefix below). The signing-secret template must generate decodable secrets (checked at start); a stored secret that does not decode fails its attempts with `ERR`. Standard mode accepts only `base64`.",
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
    )
    destinations_webhook_compat_signature_algorithm: str = _setting(
        "DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_ALGORITHM",
        "hmac-sha256",
        "Compat signature: `hmac-sha256` or `hmac-sha1`.",
    )
    destinations_webhook_compat_signature_encoding: str = _setting(
        "DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_ENCODING",
        "hex",
        "Compat signature: `hex` or `base64`.",
    )
    destinations_webhook_compat_signature_content_template: str = _setting(
        "DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_CONTENT_TEMPLATE",
        "{{.Body}}",
        "Compat signature: what is signed (the primary content template's variables).",
    )
    destinations_webhook_compat_signature_header_template: str = _setting(
        "DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_HEADER_TEMPLATE",
        'v0={{.Signatures | join ","}}',
        "Compat signature: the header's value (the primary header template's variables).",
    )
    destinations_webhook_compat_signature_secret_encoding: str = _setting(
        "DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_SECRET_ENCODING",
        "raw",
        "Compat signature: `raw`, `hex` or `base64`; a destination whose secret does not decode gets no compat signature (nor the compat headers).",
    )
    destinations_webhook_compat_signature_secret_prefix: str = _setting(
        "DESTINATIONS_WEBHOOK_COMPAT_SIGNATURE_SECRET_PREFIX",
        "",
        "Compat signature: prefix stripped from the secret before it is decoded.",
    )
    destinations_webhook_compat_headers: str = _setting(
        "DESTINATIONS_WEBHOOK_COMPAT_HEADERS",
        "",
        "Extra headers sent with the compat signature: `name=template` pairs separated by commas (`\\,` for a literal comma); templates may use `{{.EventID}}`, `{{.Topic}}`, `{{.Timestamp}}`, `{{.Timestamp.Unix}}`.",
    )
    destinations_webhook_max_response_body_bytes: int = _setting(
        "DESTINATIONS_WEBHOOK_MAX_RESPONSE_BODY_BYTES",
        131072,
        "Largest response body stored on an attempt (0: no limit).",
    )
    destinations_webhook_proxy_url: str = _setting(
        "DESTINATIONS_WEBHOOK_PROXY_URL", "", "Forward proxy for webhook deliveries."
    )
    destinations_allowed_networks: tuple[str, ...] = _setting(
        "DESTINATIONS_ALLOWED_NETWORKS",
        (),
        "Comma-separated CIDRs destinations may reach despite the SSRF guard, e.g. `127.0.0.0/8,::1/128`. The guard refuses loopback, private, link-local (cloud metadata), CGNAT, multicast, reserved and IPv6 local addresses, also inside IPv4-mapped, NAT64 and 6to4 forms. It checks the address each connection is opened to (after DNS) for webhook, hookdeck, cloudflare_queues, the AWS types, rabbitmq, kafka (advertised brokers too) and gcp_pubsub emulator endpoints; refuses IP literals in those ranges at create/update (422); and stops following redirects. Through DESTINATIONS_WEBHOOK_PROXY_URL the proxy resolves names, so only IP-literal webhook URLs are checked. The tenant's attempt error says an address is not allowed; the log names it.",
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
    )
    destinations_hookdeck_api_url: str = _setting(
        "DESTINATIONS_HOOKDECK_API_URL",
        "https://api.hookdeck.com",
        "Hookdeck API that verifies hookdeck source tokens on destination create/update.",
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
    )
    http_user_agent: str = _setting(
        "HTTP_USER_AGENT", "", "Outbound User-Agent; default `Outpost/<version>`."
    )
    # Alerts and operator events (outpost/operator)
    alert_consecutive_failure_count: int | None = _setting(
        "ALERT_CONSECUTIVE_FAILURE_COUNT",
        100,
        "Consecutive failed attempts of a destination that make 100 %; alerts at 50, 70, 90 and 100 % (empty: no counting).",
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
    )
    operator_events_topics: tuple[str, ...] = _setting(
        "OPERATOR_EVENTS_TOPICS",
        (),
        "Operator event topics to send (comma-separated, or `*`); unset: none. Needs exactly one OPERATOR_EVENTS_* sink.",
    )
    operator_events_http_url: str = _setting(
        "OPERATOR_EVENTS_HTTP_URL", "", "HTTP sink: operator events are POSTed here."
    )
    operator_events_http_signing_secret: str = _setting(
        "OPERATOR_EVENTS_HTTP_SIGNING_SECRET",
        "",
        "HTTP sink: sign each body as `X-Outpost-Signature: v0=<hex HMAC-SHA256>`.",
    )
    operator_events_rabbitmq_server_url: str = _setting(
        "OPERATOR_EVENTS_RABBITMQ_SERVER_URL",
        "",
        "RabbitMQ sink: `amqp[s]://user:pass@host:port`; routing key = operator topic.",
    )
    operator_events_rabbitmq_exchange: str = _setting(
        "OPERATOR_EVENTS_RABBITMQ_EXCHANGE", "", "RabbitMQ sink: exchange (empty: the default)."
    )
    operator_events_aws_sqs_queue_url: str = _setting(
        "OPERATOR_EVENTS_AWS_SQS_QUEUE_URL", "", "AWS SQS sink: queue URL."
    )
    operator_events_aws_sqs_access_key_id: str = _setting(
        "OPERATOR_EVENTS_AWS_SQS_ACCESS_KEY_ID", "", "AWS SQS sink: access key id."
    )
    operator_events_aws_sqs_secret_access_key: str = _setting(
        "OPERATOR_EVENTS_AWS_SQS_SECRET_ACCESS_KEY", "", "AWS SQS sink: secret access key."
    )
    operator_events_aws_sqs_region: str = _setting(
        "OPERATOR_EVENTS_AWS_SQS_REGION", "", "AWS SQS sink: region."
    )
    operator_events_aws_sqs_endpoint: str = _setting(
        "OPERATOR_EVENTS_AWS_SQS_ENDPOINT", "", "AWS SQS sink: endpoint (e.g. LocalStack)."
    )
    operator_events_gcp_pubsub_project_id: str = _setting(
        "OPERATOR_EVENTS_GCP_PUBSUB_PROJECT_ID", "", "GCP Pub/Sub sink: project id."
    )
    operator_events_gcp_pubsub_topic_id: str = _setting(
        "OPERATOR_EVENTS_GCP_PUBSUB_TOPIC_ID", "", "GCP Pub/Sub sink: topic id."
    )
    operator_events_gcp_pubsub_credentials: str = _setting(
        "OPERATOR_EVENTS_GCP_PUBSUB_CREDENTIALS",
        "",
        "GCP Pub/Sub sink: service-account JSON (empty with an emulator).",
    )
    operator_events_gcp_pubsub_endpoint: str = _setting(
        "OPERATOR_EVENTS_GCP_PUBSUB_ENDPOINT",
        "",
        "GCP Pub/Sub sink: `host:port` of an emulator (plaintext, no credentials); not in Outpost.",
    )
    # Ids
    idgen_type: str = _setting("IDGEN_TYPE", "uuidv4", "`uuidv4`, `uuidv7` or `nanoid`.")
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
    )
    postgres_pool_size: int = _setting("POSTGRES_POOL_SIZE", 10, "Connections per process.")
    postgres_timeout_seconds: float = _setting(
        "POSTGRES_TIMEOUT_SECONDS",
        5.0,
        "Longest wait for the database on any request; past it the API answers 503.",
    )
    postgres_migrate_on_start: bool = _setting(
        "POSTGRES_MIGRATE_ON_START",
        True,
        "Apply pending migrations at start (serialised by an advisory lock). `outpost migrate` does it on its own.",
    )
    rabbitmq_server_url: str = _setting(
        "RABBITMQ_SERVER_URL",
        "",
        "With POSTGRES_URL: hand delivery tasks out through RabbitMQ, e.g. `amqp://guest:guest@127.0.0.1:5672/`. PostgreSQL stays the source of truth.",
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
    )
    sqlite_synchronous: str = _setting(
        "SQLITE_SYNCHRONOUS",
        "FULL",
        "Embedded mode: `FULL` survives power loss; `NORMAL` survives process crashes only.",
    )
    sqlite_delivery_process: str = _setting(
        "SQLITE_DELIVERY_PROCESS",
        "auto",
        "Embedded mode: deliver from a second process on the same database file, so publishing and delivering each get a core (`true`, `false`, or `auto`: when this process may run on two or more CPUs). The server starts it, restarts it if it dies, and stops it; it exits if the server dies.",
    )
    # Log retention (outpost/retention.py)
    log_retention_ttl_days: int = _setting(
        "LOG_RETENTION_TTL_DAYS",
        0,
        "Delete events and attempts older than this many days, in the background (0: keep forever). Outpost's `CLICKHOUSE_LOG_RETENTION_TTL_DAYS` is read too. An event still being delivered, or with a newer attempt, is kept.",
        "CLICKHOUSE_LOG_RETENTION_TTL_DAYS",
    )
    log_retention_interval_seconds: int = _setting(
        "LOG_RETENTION_INTERVAL_SECONDS",
        3600,
        "How often the retention sweep runs (with PostgreSQL, one process at a time sweeps).",
    )
    log_retention_batch_size: int = _setting(
        "LOG_RETENTION_BATCH_SIZE",
        500,
        "Rows of each kind one retention or erase transaction deletes at most.",
    )
    log_erase_on_tenant_delete: bool = _setting(
        "LOG_ERASE_ON_TENANT_DELETE",
        False,
        "`DELETE /tenants/{id}` also erases that tenant's events and attempts (opt-in; `outpost erase-logs --tenant` does it on demand).",
    )
    # Portal (used for portal URLs)
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
    # Recovery jobs (the /recoveries extension)
    recovery_batch_size: int = _setting(
        "RECOVERY_BATCH_SIZE",
        500,
        "Recovery jobs: events scanned, and at most this many deliveries queued, per batch; the next batch waits until fewer than this many of the job's deliveries are still queued.",
    )
    recovery_lease_seconds: int = _setting(
        "RECOVERY_LEASE_SECONDS",
        30,
        "Recovery jobs: how long a delivery process holds a job without a step before another may resume it (after a crash).",
    )


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


def read_config_file(path: Path) -> dict[str, Any]:
    if path.name.endswith(".env"):
        return read_env_file(path)
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of settings")
    return {str(k).upper(): v for k, v in loaded.items()}


def _find_config_file(env: Mapping[str, str], explicit: str | None) -> Path | None:
    chosen = explicit or env.get("CONFIG")
    if chosen:
        path = Path(chosen)
        if not path.is_file():
            raise ConfigError(f"config file {chosen} does not exist")
        return path
    return next((Path(p) for p in CONFIG_SEARCH_PATH if Path(p).is_file()), None)


def load(env: Mapping[str, str] | None = None, config_file: str | None = None) -> Config:
    env = os.environ if env is None else env
    path = _find_config_file(env, config_file)
    sources: dict[str, Any] = read_config_file(path) if path else {}
    sources.update(env)
    values: dict[str, Any] = {}
    for f in fields(Config):
        for name in (f.metadata["env"], *f.metadata["aliases"]):
            if name in sources:
                values[f.name] = _parse(f.type, sources[name], name)
                break
    config = Config(**values)
    check(config)
    return config


def check(config: Config) -> None:
    problems = []
    if config.service not in ("", "all", "api", "delivery"):
        problems.append(f"SERVICE must be all, api or delivery, not {config.service!r}")
    if any(s < 1 for s in config.retry_schedule):
        problems.append("RETRY_SCHEDULE entries must be at least 1")
    if not config.retry_schedule and config.retry_interval_seconds < 1:
        problems.append("RETRY_INTERVAL_SECONDS must be at least 1")
    failure_count = config.alert_consecutive_failure_count
    if failure_count is not None and failure_count < 1:
        problems.append("ALERT_CONSECUTIVE_FAILURE_COUNT must be at least 1 (or empty)")
    if (config.alert_exhausted_retries_window_seconds or 0) < 0:
        problems.append("ALERT_EXHAUSTED_RETRIES_WINDOW_SECONDS must not be negative")
    if config.retry_poll_backoff_ms < 0:
        problems.append("RETRY_POLL_BACKOFF_MS must not be negative")
    if config.max_retry_limit < 0:
        problems.append("MAX_RETRY_LIMIT must not be negative")
    if config.delivery_max_concurrency < 1:
        problems.append("DELIVERY_MAX_CONCURRENCY must be at least 1")
    if min(config.destination_max_concurrency, config.tenant_max_concurrency) < 0:
        problems.append(
            "DESTINATION_MAX_CONCURRENCY and TENANT_MAX_CONCURRENCY must not be negative"
        )
    if not 0 <= config.destination_rate_limit_per_second < float("inf"):
        problems.append("DESTINATION_RATE_LIMIT_PER_SECOND must be a number, at least 0")
    if config.delivery_circuit_failure_threshold < 0 or config.retry_after_max_seconds < 0:
        problems.append(
            "DELIVERY_CIRCUIT_FAILURE_THRESHOLD and RETRY_AFTER_MAX_SECONDS must not be negative"
        )
    if config.delivery_timeout_seconds <= 0:
        problems.append("DELIVERY_TIMEOUT_SECONDS must be positive")
    if config.delivery_lease_seconds <= config.delivery_timeout_seconds:
        problems.append("DELIVERY_LEASE_SECONDS must exceed DELIVERY_TIMEOUT_SECONDS")
    if config.log_retention_ttl_days < 0:
        problems.append("LOG_RETENTION_TTL_DAYS must not be negative (0 keeps logs forever)")
    if config.log_retention_interval_seconds < 1 or config.log_retention_batch_size < 1:
        problems.append("LOG_RETENTION_INTERVAL_SECONDS and LOG_RETENTION_BATCH_SIZE must be >= 1")
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
    if config.rabbitmq_server_url and not config.postgres_url:
        problems.append("RABBITMQ_SERVER_URL needs POSTGRES_URL (the queue's source of truth)")
    if config.idgen_type not in ("uuidv4", "uuidv7", "nanoid"):
        problems.append("IDGEN_TYPE must be uuidv4, uuidv7 or nanoid")
    if config.portal_force_theme not in ("", "light", "dark"):
        problems.append("PORTAL_FORCE_THEME must be light, dark or empty")
    if config.sqlite_delivery_process not in ("auto", "true", "false"):
        problems.append("SQLITE_DELIVERY_PROCESS must be auto, true or false")
    if config.sqlite_synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
        problems.append("SQLITE_SYNCHRONOUS must be FULL, NORMAL or EXTRA")
    limits = (
        config.max_destination_topics,
        config.max_topic_length,
        config.max_filter_bytes,
        config.max_filter_nodes,
    )
    if min(limits) < 1:
        problems.append(
            "MAX_DESTINATION_TOPICS, MAX_TOPIC_LENGTH, MAX_FILTER_BYTES and MAX_FILTER_NODES "
            "must be at least 1"
        )
    # Below the decoders' own recursion guard (about 1,000 levels), which would answer a 500.
    if not 34 <= config.max_json_depth <= 500:
        problems.append("MAX_JSON_DEPTH must be between 34 (a filter's 32 levels) and 500")
    if config.max_request_header_bytes < 1024:
        problems.append("API_MAX_REQUEST_HEADER_BYTES must be at least 1024")
    if config.api_header_timeout_seconds <= 0 or config.api_keepalive_timeout_seconds <= 0:
        problems.append(
            "API_HEADER_TIMEOUT_SECONDS and API_KEEPALIVE_TIMEOUT_SECONDS must be positive"
        )
    if config.api_max_connections < 1:
        problems.append("API_MAX_CONNECTIONS must be at least 1")
    if config.api_rate_limit < 0 or config.api_rate_limit_window_seconds < 1:
        problems.append("API_RATE_LIMIT must not be negative, its window at least 1 second")
    if config.log_format not in ("text", "json"):
        problems.append("LOG_FORMAT must be text or json")
    if config.otel_exporter.lower() not in ("otlp", "console", "stdout", "none"):
        problems.append("OTEL_EXPORTER must be otlp, console, stdout or none")
    if config.otel_protocol.lower() not in ("grpc", "http", "http/protobuf"):
        problems.append("OTEL_PROTOCOL must be grpc, http or http/protobuf")
    if problems:
        raise ConfigError("; ".join(problems))


def with_generated_secrets(config: Config) -> tuple[Config, list[str]]:
    """Fill an unset API key / JWT secret / AES secret from files in the data folder, once created.

    Returns the config and the names that were generated or read, so the CLI can say so.
    """
    filled: dict[str, Any] = {}
    notes: list[str] = []
    generated = [("api_key", "api_key"), ("api_jwt_secret", "jwt_secret")]
    if not config.postgres_url:  # a shared database needs the one secret every process was given
        generated.append(("aes_encryption_secret", "aes_encryption_secret"))
    for attr, filename in generated:
        if getattr(config, attr):
            continue
        path = Path(config.data_dir) / filename
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # its owner's only
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32))
        filled[attr] = path.read_text().strip()
        notes.append(str(path))
    return (replace(config, **filled), notes) if filled else (config, notes)


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
        rows.append(f"| `{f.metadata['env']}` | {shown} | {f.metadata['doc']} |")
    return "\n".join(rows) + "\n"
