"""`Waker`: the wake-up a backend gives a loop that waits for work (delivery, operator events).

A writer sets it after its commit; the loop's `wait` returns at once if it was set since the last
wait, and clears it, so a wake-up between two waits is never lost and many wake-ups are one.
"""

from __future__ import annotations

import asyncio
import contextlib


class Waker(asyncio.Event):
    async def wait_at_most(self, timeout: float) -> None:
        """Return when set (since the last call, or now), or after `timeout` seconds; clear."""
        if timeout > 0 and not self.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wait(), timeout)
        self.clear()
