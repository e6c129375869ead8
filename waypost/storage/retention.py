"""Deleting old logs in bounded batches, shared by every backend.

A sweep is a loop of small deletes, each its own short transaction (at most `batch_size`
attempts and `batch_size` events), until a batch comes back short: no statement ever holds a
table for long, and deliveries and publishes commit between batches. An event is deleted only
once it has no delivery task (a pending delivery or scheduled retry still needs it) and no
attempt left (an attempt that is kept shows its event), so retention never breaks either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Deleted:
    events: int = 0
    attempts: int = 0

    def __add__(self, other: Deleted) -> Deleted:
        return Deleted(self.events + other.events, self.attempts + other.attempts)


async def sweep(batch: Callable[[], Awaitable[Deleted]], batch_size: int) -> Deleted:
    """Run `batch` until it deletes fewer than `batch_size` of both kinds; the total."""
    total = Deleted()
    while True:
        done = await batch()
        total += done
        if done.events < batch_size and done.attempts < batch_size:
            return total
        await asyncio.sleep(0)  # let the requests and deliveries waiting run between batches
