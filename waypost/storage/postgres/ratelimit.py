"""The API rate limit's counts in PostgreSQL, so that every API process spends one budget.

One upsert per caller and window adds the requests counted since the last one
(`004_rate_limit.sql`: an unlogged table, so no WAL flush waits on it): while an upsert for a
caller is in flight, that caller's further requests wait and are then counted together by the
next, each getting its own position in the window. Under load a process therefore makes about one
round trip per caller at a time, whatever its request rate. The counter has a small pool of its
own, opened on first use, so it never queues behind the store's group commits, nor they behind
it. Windows that ended before the previous one are deleted when a process first counts in a new
window.
"""

from __future__ import annotations

import asyncio

import asyncpg

from waypost.storage.postgres.database import translate

_ADD = """
INSERT INTO rate_limit_windows AS w (key, window_start, hits) VALUES ($1, $2, $3)
ON CONFLICT (key, window_start) DO UPDATE SET hits = w.hits + $3
RETURNING hits
"""
_FORGET = "DELETE FROM rate_limit_windows WHERE window_start < $1"

Slot = tuple[str, int]  # (caller key, window start)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """No reset round trip when a connection returns to the pool: these connections only ever
    run the two statements above, and leave no session state (locks, LISTEN, settings) behind."""


class PostgresHitCounter:
    def __init__(self, dsn: str, *, timeout: float = 5.0, pool_size: int = 4) -> None:
        self._dsn = dsn
        self._timeout = timeout
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._window = -1
        self._waiting: dict[Slot, list[asyncio.Future[int]]] = {}
        self._flights: dict[Slot, asyncio.Task[None]] = {}

    async def hit(self, key: str, window_start: int, window_seconds: int) -> int:
        slot = (key, window_start)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(slot, []).append(future)
        if slot not in self._flights:
            self._flights[slot] = asyncio.create_task(self._fly(slot, window_seconds))
        return await future

    async def _fly(self, slot: Slot, window_seconds: int) -> None:
        """Count the requests waiting on `slot`, one upsert per batch, until none are left."""
        try:
            while batch := self._waiting.pop(slot, []):
                try:
                    total = await self._add(slot, len(batch), window_seconds)
                except Exception as exc:
                    error = translate(exc)
                    for future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                first = total - len(batch)
                for position, future in enumerate(batch, start=1):
                    if not future.done():
                        future.set_result(first + position)
        finally:
            del self._flights[slot]

    async def _add(self, slot: Slot, count: int, window_seconds: int) -> int:
        pool = self._pool or await self._open()
        key, window_start = slot
        async with pool.acquire(timeout=self._timeout) as conn:
            if window_start > self._window:
                self._window = window_start
                await conn.execute(_FORGET, window_start - window_seconds)
            hits = await conn.fetchval(_ADD, key, window_start, count)
        assert isinstance(hits, int)
        return hits

    async def _open(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=1,
                    max_size=self._pool_size,
                    command_timeout=self._timeout,
                    timeout=self._timeout,
                    reset=_keep_session,
                )
            return self._pool

    async def close(self) -> None:
        for flight in list(self._flights.values()):
            flight.cancel()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
