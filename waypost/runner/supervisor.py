"""Embedded mode's delivery process, parent side: the server starts, restarts and stops it.

One Python process runs one core's worth of Python at a time, and an embedded server at
saturation spends it on publishing and delivering alike. So `waypost serve` (SQLite, every
service) starts a second process that runs only the delivery worker on the same database file
(`runner/delivery_process.py`, the child side).

`DeliveryProcess` starts `python -m waypost.runner.delivery_process FD`, hands it this
process's settings (pickled on its stdin, generated secrets included, so both agree exactly) and
one end of a socket pair (the `Peer` link: wake-ups and cache invalidations), and restarts it if
it dies, after releasing the tasks it had leased, since nobody else claims tasks. On shutdown it
asks the process to drain (SIGTERM) and waits for it, killing it past a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import signal
import socket
import sys

from waypost.config import Config
from waypost.storage.sqlite.backend import SqliteBackend
from waypost.storage.sqlite.peer import Peer

CHILD_MODULE = "waypost.runner.delivery_process"  # `python -m` this: the child side

log = logging.getLogger(__name__)

RESTART_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0)  # consecutive quick deaths back off
STEADY_SECONDS = 30.0  # a process that lived this long resets the back-off
DRAIN_GRACE_SECONDS = 5.0  # beyond the delivery timeout, before a stopping child is killed


class DeliveryProcess:
    def __init__(self, config: Config) -> None:
        self._config = config
        self._process: asyncio.subprocess.Process | None = None
        self._stopping = asyncio.Event()
        self.healthy = False  # while a delivery process runs and last said it can deliver

    def is_healthy(self) -> bool:
        return self.healthy

    async def run(self, store: SqliteBackend) -> None:
        """Keep a delivery process on `store` (the server's own, open) running until `stop()`;
        then wait for it to drain."""
        failures = 0
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            started = loop.time()
            code = await self._run_once(store)
            if self._stopping.is_set():
                return
            self.healthy = False
            failures = 0 if loop.time() - started > STEADY_SECONDS else failures + 1
            delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS)) - 1] if failures else 0.0
            released = await store.release_leases()
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

    async def _run_once(self, store: SqliteBackend) -> int:
        ours, theirs = socket.socketpair()
        with theirs:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                CHILD_MODULE,
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
            await store.link(Peer(ours, on_report=self._reported))
            if self._stopping.is_set():  # stop() came before the process existed
                process.send_signal(signal.SIGTERM)
            return await self._wait(process)
        finally:
            self._process = None
            self.healthy = False
            await store.link(None)

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
