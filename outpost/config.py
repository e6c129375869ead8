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
        "Comma-separated CIDRs webhooks may reach despite the SSRF guard, e.g. `127.0.0.0/8,::1/128`. The guard refuses loopback, private, link-local (cloud metadata), CGNAT, multicast, reserved and IPv6 local addresses, also inside IPv4-mapped, NAT64 and 6to4 forms; it checks the address each connection is opened to (after DNS), refuses IP-literal URLs in those ranges at create/update (422), and stops following redirects. Through DESTINATIONS_WEBHOOK_PROXY_URL the proxy resolves names, so only IP-literal URLs are checked.",
    )
    destinations_allow_private_networks: bool = _setting(
        "DESTINATIONS_ALLOW_PRIVATE_NETWORKS",
        False,
        "Turn the SSRF guard off: webhooks may reach any address and redirects are followed. Only for deployments whose destinations are all trusted.",
    )
    destinations_include_millisecond_timestamp: bool = _setting(
        "DESTINATIONS_INCLUDE_MILLISECOND_TIMESTAMP", False, "Add a `timestamp-ms` metadata header."
    )
    http_user_agent: str = _setting(
        "HTTP_USER_AGENT", "", "Outbound User-Agent; default `Outpost/<version>`."
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
    # Portal (used for portal URLs)
    portal_referer_url: str = _setting(
        "PORTAL_REFERER_URL", "", "Where the portal sends a user whose session cannot start."
    )
    portal_refresh_url: str = _setting(
        "PORTAL_REFRESH_URL",
        "",
        "Where the portal sends a user whose token expired (falls back to the referer URL).",
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
    if config.retry_poll_backoff_ms < 0:
        problems.append("RETRY_POLL_BACKOFF_MS must not be negative")
    if config.max_retry_limit < 0:
        problems.append("MAX_RETRY_LIMIT must not be negative")
    if config.delivery_max_concurrency < 1:
        problems.append("DELIVERY_MAX_CONCURRENCY must be at least 1")
    if config.delivery_timeout_seconds <= 0:
        problems.append("DELIVERY_TIMEOUT_SECONDS must be positive")
    if config.delivery_lease_seconds <= config.delivery_timeout_seconds:
        problems.append("DELIVERY_LEASE_SECONDS must exceed DELIVERY_TIMEOUT_SECONDS")
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
    if config.sqlite_synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
        problems.append("SQLITE_SYNCHRONOUS must be FULL, NORMAL or EXTRA")
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
            path.parent.mkdir(parents=True, exist_ok=True)
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
