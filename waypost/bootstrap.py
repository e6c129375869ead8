"""Builds the running system from a Config: the only module that imports concrete backends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.types import ASGIApp

from waypost.api.app import build as build_app
from waypost.api.auth import Authenticator
from waypost.api.context import Services
from waypost.api.ratelimit import HitCounter, MemoryHitCounter, RateLimiter
from waypost.config import Config
from waypost.core.filters import FilterLimits
from waypost.core.ids import IdGenerator
from waypost.core.limits import MetadataLimits
from waypost.core.topics import TopicLimits
from waypost.delivery.flow import flow_defaults, flow_settings
from waypost.delivery.retry import retry_policy
from waypost.delivery.worker import LINGER_MS, DeliveryWorker, WorkerSettings
from waypost.destinations import catalog
from waypost.destinations.editing import Rules
from waypost.destinations.registry import Registry
from waypost.errors import ConfigError
from waypost.operator import setup as operator_setup
from waypost.operator.relay import Relay
from waypost.portal.serving import portal_routes
from waypost.prometheus import Exporter
from waypost.prometheus import start as start_prometheus
from waypost.prometheus.serving import metrics_route
from waypost.publishing import Publisher
from waypost.recovery import Recovery, RecoveryRunner
from waypost.roles import Roles
from waypost.roles import roles as role_of
from waypost.storage.postgres.backend import PostgresBackend
from waypost.storage.postgres.ratelimit import PostgresHitCounter
from waypost.storage.protocols import Backend, DeliveryQueue
from waypost.storage.sealing import Sealer
from waypost.storage.sqlite.backend import SqliteBackend
from waypost.telemetry import Telemetry
from waypost.telemetry import start as start_telemetry
from waypost.telemetry.hooks import DeliveryObserver, OutcomeObserver, PublishObserver, either

if TYPE_CHECKING:
    from waypost.queues.rabbitmq import RabbitQueue

AUTO_POLL_MS = 1000  # the worker is woken on new work; polling only catches due retries


@dataclass
class System:
    config: Config
    roles: Roles  # what this process runs (waypost.roles)
    backend: Backend
    registry: Registry
    services: Services
    worker: DeliveryWorker
    recovery_runner: RecoveryRunner  # runs recovery jobs where delivery runs
    broker: RabbitQueue | None = None  # set when tasks are handed out through RabbitMQ
    telemetry: Telemetry | None = None  # set when OTEL_SERVICE_NAME is
    relay: Relay | None = None  # set when operator events are sent (OPERATOR_EVENTS_*)
    prometheus: Exporter | None = None  # set when PROMETHEUS_ENABLED is


def sealer(config: Config) -> Sealer:
    """Seals destination credentials at rest; the secret is given, or generated (embedded mode)."""
    if not config.aes_encryption_secret:
        raise ConfigError("AES_ENCRYPTION_SECRET is unset (with_generated_secrets fills it)")
    return Sealer(config.aes_encryption_secret, (config.aes_encryption_secret_previous,))


def open_backend(config: Config, roles: Roles | None = None) -> Backend:
    """The configured store. `roles`: the process that opens it (default: the settings'); embedded
    mode's delivery process opens it beside the server that owns it."""
    roles = roles or role_of(config)
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
        owner=not roles.child,
        shared=roles.delivery_process,
    )


def open_broker(config: Config, backend: Backend) -> RabbitQueue | None:
    if not config.rabbitmq_server_url:
        return None
    # aio-pika (the `rabbitmq` extra, checked with the settings) is imported only in this mode.
    from waypost.queues.rabbitmq import RabbitQueue, RabbitSettings

    assert isinstance(backend, PostgresBackend), (
        "find_problems requires POSTGRES_URL with RABBITMQ_SERVER_URL"
    )
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


def build(
    config: Config,
    *,
    roles: Roles | None = None,
    delivery_health: Callable[[], bool] | None = None,
) -> System:
    """The system one process runs. `roles`: what it runs (default: the settings'; embedded
    mode's delivery process passes its own). `delivery_health`: whether deliveries made
    elsewhere on this server's behalf (its delivery process) can go on; default: its worker's."""
    roles = roles or role_of(config)
    ids = id_generator(config)
    backend = open_backend(config, roles)
    broker = open_broker(config, backend)
    queue: DeliveryQueue = broker or backend
    registry, operator = _destinations_and_operator(config, backend)
    dependencies = _dependencies(backend, broker)
    # The exporter reads the worker's health at scrape time and the worker reports each outcome
    # to the exporter: `health` reads the worker's once it is built.
    health = _DeliveryHealth(roles, delivery_health)
    telemetry = start_telemetry(config)
    prometheus = _start_prometheus(config, roles, backend, registry, dependencies, health)
    worker = health.worker = delivery_worker(
        config, queue, backend, registry, ids, observer=telemetry, outcomes=prometheus
    )
    recovery = _recovery(config, backend, operator)
    services = Services(
        config=config,
        tenants=operator.tenants,  # the backend, observed for tenant.subscription.updated
        log=backend,
        publisher=publisher(config, backend, queue, ids, either(telemetry, prometheus)),
        registry=registry,
        auth=Authenticator(config.api_key, config.api_jwt_secret, config.deployment_id),
        rules=editing_rules(config, registry, ids),
        health=health.workers,
        dependencies=dependencies,
        metrics=backend,
        retention=backend,
        rate_limiter=rate_limiter(config),
        earliest_due=backend.next_visible_at if roles.delivers else None,
        recovery=recovery,
    )
    return System(
        config=config,
        roles=roles,
        backend=backend,
        registry=registry,
        services=services,
        worker=worker,
        recovery_runner=recovery_runner(config, recovery, backend),
        broker=broker,
        telemetry=telemetry,
        relay=operator.relay,
        prometheus=prometheus,
    )


def http_app(system: System) -> ASGIApp:
    """The HTTP application this process serves: the API's operations where it serves the API
    (/healthz alone otherwise), and beside them /metrics (on the API port unless `PROMETHEUS_PORT`
    gives it its own) and the tenant portal (contract.md §7.3, with the operations)."""
    config, services = system.config, system.services
    mounted = []
    if system.prometheus is not None and not config.prometheus_port:
        mounted.append(metrics_route(system.prometheus, services.auth))  # the admin key's
    if system.roles.api:
        mounted += portal_routes(config)
    return build_app(
        services, operations=system.roles.api, observer=system.telemetry, mounted=mounted
    )


def id_generator(config: Config) -> IdGenerator:
    return IdGenerator(
        config.idgen_type,
        config.idgen_event_prefix,
        config.idgen_destination_prefix,
        config.idgen_attempt_prefix,
    )


def _destinations_and_operator(
    config: Config, backend: Backend
) -> tuple[Registry, operator_setup.Operator]:
    """The destination types, and the operator events and alerts (which may deliver through
    them); the backend is told the operator's judge (None: recording attempts does nothing
    more)."""
    destinations = catalog.build(config)
    registry = destinations.registry
    sink_registry = None
    if destinations.guarded and operator_setup.wants_provider_sink(config):
        # The operator's sink may well be on a private network: its providers have no guard.
        sink_registry = destinations.unguarded()
    operator = operator_setup.build(
        config, backend, registry, destinations.user_agent, sink_registry=sink_registry
    )
    backend.judge_outcomes(operator.judge)
    return registry, operator


def _dependencies(
    backend: Backend, broker: RabbitQueue | None
) -> dict[str, Callable[[], Awaitable[None]]]:
    """What /healthz checks with one cheap round trip each: name → check (raises if down)."""
    checks: dict[str, Callable[[], Awaitable[None]]] = {"database": backend.ping}
    if broker is not None:
        checks["rabbitmq"] = broker.ping
    return checks


def _start_prometheus(
    config: Config,
    roles: Roles,
    backend: Backend,
    registry: Registry,
    dependencies: dict[str, Callable[[], Awaitable[None]]],
    health: _DeliveryHealth,
) -> Exporter | None:
    return start_prometheus(
        config,
        backlog=backend,
        delivery_health=health.deliverymq,
        dependencies=dependencies,
        destination_types=registry.types(),
        shared_with_child=roles.supervises_child,
        in_delivery_process=roles.child,
    )


def _recovery(config: Config, backend: Backend, operator: operator_setup.Operator) -> Recovery:
    return Recovery(
        tenants=backend,
        store=backend,
        wanted_topics=frozenset(config.operator_events_topics) if operator.relay else frozenset(),
        deployment_id=config.deployment_id,
    )


def recovery_runner(config: Config, recovery: Recovery, backend: Backend) -> RecoveryRunner:
    return RecoveryRunner(
        recovery=recovery,
        store=backend,
        batch_size=max(1, config.recovery_batch_size),
        lease_ms=max(1, config.recovery_lease_seconds) * 1000,
    )


def publisher(
    config: Config,
    backend: Backend,
    queue: DeliveryQueue,
    ids: IdGenerator,
    observer: PublishObserver | None,
) -> Publisher:
    return Publisher(
        tenants=backend,
        log=backend,
        queue=queue,
        ids=ids,
        configured_topics=config.topics,
        idempotency_ttl_seconds=config.publish_idempotency_key_ttl,
        metadata_limits=metadata_limits(config),
        topic_limits=topic_limits(config),
        observer=observer,
    )


def delivery_worker(
    config: Config,
    queue: DeliveryQueue,
    backend: Backend,
    registry: Registry,
    ids: IdGenerator,
    *,
    observer: DeliveryObserver | None,
    outcomes: OutcomeObserver | None,
) -> DeliveryWorker:
    return DeliveryWorker(
        queue=queue,
        destinations=backend,
        registry=registry,
        policy=retry_policy(config),
        ids=ids,
        settings=WorkerSettings(
            concurrency=config.delivery_max_concurrency,
            lease_ms=config.delivery_lease_seconds * 1000,
            idle_poll_ms=config.retry_poll_backoff_ms or AUTO_POLL_MS,
            flow=flow_settings(config),
            # With RabbitMQ, claims take the ids of messages as they arrive: a claim short of
            # its ask is the common case even under load, so the wait would be paid at every
            # claim. Not measured to help there; left off (bench/README.md).
            linger_ms=0 if config.rabbitmq_server_url else LINGER_MS,
        ),
        observer=observer,
        outcomes=outcomes,
    )


def editing_rules(config: Config, registry: Registry, ids: IdGenerator) -> Rules:
    """What destination create/update requests are checked against."""
    return Rules(
        registry,
        ids,
        config.topics,
        config.topics_allow_wildcards,
        metadata_limits(config),
        topic_limits(config),
        FilterLimits(config.max_filter_bytes, config.max_filter_nodes),
        flow_defaults(flow_settings(config)),
    )


def check(config: Config) -> None:
    """Every refusal `build` would make, without opening, starting or writing anything (for
    `waypost config --check`): secrets stand in where they would be generated."""
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


class _DeliveryHealth:
    """/healthz's and the exporter's view of delivery: the worker's health, or that of the
    delivery process where deliveries run (`elsewhere`); nothing in an API-only process."""

    def __init__(self, roles: Roles, elsewhere: Callable[[], bool] | None) -> None:
        self._roles = roles
        self._elsewhere = elsewhere
        self.worker: DeliveryWorker | None = None  # this process's, once built

    def _healthy(self) -> bool:
        if self._elsewhere is not None:
            return self._elsewhere()
        assert self.worker is not None, "read before the worker was built"
        return self.worker.healthy

    def workers(self) -> dict[str, bool]:
        if not self._roles.delivers:
            return {}
        healthy = self._healthy()
        return {"deliverymq-consumer": healthy, "retrymq-consumer": healthy}

    def deliverymq(self) -> bool | None:
        """Whether this server can deliver now (None: an API-only process does not deliver)."""
        return self.workers().get("deliverymq-consumer")
