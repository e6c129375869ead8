"""Config → operator events and alerts: the judge, the relay and its sink, subscription tracking.

Everything is off unless configured: with no wanted topic (or no sink for them) and no
auto-disable, `build` returns nothing to install, and recording attempts costs nothing more.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from waypost.config import Config
from waypost.core.models import Destination, StrMap
from waypost.core.recovery import OPERATOR_TOPICS as RECOVERY_TOPICS
from waypost.core.timefmt import now_ms
from waypost.destinations.registry import Registry
from waypost.errors import ConfigError
from waypost.operator.alerts import SUBSCRIPTION_UPDATED, TOPICS, AlertJudge, AlertSettings
from waypost.operator.relay import Relay
from waypost.operator.sinks import HttpSink, ProviderSink, Sink
from waypost.operator.subscriptions import SubscriptionTracking
from waypost.storage.protocols import Backend, TenantStore
from waypost.transport.http import HttpClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Operator:
    judge: AlertJudge | None  # installed into the backend's finish()
    relay: Relay | None  # runs alongside the API and the worker
    tenants: TenantStore  # what the API writes destinations through


def build(
    config: Config,
    backend: Backend,
    registry: Registry,
    user_agent: str,
    sink_registry: Registry | None = None,
) -> Operator:
    """`sink_registry`: where a provider sink's provider comes from, when not `registry` (the
    operator's own sink is not a tenant's destination: bootstrap gives it providers without the
    SSRF guard); the sink then owns that provider and closes it."""
    sink = _sink(config, sink_registry or registry, user_agent, owned=sink_registry is not None)
    wanted = frozenset(config.operator_events_topics)
    unknown = wanted - {*TOPICS, *RECOVERY_TOPICS, "*"}
    if unknown:
        raise ConfigError(f"OPERATOR_EVENTS_TOPICS: unknown topics {', '.join(sorted(unknown))}")
    if wanted and sink is None:
        log.warning("OPERATOR_EVENTS_TOPICS is set but no OPERATOR_EVENTS_* sink: not sent")
        wanted = frozenset()
    settings = AlertSettings(
        wanted=wanted,
        failure_threshold=config.alert_consecutive_failure_count,
        auto_disable=config.alert_auto_disable_destination,
        exhausted_window_ms=_ms(config.alert_exhausted_retries_window_seconds),
        retry_limit=len(config.retry_schedule) or config.max_retry_limit,
        deployment_id=config.deployment_id,
    )
    judge = AlertJudge(settings)
    tenants: TenantStore = backend
    if settings.wants(SUBSCRIPTION_UPDATED):
        tenants = SubscriptionTracking(backend, backend, config.deployment_id)
    return Operator(
        judge=judge if judge.active else None,
        relay=Relay(backend, sink) if wanted and sink is not None else None,
        tenants=tenants,
    )


def _ms(seconds: int | None) -> int | None:
    return None if seconds is None else seconds * 1000


def _sink(config: Config, registry: Registry, user_agent: str, *, owned: bool) -> Sink | None:
    """The one configured sink, if any; a second one is a configuration error."""
    found: list[Sink] = []
    if config.operator_events_http_url:
        # The operator chose this URL: no SSRF guard (it may well be on a private network).
        client = HttpClient(max_connections=8, user_agent=user_agent, follow_redirects=False)
        found.append(
            HttpSink(
                config.operator_events_http_url, config.operator_events_http_signing_secret, client
            )
        )
    for type_, settings in _provider_sinks(config):
        provider = registry.find(type_)
        if provider is None:
            raise ConfigError(f"OPERATOR_EVENTS_* names a {type_} sink; this server has no {type_}")
        destination = _synthetic(type_, *settings)
        problems = provider.validate(destination)
        if problems:
            raise ConfigError(f"operator events {type_} sink: {'; '.join(problems)}")
        found.append(ProviderSink(provider, destination, owned=owned))
    if len(found) > 1:
        raise ConfigError(
            "configure one operator events sink, not " + " and ".join(sink.name for sink in found)
        )
    return found[0] if found else None


def _provider_sinks(config: Config) -> list[tuple[str, tuple[StrMap, StrMap]]]:
    """(destination type, (config, credentials)) of each provider sink configured."""
    sinks: list[tuple[str, tuple[StrMap, StrMap]]] = []
    if config.operator_events_rabbitmq_server_url:
        sinks.append(("rabbitmq", _rabbitmq(config)))
    if config.operator_events_aws_sqs_queue_url:
        settings = {
            "queue_url": config.operator_events_aws_sqs_queue_url,
            "endpoint": config.operator_events_aws_sqs_endpoint,
            "region": config.operator_events_aws_sqs_region,
        }
        credentials = {
            "key": config.operator_events_aws_sqs_access_key_id,
            "secret": config.operator_events_aws_sqs_secret_access_key,
        }
        sinks.append(("aws_sqs", (_present(settings), _present(credentials))))
    if config.operator_events_gcp_pubsub_project_id or config.operator_events_gcp_pubsub_topic_id:
        settings = {
            "project_id": config.operator_events_gcp_pubsub_project_id,
            "topic": config.operator_events_gcp_pubsub_topic_id,
            "endpoint": config.operator_events_gcp_pubsub_endpoint,
        }
        key = config.operator_events_gcp_pubsub_credentials
        if not key and config.operator_events_gcp_pubsub_endpoint:
            key = "{}"  # an emulator takes no credentials; the type's schema still asks for some
        credentials = {"service_account_json": key}
        sinks.append(("gcp_pubsub", (_present(settings), _present(credentials))))
    return sinks


def _rabbitmq(config: Config) -> tuple[StrMap, StrMap]:
    """`amqp[s]://user:pass@host:port/vhost` → the rabbitmq destination's fields (contract.md
    §5.7)."""
    url = urlsplit(config.operator_events_rabbitmq_server_url)
    if url.scheme not in ("amqp", "amqps") or not url.hostname:
        raise ConfigError("OPERATOR_EVENTS_RABBITMQ_SERVER_URL: expected amqp[s]://host[:port]")
    host = url.netloc.rpartition("@")[2]
    vhost = url.path if url.path not in ("", "/") else ""
    settings = {
        "server_url": host + vhost,
        "exchange": config.operator_events_rabbitmq_exchange,
        "tls": "true" if url.scheme == "amqps" else "false",
    }
    credentials = {
        "username": unquote(url.username or "guest"),
        "password": unquote(url.password or "guest"),
    }
    return _present(settings), credentials


def _present(values: StrMap) -> StrMap:
    return {key: value for key, value in values.items() if value}


def _synthetic(type_: str, config: StrMap, credentials: StrMap) -> Destination:
    """The destination operator events are delivered to: it belongs to no tenant."""
    now = now_ms()
    return Destination(
        id=f"operator-events-{type_}",
        tenant_id="",
        type=type_,
        topics=("*",),
        config=config,
        credentials=credentials,
        created_at=now,
        updated_at=now,
    )


def wants_provider_sink(config: Config) -> bool:
    """Whether a provider sink (rabbitmq, aws_sqs, ...) is configured."""
    return bool(_provider_sinks(config))
