"""Sends the outbox of operator events through the sink: at least once.

Events are claimed oldest first with a lease (another process, or this one after a crash, sends
them again once it ends), a batch sent at once (so a sink may see neighbours out of order: each
carries its `time`), deleted once the sink took them, and otherwise tried again with a growing
delay. A restart releases this process's leases (embedded mode), so a kill -9
costs no event. An event the sink keeps refusing for `MAX_AGE_MS` is dropped, with an error log:
a sink that is gone for good must not grow the outbox forever.
"""

from __future__ import annotations

import asyncio
import logging

from waypost.core.operator_records import OperatorRecord
from waypost.core.timefmt import now_ms
from waypost.operator.sinks import Sink, SinkError
from waypost.storage.protocols import OperatorStore

log = logging.getLogger(__name__)

BATCH = 32
LEASE_MS = 20_000  # longer than a batch of sends can take (sent together, each ≤ 5 s or so)
IDLE_SECONDS = 1.0  # the longest wait before looking again (retries, other processes' events)
ERROR_PAUSE_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 300
MAX_AGE_MS = 24 * 3600 * 1000


def backoff_ms(tries: int) -> int:
    """Wait before sending again an event that failed `tries` times: 1 s, 2 s, 4 s ... 5 min."""
    return min(1 << min(max(tries - 1, 0), 16), MAX_BACKOFF_SECONDS) * 1000


class Relay:
    def __init__(self, store: OperatorStore, sink: Sink) -> None:
        self._store = store
        self.sink = sink
        self._stopping = asyncio.Event()
        self.healthy = True

    def stop(self) -> None:
        """Finish: send what is due, then return from `run()`."""
        self._stopping.set()

    async def run(self) -> None:
        try:
            while True:
                try:
                    sent = await self._pass()
                    self.healthy = True
                except Exception as exc:
                    self.healthy = False
                    log.error("operator events: %r; retrying in %.0f s", exc, ERROR_PAUSE_SECONDS)
                    if self._stopping.is_set():
                        return
                    await asyncio.sleep(ERROR_PAUSE_SECONDS)
                    continue
                if not sent:
                    if self._stopping.is_set():
                        return
                    await self._idle()
        finally:
            await self.sink.close()

    async def _idle(self) -> None:
        waiting = asyncio.create_task(self._store.wait_for_operator_events(IDLE_SECONDS))
        stopping = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in (waiting, stopping):
            task.cancel()

    async def _pass(self) -> int:
        """Claim and send one batch; how many were claimed."""
        records = await self._store.claim_operator_events(BATCH, LEASE_MS)
        if not records:
            return 0
        failures = await asyncio.gather(*(self._send(r) for r in records))
        now = now_ms()
        done: list[str] = []
        retry: list[tuple[str, int]] = []
        for record, failure in zip(records, failures, strict=True):
            if failure is None:
                done.append(record.id)
            elif now - record.created_at >= MAX_AGE_MS:
                log.error("dropping operator event %s (%s): %s", record.id, record.topic, failure)
                done.append(record.id)
            else:
                retry.append((record.id, now + backoff_ms(record.tries + 1)))
        await self._store.settle_operator_events(done, retry)
        return len(records)

    async def _send(self, record: OperatorRecord) -> str | None:
        """None when sent; else why not."""
        try:
            await self.sink.send(record)
        except SinkError as exc:
            log.warning("operator event %s (%s) not sent: %s", record.id, record.topic, exc)
            return str(exc)
        except Exception as exc:
            log.exception("operator event %s: the %s sink failed", record.id, self.sink.name)
            return repr(exc)
        return None
