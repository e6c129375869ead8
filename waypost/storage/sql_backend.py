"""`SqlBackend`: what the SQLite and PostgreSQL backends do alike around their SQL.

Each backend runs its own dialect's `*_ops` functions on its own `Database`: SQLite's are plain
functions its writer thread runs, PostgreSQL's are coroutines on a pooled connection. A method
body cannot call both kinds and still be type-checked, so the one-line calls of those stay in
each backend.py, one module per concern in both (tenant_ops, log_ops, task_ops, operator_ops,
recovery_ops, metrics_ops, retention_ops). What is decided around the calls is written here
once: the wake-ups of the delivery loop and the operator relay, the destination cache, and
what `finish` does with a judge installed.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping

from waypost.core.models import Destination, Outcome
from waypost.core.operator_records import OutcomeJudge
from waypost.storage import judging
from waypost.storage.destination_cache import DestinationCache, find
from waypost.storage.judging import DestinationKey
from waypost.storage.sealing import Sealer
from waypost.storage.waker import Waker

Seen = Mapping[DestinationKey, Destination | None]  # the destinations the worker saw
Judged = tuple[dict[DestinationKey, str], int]  # (destinations disabled, events queued)


class SqlBackend(abc.ABC):
    def __init__(self, sealer: Sealer | None, cache: DestinationCache) -> None:
        self._sealer = sealer  # None: credentials stored as plain JSON (tests only)
        self._cache = cache
        self._work = Waker()  # tasks were queued: the delivery loop's
        self._operator_work = Waker()  # operator events were queued: the relay's
        self._judge: OutcomeJudge | None = None  # operator events and alerts: off by default

    # What each dialect reads and writes in its own database

    @abc.abstractmethod
    async def _read_destinations(self, tenant_id: str) -> list[Destination]:
        """The tenant's live destinations, from the database."""

    @abc.abstractmethod
    async def _write_judged(
        self, outcomes: list[Outcome], destinations: Seen, judge: OutcomeJudge
    ) -> Judged:
        """`operator_ops.finish_judged` in the next commit."""

    def _forget(self, tenant_id: str) -> None:
        """Drop the tenant's cached destinations after this process changed them."""
        self._cache.forget(tenant_id)

    # Destinations, cached per tenant

    async def list_destinations(self, tenant_id: str) -> list[Destination]:
        return await self._cache.get(tenant_id, lambda: self._read_destinations(tenant_id))

    async def get_destination(self, tenant_id: str, destination_id: str) -> Destination | None:
        return find(await self.list_destinations(tenant_id), destination_id)

    # Waiting for work

    def wake(self) -> None:
        self._work.set()

    async def wait_for_work(self, timeout: float) -> None:
        """Return when tasks were queued (SQLite: by this process or its peer; PostgreSQL: by any
        process, heard by NOTIFY), or after `timeout` seconds."""
        await self._work.wait_at_most(timeout)

    async def wait_for_operator_events(self, timeout: float) -> None:
        """Return when this process queued operator events, or after `timeout` seconds (events
        other processes queued wait for that poll, or for their own relay)."""
        await self._operator_work.wait_at_most(timeout)

    # Operator events and alerts

    def judge_outcomes(self, judge: OutcomeJudge | None) -> None:
        self._judge = judge

    async def _finish_judged(self, outcomes: list[Outcome], judge: OutcomeJudge) -> None:
        destinations = await judging.destinations_of(outcomes, self.get_destination)
        disabled, queued = await self._write_judged(outcomes, destinations, judge)
        judging.report_disabled(disabled)
        # Other processes hear of it too: SQLite's peer from `_forget`, PostgreSQL's from the
        # NOTIFY sent at commit.
        for tenant_id in {tenant_id for tenant_id, _ in disabled}:
            self._forget(tenant_id)
        if queued:
            self._operator_work.set()
