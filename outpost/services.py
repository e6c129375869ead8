"""Runs the API and the delivery worker in one TaskGroup, and drains them on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

import uvicorn

from outpost.api.app import build as build_app
from outpost.bootstrap import System

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # We own the signals: uvicorn would re-raise them after its own shutdown and kill the
        # process before the delivery worker has drained.
        yield


async def run(system: System) -> None:
    """Serve `SERVICE`: the API, the delivery worker, or both. Every process answers /healthz."""
    config = system.config
    await system.backend.open()
    if system.broker is not None:
        await system.broker.open(consume=config.service in ("", "all", "delivery"))
    runs_api = config.service in ("", "all", "api")
    runs_delivery = config.service in ("", "all", "delivery")
    server = _Server(
        uvicorn.Config(
            build_app(system.services, operations=runs_api),
            host=config.host,
            port=config.port,
            http="httptools",
            loop="none",
            lifespan="off",
            access_log=False,
            log_level="warning",
            server_header=False,
        )
    )
    loop = asyncio.get_running_loop()

    def shut_down() -> None:
        log.info("shutting down: finishing deliveries in flight")
        server.should_exit = True
        system.worker.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shut_down)
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(server.serve())
            if runs_delivery:
                group.create_task(system.worker.run())
    finally:
        if system.broker is not None:
            await system.broker.close()
        await system.registry.close()
        await system.backend.close()
