"""The link between the two processes that share one embedded database.

In embedded mode the API process and its delivery process open the same SQLite file. Each must
hear of two things the other does: work was queued (the delivery side's worker should claim now
rather than at its next poll), and a tenant's destinations changed (the cached list is stale).
They are lines on a Unix socket pair: `w` and `f<tenant id as JSON>`; and from the delivery
process, `r1` once it is ready to deliver and again whenever its worker recovers, `r0` whenever
its worker is failing (the server's /healthz reports delivery unhealthy until `r1`, and after `r0`).

Wake notices are coalesced to one per event-loop turn: a group commit settles many publishes at
once, and one line wakes the worker for all of them. The link closing (end of file) means the
other process is gone: the delivery process then drains and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)

_WAKE = b"w"
_FORGET = b"f"
_REPORT = b"r"


class Peer:
    def __init__(
        self, sock: socket.socket, *, on_report: Callable[[bool], None] | None = None
    ) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._on_report = on_report
        self._transport: asyncio.Transport | None = None
        self._wake_pending = False
        self._closed = asyncio.Event()

    async def start(self, on_wake: Callable[[], None], on_forget: Callable[[str], None]) -> None:
        """Begin listening; `on_wake` and `on_forget` run on the loop for each notice received."""
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_unix_connection(
            lambda: _Lines(on_wake, on_forget, self._on_report, self._closed), sock=self._sock
        )

    def wake(self) -> None:
        if self._wake_pending or self._transport is None:
            return
        self._wake_pending = True
        asyncio.get_running_loop().call_soon(self._send_wake)

    def report(self, healthy: bool) -> None:
        """The delivery process says whether it can deliver (first of all: that it is ready)."""
        self._send(_REPORT + (b"1\n" if healthy else b"0\n"))

    def forget(self, tenant_id: str) -> None:
        self._send(_FORGET + json.dumps(tenant_id).encode() + b"\n")

    def is_closed(self) -> bool:
        return self._closed.is_set()

    async def closed(self) -> None:
        """Return once the other end has gone away (or `close()` was called)."""
        await self._closed.wait()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        else:
            self._sock.close()
        self._closed.set()

    def _send_wake(self) -> None:
        self._wake_pending = False
        self._send(_WAKE + b"\n")

    def _send(self, line: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(line)


class _Lines(asyncio.Protocol):
    def __init__(
        self,
        on_wake: Callable[[], None],
        on_forget: Callable[[str], None],
        on_report: Callable[[bool], None] | None,
        closed: asyncio.Event,
    ) -> None:
        self._on_wake = on_wake
        self._on_forget = on_forget
        self._on_report = on_report
        self._closed = closed
        self._partial = b""

    def data_received(self, data: bytes) -> None:
        *lines, self._partial = (self._partial + data).split(b"\n")
        woken = False
        for line in lines:
            if line == _WAKE:
                woken = True
            elif line.startswith(_FORGET):
                with contextlib.suppress(ValueError):
                    self._on_forget(json.loads(line[1:]))
            elif line.startswith(_REPORT) and self._on_report is not None:
                self._on_report(line[1:] == b"1")
            else:
                log.warning("unknown notice from the other process: %r", line[:40])
        if woken:
            self._on_wake()

    def eof_received(self) -> bool | None:
        return False  # close our end too

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed.set()
