"""Embedded mode's delivery process: the second core.

One Python process runs one core's worth of Python at a time, and an embedded server at
saturation spends it on publishing and delivering alike. So `outpost serve` (SQLite, every
service) starts a second process that runs only the delivery worker on the same database file.

Parent side, `DeliveryProcess`: starts `python -m outpost.delivery.process FD`, hands it this
process's settings (pickled on its stdin, generated secrets included, so both agree exactly) and
one end of a socket pair (the `Peer` link: wake-ups and cache invalidations), and restarts it if
it dies, after releasing the tasks it had leased, since nobody else claims tasks. On shutdown it
asks the process to drain (SIGTERM) and waits for it, killing it past a grace period.

Child side, `main()`: opens the database without owning it, runs the worker and the operator
relay, and drains and exits on SIGTERM/SIGINT or when the link closes (the server is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import socket
import sys

from outpost.config import Config
from outpost.storage.sqlite.backend import SqliteBackend
from outpost.storage.sqlite.peer import Peer

log = logging.getLogger(__name__)

RESTART_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0)  # consecutive quick deaths back off
STEADY_SECONDS = 30.0  # a process that lived this long resets the back-off
DRAIN_GRACE_SECONDS = 5.0  # beyond the delivery timeout, before a stopping child is killed
HEALTH_REPORT_SECONDS = 1.0  # how often the delivery process looks at its worker's health


def wanted(config: Config) -> bool:
    """Whether this embedded server delivers from a process of its own."""
    choice = config.sqlite_delivery_process.lower()
    if config.postgres_url or config.service not in ("", "all") or choice == "false":
        return False
    return choice == "true" or len(os.sched_getaffinity(0)) >= 2


class DeliveryProcess:
    def __init__(self, config: Config, backend: SqliteBackend) -> None:
        self._config = config
        self._backend = backend
        self._process: asyncio.subprocess.Process | None = None
        self._stopping = asyncio.Event()
        self.healthy = False  # while a delivery process runs and last said it can deliver

    async def run(self) -> None:
        """Keep a delivery process running until `stop()`; then wait for it to drain."""
        failures = 0
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            started = loop.time()
            code = await self._run_once()
            if self._stopping.is_set():
                return
            self.healthy = False
            failures = 0 if loop.time() - started > STEADY_SECONDS else failures + 1
            delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS)) - 1] if failures else 0.0
            released = await self._backend.release_leases()
            log.error(
                "the delivery process exited (%s); %d leased tasks released; restarting in %.1f s",
                code,
                released,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    def _reported(self, healthy: bool) -> None:
        self.healthy = healthy

    def stop(self) -> None:
        self._stopping.set()
        if self._process is not None and self._process.returncode is None:
            self._process.send_signal(signal.SIGTERM)

    async def _run_once(self) -> int:
        ours, theirs = socket.socketpair()
        with theirs:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "outpost.delivery.process",
                str(theirs.fileno()),
                stdin=asyncio.subprocess.PIPE,
                pass_fds=(theirs.fileno(),),
            )
        self._process = process
        try:
            assert process.stdin is not None
            process.stdin.write(pickle.dumps(self._config))
            with contextlib.suppress(ConnectionError):  # it died at once: seen by wait()
                await process.stdin.drain()
            process.stdin.close()
            await self._backend.link(Peer(ours, on_report=self._reported))
            if self._stopping.is_set():  # stop() came before the process existed
                process.send_signal(signal.SIGTERM)
            return await self._wait(process)
        finally:
            self._process = None
            self.healthy = False
            await self._backend.link(None)

    async def _wait(self, process: asyncio.subprocess.Process) -> int:
        ended = asyncio.ensure_future(process.wait())
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait((ended, stopping), return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not ended.done():  # draining: bounded by the deliveries in flight
            grace = self._config.delivery_timeout_seconds + DRAIN_GRACE_SECONDS
            try:
                await asyncio.wait_for(asyncio.shield(ended), grace)
            except TimeoutError:
                log.error("the delivery process did not drain in %.0f s: killed", grace)
                process.kill()
        return await ended


async def _serve(config: Config, link: socket.socket) -> None:
    from outpost import bootstrap, services

    system = bootstrap.build(config, in_delivery_process=True)
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
            group.create_task(services.deliver(system))
            if system.relay is not None:
                group.create_task(system.relay.run())
    finally:
        await services.close(system)


def main() -> None:
    link = socket.socket(fileno=int(sys.argv[1]))
    config: Config = pickle.load(sys.stdin.buffer)  # noqa: S301 - written by our parent
    from outpost.observability import logs

    logs.configure(config.log_level, config.log_format)
    import uvloop

    uvloop.run(_serve(config, link))


if __name__ == "__main__":
    main()
