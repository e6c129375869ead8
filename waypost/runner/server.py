"""Runs what one process serves (waypost.roles) in one TaskGroup: the HTTP server, the delivery
worker or embedded mode's delivery process, retention, the relay; drains them on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn

from waypost import bootstrap
from waypost.api.protocol import server_protocol
from waypost.bootstrap import System
from waypost.config import Config
from waypost.prometheus.serving import standalone_app
from waypost.retention import RetentionSweeper
from waypost.roles import roles as role_of
from waypost.runner.supervisor import DeliveryProcess
from waypost.storage.sqlite.backend import SqliteBackend

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # We own the signals: uvicorn would re-raise them after its own shutdown and kill the
        # process before the delivery worker has drained.
        yield


@dataclass
class Server:
    """A server process: its system, and embedded mode's delivery process when it has one."""

    system: System
    delivery_process: DeliveryProcess | None = None


def build(config: Config) -> Server:
    """The server `SERVICE` asks for; refusals (`OutpostError`) come from here, before `run`."""
    roles = role_of(config)
    child = DeliveryProcess(config) if roles.supervises_child else None
    system = bootstrap.build(
        config, roles=roles, delivery_health=child.is_healthy if child is not None else None
    )
    return Server(system, child)


async def run(served: Server) -> None:
    """Serve `SERVICE`: the API, the delivery worker, or both. Every process answers /healthz."""
    system, child = served.system, served.delivery_process
    config, roles = system.config, system.roles
    await system.backend.open()
    if system.broker is not None:
        await system.broker.open(consume=roles.worker)
    server = _Server(
        uvicorn.Config(
            bootstrap.http_app(system),
            host=config.host,
            port=config.port,
            http=server_protocol(
                config.max_request_header_bytes,
                head_timeout=config.api_header_timeout_seconds,
                body_timeout=config.api_body_timeout_seconds,
                max_connections=config.api_max_connections,
            ),
            timeout_keep_alive=config.api_keepalive_timeout_seconds,
            loop="none",
            lifespan="off",
            access_log=False,
            log_config=None,  # uvicorn's records go through our handler (LOG_FORMAT)
            log_level="warning",
            server_header=False,
        )
    )
    scrape = _metrics_server(system)  # PROMETHEUS_PORT's, when set
    loop = asyncio.get_running_loop()
    sweeper = RetentionSweeper(
        system.backend,
        ttl_days=config.log_retention_ttl_days,
        interval_seconds=config.log_retention_interval_seconds,
        batch_size=config.log_retention_batch_size,
    )

    def shut_down() -> None:
        log.info("shutting down: finishing deliveries in flight")
        server.should_exit = True
        if scrape is not None:
            scrape.should_exit = True
        system.worker.stop()
        if child is not None:
            child.stop()
        sweeper.stop()
        if system.relay is not None and not roles.worker:
            system.relay.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shut_down)
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(server.serve())
            if scrape is not None:
                group.create_task(scrape.serve())
            if sweeper.enabled:
                group.create_task(sweeper.run())
            if roles.worker:
                group.create_task(deliver(system))
            if child is not None:
                assert isinstance(system.backend, SqliteBackend)  # embedded mode's
                group.create_task(child.run(system.backend))
            if system.relay is not None:
                group.create_task(system.relay.run())
    finally:
        await close(system)


def _metrics_server(system: System) -> _Server | None:
    """/metrics alone on `PROMETHEUS_PORT` of `HOST`, without authentication."""
    config = system.config
    if system.prometheus is None or not config.prometheus_port:
        return None
    return _Server(
        uvicorn.Config(
            standalone_app(system.prometheus),
            host=config.host,
            port=config.prometheus_port,
            loop="none",
            lifespan="off",
            access_log=False,
            log_config=None,
            log_level="warning",
            server_header=False,
        )
    )


async def close(system: System) -> None:
    """Release what `bootstrap.build` and `run` opened, flushing what is buffered."""
    if system.broker is not None:
        await system.broker.close()
    await system.registry.close()
    await system.backend.close()
    if system.services.rate_limiter is not None:
        await system.services.rate_limiter.close()
    if system.prometheus is not None:
        system.prometheus.close()
    if system.telemetry is not None:  # export what is buffered (blocking I/O: a thread)
        await asyncio.to_thread(system.telemetry.shutdown)


async def deliver(system: System) -> None:
    """The worker and the recovery runner; once the worker has drained, the runner stops and
    the relay sends what the drain recorded, then stops."""
    runner = system.recovery_runner
    try:
        async with asyncio.TaskGroup() as group:
            if runner is not None:
                group.create_task(runner.run())
            try:
                await system.worker.run()
            finally:
                if runner is not None:
                    runner.stop()
    finally:
        if system.relay is not None:
            system.relay.stop()
