"""Coalesces the outcomes of deliveries that finish together into one `finish()` write.

While one write is in flight, outcomes that finish meanwhile wait for the next: under load each
write carries many attempts (one INSERT of many rows instead of many round trips). From idle, the
first outcome waits `linger_seconds` for others to share its write (a few milliseconds: the
delivery has been made already, only its record waits). `submit` returns a future that resolves
once that outcome is durable, so a delivery need not wait for its record (the worker frees its
slot at once and bounds the `backlog` instead).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from waypost.core.models import Outcome

Finish = Callable[[list[Outcome]], Awaitable[None]]


class Recorder:
    def __init__(self, finish: Finish, *, linger_seconds: float = 0.0) -> None:
        self._finish = finish
        self._linger = linger_seconds
        self._pending: list[tuple[Outcome, asyncio.Future[None]]] = []
        self._writing: asyncio.Task[None] | None = None
        self.backlog = 0  # outcomes submitted and not yet written (or failed)

    def submit(self, outcome: Outcome) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((outcome, future))
        self.backlog += 1
        if self._writing is None:
            self._writing = asyncio.create_task(self._write())
        return future

    async def written(self) -> None:
        """Return once the write in flight (if any) has ended."""
        if self._writing is not None:
            await asyncio.shield(self._writing)

    async def drained(self) -> None:
        """Return once every outcome submitted so far has been written (or has failed)."""
        while self._writing is not None:
            await asyncio.shield(self._writing)

    async def _write(self) -> None:
        try:
            if self._linger > 0:
                await asyncio.sleep(self._linger)
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._finish([outcome for outcome, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        future.set_exception(exc)
                else:
                    for _, future in batch:
                        future.set_result(None)
                finally:
                    self.backlog -= len(batch)
        finally:
            self._writing = None
