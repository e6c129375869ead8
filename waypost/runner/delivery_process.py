"""Embedded mode's delivery process, child side: `python -m waypost.runner.delivery_process FD`.

Started by the server's `DeliveryProcess` (runner/supervisor.py) with the server's settings on
stdin and one end of the `Peer` link as FD: opens the database without owning it, runs the worker
and the operator relay, and drains and exits on SIGTERM/SIGINT or when the link closes (the
server is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import signal
import socket
import sys

from waypost import bootstrap
from waypost.config import Config
from waypost.roles import roles
from waypost.runner import server
from waypost.storage.sqlite.backend import SqliteBackend
from waypost.storage.sqlite.peer import Peer

log = logging.getLogger(__name__)

HEALTH_REPORT_SECONDS = 1.0  # how often the delivery process looks at its worker's health


async def _serve(config: Config, link: socket.socket) -> None:
    system = bootstrap.build(config, roles=roles(config, child=True))
    peer = Peer(link)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # Ctrl-C reaches the whole process group
        loop.add_signal_handler(sig, stop.set)
    await system.backend.open()
    assert isinstance(system.backend, SqliteBackend)
    await system.backend.link(peer)
    peer.report(True)  # ready

    async def until_told() -> None:
        ended = asyncio.ensure_future(peer.closed())
        told = asyncio.ensure_future(stop.wait())
        await asyncio.wait((ended, told), return_when=asyncio.FIRST_COMPLETED)
        if ended.done():
            log.warning("the server process is gone: finishing deliveries in flight, then exiting")
        system.worker.stop()
        if system.relay is not None:
            system.relay.stop()

    async def report_health() -> None:
        """Tell the server when the worker starts or stops failing (its /healthz says so)."""
        said = True
        while not stop.is_set() and not peer.is_closed():
            if system.worker.healthy != said:
                said = system.worker.healthy
                peer.report(said)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), HEALTH_REPORT_SECONDS)

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(until_told())
            group.create_task(report_health())
            group.create_task(server.deliver(system))
            if system.relay is not None:
                group.create_task(system.relay.run())
    finally:
        await server.close(system)


def main() -> None:
    link = socket.socket(fileno=int(sys.argv[1]))
    config: Config = pickle.load(sys.stdin.buffer)  # noqa: S301 - written by our parent
    from waypost.telemetry import logs

    logs.configure(config.log_level, config.log_format)
    import uvloop

    uvloop.run(_serve(config, link))


if __name__ == "__main__":
    main()
