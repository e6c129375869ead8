"""Builds the running system from a Config: the only module that imports concrete backends."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from outpost.api.auth import Authenticator
from outpost.api.context import Services
from outpost.api.ratelimit import HitCounter, MemoryHitCounter, RateLimiter
from outpost.config import Config
from outpost.core.backoff import RetryPolicy
from outpost.core.filters import FilterLimits
from outpost.core.ids import IdGenerator
from outpost.core.limits import MetadataLimits
from outpost.core.topics import TopicLimits
from outpost.delivery.flow import flow_defaults, flow_settings
from outpost.delivery.process import DeliveryProcess
from outpost.delivery.process import wanted as wants_delivery_process
from outpost.delivery.worker import DeliveryWorker, WorkerSettings
from outpost.destinations import catalog
from outpost.destinations.editing import Rules
from outpost.destinations.registry import Registry
from outpost.errors import ConfigError
from outpost.operator import setup as operator_setup
from outpost.operator.relay import Relay
from outpost.prometheus import Exporter
from outpost.prometheus import start as start_prometheus
from outpost.publishing import Publisher
from outpost.queues.rabbitmq import RabbitQueue, RabbitSettings
from outpost.recovery import Recovery, RecoveryRunner
from outpost.storage.postgres.backend import PostgresBackend
from outpost.storage.postgres.ratelimit import PostgresHitCounter
from outpost.storage.protocols import Backend, DeliveryQueue
from outpost.storage.sealing import Sealer
from outpost.storage.sqlite.backend import SqliteBackend
from outpost.telemetry import Telemetry
from outpost.telemetry import start as start_telemetry
from outpost.telemetry.hooks import either

AUTO_POLL_MS = 1000  # the worker is woken on new work; polling only catches due retries


@dataclass
class System:
    config: Config
    backend: Backend
    registry: Registry
    services: Services
    worker: DeliveryWorker
    broker: RabbitQueue | None = None  # set when tasks are handed out through RabbitMQ
    telemetry: Telemetry | None = None  # set when OTEL_SERVICE_NAME is
    relay: Relay | None = None  # set when operator events are sent (OPERATOR_EVENTS_*)
    delivery_process: DeliveryProcess | None = None  # embedded mode on two cores
    prometheus: Exporter | None = None  # set when PROMETHEUS_ENABLED is
    recovery_runner: RecoveryRunner | None = None  # runs recovery jobs where delivery runs


def retry_policy(config: Config) -> RetryPolicy:
    return RetryPolicy(
        max_retries=config.max_retry_limit,
        interval_seconds=config.retry_interval_seconds,
        schedule=config.retry_schedule,
        retry_after_max_seconds=config.retry_after_max_seconds,
    )


def sealer(config: Config) -> Sealer:
    """Seals destination credentials at rest; the secret is given, or generated (embedded mode)."""
    if not config.aes_encryption_secret:
        raise ConfigError("AES_ENCRYPTION_SECRET is unset (with_generated_secrets fills it)")
    return Sealer(config.aes_encryption_secret, (config.aes_encryption_secret_previous,))


def open_backend(config: Config, *, in_delivery_process: bool = False) -> Backend:
    """The configured store. `in_delivery_process`: embedded mode's delivery process opens it,
    beside the server that owns it."""
    if config.postgres_url:
        return PostgresBackend(
            config.postgres_url,
            sealer=sealer(config),
            pool_size=config.postgres_pool_size,
            timeout=config.postgres_timeout_seconds,
            batch_limit=config.log_batch_size,
            migrate=config.postgres_migrate_on_start,
        )
    return SqliteBackend(
        Path(config.data_dir),
        sealer=sealer(config),
        synchronous=config.sqlite_synchronous.upper(),
        batch_limit=config.log_batch_size,
        owner=not in_delivery_process,
        shared=wants_delivery_process(config),
    )


def open_broker(config: Config, backend: Backend) -> RabbitQueue | None:
    if not config.rabbitmq_server_url:
        return None
    assert isinstance(backend, PostgresBackend), "config.check() requires POSTGRES_URL"
    queue = config.rabbitmq_delivery_queue
    settings = RabbitSettings(
        url=config.rabbitmq_server_url,
        exchange=config.rabbitmq_exchange,
        queue=queue,
        dead_letter_queue=config.rabbitmq_delivery_dlq or f"{queue}.dlq",
        hold_ms=config.rabbitmq_hold_seconds * 1000,
        # Unacked messages: the worker's slots, the tasks it claims ahead of them, and outcomes
        # waiting for their record (a message is acked once its attempt is recorded); with only
        # the slots' worth, the claims ahead would find the inbox empty.
        prefetch=DeliveryWorker.messages_in_hand(config.delivery_max_concurrency),
    )
    return RabbitQueue(backend, settings)


def build(config: Config, *, in_delivery_process: bool = False) -> System:
    """The system one process runs; `in_delivery_process`: embedded mode's delivery process."""
    ids = IdGenerator(
        config.idgen_type,
        config.idgen_event_prefix,
        config.idgen_destination_prefix,
        config.idgen_attempt_prefix,
    )
    backend = open_backend(config, in_delivery_process=in_delivery_process)
    broker = open_broker(config, backend)
    queue: DeliveryQueue = broker or backend
    destinations = catalog.build(config)
    registry = destinations.registry
    sink_registry = None
    if destinations.guarded and operator_setup.wants_provider_sink(config):
        # The operator's sink may well be on a private network: its providers have no guard.
        sink_registry = destinations.unguarded()
    operator = operator_setup.build(
        config, backend, registry, destinations.user_agent, sink_registry=sink_registry
    )
    backend.judge_outcomes(operator.judge)  # None: recording attempts does nothing more
    publisher = Publisher(
        backend,
        backend,
        queue,
        ids,
        configured_topics=config.topics,
        idempotency_ttl_seconds=config.publish_idempotency_key_ttl,
        metadata_limits=metadata_limits(config),
        topic_limits=topic_limits(config),
    )
    worker = DeliveryWorker(
        queue,
        backend,
        backend,
        registry,
        retry_policy(config),
        ids,
        WorkerSettings(
            concurrency=config.delivery_max_concurrency,
            lease_ms=config.delivery_lease_seconds * 1000,
            idle_poll_ms=config.retry_poll_backoff_ms or AUTO_POLL_MS,
            flow=flow_settings(config),
        ),
    )
    child = None  # the embedded server's delivery process, when it starts one
    serving = not in_delivery_process
    if serving and isinstance(backend, SqliteBackend) and wants_delivery_process(config):
        child = DeliveryProcess(config, backend)
    services = Services(
        config=config,
        tenants=operator.tenants,  # the backend, observed for tenant.subscription.updated
        log=backend,
        publisher=publisher,
        registry=registry,
        auth=Authenticator(config.api_key, config.api_jwt_secret, config.deployment_id),
        rules=Rules(
            registry,
            ids,
            config.topics,
            config.topics_allow_wildcards,
            metadata_limits(config),
            topic_limits(config),
            FilterLimits(config.max_filter_bytes, config.max_filter_nodes),
            flow_defaults(flow_settings(config)),
        ),
        health=lambda: _worker_health(config, worker, child),
        dependencies={"database": backend.ping, **({"rabbitmq": broker.ping} if broker else {})},
        metrics=backend,
        retention=backend,
        rate_limiter=rate_limiter(config),
        earliest_due=backend.next_visible_at if config.service != "api" else None,
    )
    recovery = Recovery(
        backend,
        backend,
        wanted_topics=frozenset(config.operator_events_topics) if operator.relay else frozenset(),
        deployment_id=config.deployment_id,
    )
    services.recovery = recovery
    runner = RecoveryRunner(
        recovery,
        backend,
        batch_size=max(1, config.recovery_batch_size),
        lease_ms=max(1, config.recovery_lease_seconds) * 1000,
    )
    telemetry = start_telemetry(config)
    prometheus = start_prometheus(
        config,
        backlog=backend,
        delivery_health=lambda: _delivery_healthy(config, worker, child),
        dependencies=services.dependencies,
        destination_types=registry.types(),
        shared_with_child=child is not None,
        in_delivery_process=in_delivery_process,
    )
    publisher.observer = either(telemetry, prometheus)
    worker.observer = telemetry
    worker.outcomes = services.prometheus = prometheus
    return System(
        config,
        backend,
        registry,
        services,
        worker,
        broker,
        telemetry,
        relay=operator.relay,
        delivery_process=child,
        prometheus=prometheus,
        recovery_runner=runner,
    )


def check(config: Config) -> None:
    """Every refusal `build` would make, without opening, starting or writing anything (for
    `outpost config --check`): secrets stand in where they would be generated."""
    placeholder = config.aes_encryption_secret or "generated at start"
    build(replace(config, otel_service_name="", aes_encryption_secret=placeholder))


def rate_limiter(config: Config) -> RateLimiter | None:
    """API_RATE_LIMIT's limiter: counted in PostgreSQL when the API processes share one."""
    if config.api_rate_limit <= 0:
        return None
    counter: HitCounter = (
        PostgresHitCounter(config.postgres_url, timeout=config.postgres_timeout_seconds)
        if config.postgres_url
        else MemoryHitCounter()
    )
    return RateLimiter(counter, config.api_rate_limit, config.api_rate_limit_window_seconds)


def topic_limits(config: Config) -> TopicLimits:
    return TopicLimits(config.max_destination_topics, config.max_topic_length)


def metadata_limits(config: Config) -> MetadataLimits:
    return MetadataLimits(
        max_keys=config.max_metadata_keys,
        max_key_bytes=config.max_metadata_key_bytes,
        max_value_bytes=config.max_metadata_value_bytes,
    )


def _delivery_healthy(
    config: Config, worker: DeliveryWorker, child: DeliveryProcess | None
) -> bool | None:
    """Whether this server can deliver now (None: an API-only process does not deliver)."""
    return _worker_health(config, worker, child).get("deliverymq-consumer")


def _worker_health(
    config: Config, worker: DeliveryWorker, child: DeliveryProcess | None
) -> dict[str, bool]:
    if config.service == "api":
        return {}
    healthy = child.healthy if child is not None else worker.healthy
    return {"deliverymq-consumer": healthy, "retrymq-consumer": healthy}
