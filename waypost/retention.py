"""Log retention: a background task that deletes events and attempts past `LOG_RETENTION_TTL_DAYS`.

It runs in every process (`waypost serve`, any `SERVICE`), sweeping once at start and then every
`LOG_RETENTION_INTERVAL_SECONDS`. The store deletes in bounded batches and keeps events that are
still needed (storage/retention.py); with PostgreSQL an advisory lock lets one process sweep at a
time, the others skip that round. A failed sweep is logged and tried again next round: retention
must never take the server down with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from waypost.core.timefmt import now_ms
from waypost.errors import OutpostError
from waypost.storage.protocols import LogRetention
from waypost.storage.retention import Deleted

log = logging.getLogger(__name__)
DAY_MS = 86_400_000


class RetentionSweeper:
    def __init__(
        self,
        store: LogRetention,
        *,
        ttl_days: int,
        interval_seconds: float,
        batch_size: int,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._store = store
        self._ttl_ms = ttl_days * DAY_MS
        self._interval = interval_seconds
        self._batch_size = batch_size
        self._clock = clock
        self._stopped = asyncio.Event()
        self._current: asyncio.Future[Deleted | None] | None = None

    @property
    def enabled(self) -> bool:
        return self._ttl_ms > 0

    async def sweep(self) -> Deleted | None:
        """Delete everything older than the retention period now; None if another process is."""
        cutoff = self._clock() - self._ttl_ms
        deleted = await self._store.delete_logs_before(cutoff, self._batch_size)
        if deleted is not None and (deleted.events or deleted.attempts):
            log.info(
                "retention: deleted %d events and %d attempts older than %d days",
                deleted.events,
                deleted.attempts,
                self._ttl_ms // DAY_MS,
            )
        return deleted

    async def run(self) -> None:
        """Sweep until `stop()`; returns at once when retention is off."""
        while self.enabled and not self._stopped.is_set():
            self._current = asyncio.ensure_future(self.sweep())
            try:
                await self._current
            except asyncio.CancelledError:
                if not self._stopped.is_set():
                    raise
            except OutpostError as exc:  # the database may be down: next round will do
                log.warning("retention sweep failed: %s", exc)
            except Exception:  # a bug here must not stop the API and deliveries beside it
                log.exception("retention sweep failed")
            finally:
                self._current = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self._interval)

    def stop(self) -> None:
        """End `run()` soon: a sweep in progress is cancelled between or inside batches (each
        batch is one transaction, so it is either done or not), so shutdown does not wait for
        a long first sweep."""
        self._stopped.set()
        if self._current is not None:
            self._current.cancel()
