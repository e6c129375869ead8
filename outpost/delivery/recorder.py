"""Coalesces the outcomes of deliveries that finish together into one `finish()` write.

While one write is in flight, outcomes that finish meanwhile wait for the next: under load each
write carries many attempts (one INSERT of many rows instead of many round trips), and when idle
an outcome is written at once. Each caller returns only once its own outcome is durable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from outpost.core.models import Outcome

Finish = Callable[[list[Outcome]], Awaitable[None]]


class Recorder:
    def __init__(self, finish: Finish) -> None:
        self._finish = finish
        self._pending: list[tuple[Outcome, asyncio.Future[None]]] = []
        self._writing: asyncio.Task[None] | None = None

    async def record(self, outcome: Outcome) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((outcome, future))
        if self._writing is None:
            self._writing = asyncio.create_task(self._write())
        await future

    async def _write(self) -> None:
        try:
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
            self._writing = None
