"""The instruments and the exposition. Imported only when `PROMETHEUS_ENABLED` is set.

Labels stay few and bounded: a destination type, an attempt's status, a publish's result. No
tenant, destination or event id: those belong in the logs and the attempts API.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from waypost import __version__
from waypost.core.models import Event, Outcome
from waypost.core.timefmt import now_ms
from waypost.delivery.retry import exhausted
from waypost.errors import StoreError
from waypost.prometheus.seams import MULTIPROCESS_ENV, Backlog

# The multiprocess mode is chosen when the client is first imported: see `_folder`.
_LEGACY_ENV = "prometheus_multiproc_dir"

BACKLOG_CAP = 10_000  # due tasks counted at most per scrape: a bounded index range
READ_TIMEOUT_SECONDS = 1.0  # a scrape answers even while the store hangs
PUBLISH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ATTEMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class _Kind:
    """A destination type's series."""

    success: Any
    failed: Any
    seconds: Any
    retries: Any
    exhausted: Any


def _folder(shared_with_child: bool, in_delivery_process: bool) -> str | None:
    """The multiprocess folder this process writes to (None: the in-memory registry). Runs
    before `prometheus_client` is imported, which reads the variable once."""
    if in_delivery_process:
        return os.environ.get(MULTIPROCESS_ENV) or None  # the server's, inherited
    os.environ.pop(_LEGACY_ENV, None)
    if not shared_with_child:
        os.environ.pop(MULTIPROCESS_ENV, None)  # a stray one would switch the client's mode
        return None
    # A fresh folder per server run: earlier runs' counts never leak in, and a second server
    # started by mistake on the same data folder cannot wipe the first one's files.
    folder = tempfile.mkdtemp(prefix="outpost-prometheus-")
    os.environ[MULTIPROCESS_ENV] = folder
    return folder


def start_exporter(
    *,
    backlog: Backlog,
    delivery_health: Callable[[], bool | None],
    dependencies: dict[str, Callable[[], Awaitable[None]]],
    destination_types: Iterable[str],
    shared_with_child: bool,
    in_delivery_process: bool,
) -> PrometheusExporter:
    folder = _folder(shared_with_child, in_delivery_process)
    return PrometheusExporter(
        backlog,
        delivery_health,
        dependencies,
        tuple(destination_types),
        folder=folder,
        owns_folder=folder is not None and not in_delivery_process,
    )


class PrometheusExporter:
    def __init__(
        self,
        backlog: Backlog,
        delivery_health: Callable[[], bool | None],
        dependencies: dict[str, Callable[[], Awaitable[None]]],
        destination_types: tuple[str, ...],
        *,
        folder: str | None,
        owns_folder: bool,
    ) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram
        from prometheus_client.multiprocess import MultiProcessCollector
        from prometheus_client.process_collector import ProcessCollector
        from prometheus_client.registry import Collector

        self._backlog = backlog
        self._delivery_health = delivery_health
        self._dependencies = dependencies
        self._folder = folder if owns_folder else None
        instruments = CollectorRegistry(auto_describe=True)
        self._publish_seconds = Histogram(
            "outpost_publish_duration_seconds",
            "Time to accept a publish: match destinations and commit the event with its tasks",
            buckets=PUBLISH_BUCKETS,
            registry=instruments,
        )
        published = Counter(
            "outpost_published_events",
            "Publishes answered 202, by result (accepted, duplicate)",
            ["result"],
            registry=instruments,
        )
        self._accepted = published.labels("accepted")
        self._duplicate = published.labels("duplicate")
        self._queued = Counter(
            "outpost_queued_deliveries",
            "Delivery tasks queued by accepted publishes (one per matched destination)",
            registry=instruments,
        )
        self._attempts = Counter(
            "outpost_delivery_attempts",
            "Delivery attempts recorded, by destination type and status (success, failed)",
            ["destination_type", "status"],
            registry=instruments,
        )
        self._attempt_seconds = Histogram(
            "outpost_delivery_attempt_duration_seconds",
            "Time a delivery attempt took, by destination type",
            ["destination_type"],
            buckets=ATTEMPT_BUCKETS,
            registry=instruments,
        )
        self._retries = Counter(
            "outpost_retries_scheduled",
            "Automatic retries scheduled after a failed attempt, by destination type",
            ["destination_type"],
            registry=instruments,
        )
        self._exhausted = Counter(
            "outpost_retries_exhausted",
            "Failed attempts after which no retry is left, by destination type",
            ["destination_type"],
            registry=instruments,
        )
        # Every type's series exist from the start, so that rate() and absent() see zeros.
        self._kinds: dict[str, _Kind] = {}
        for kind in destination_types:
            self._kind(kind)

        if folder is not None:  # the values are in the folder's files, this process's among them
            self._exposed = CollectorRegistry(auto_describe=True)
            MultiProcessCollector(self._exposed, folder)  # type: ignore[no-untyped-call]
        else:
            self._exposed = instruments
        ProcessCollector(registry=self._exposed)  # process_*: the process that is scraped
        exporter = self

        class Live(Collector):
            def collect(self) -> Iterator[object]:  # type: ignore[override]
                return iter(exporter._snapshot)

        self._snapshot: list[object] = []
        self._exposed.register(Live())
        self._scraping = asyncio.Lock()

    # PublishObserver (clock: ns since the epoch, shared with the OpenTelemetry observer)

    def publishing(self) -> int:
        return time.time_ns()

    def published(self, event: Event, duplicate: bool, started_ns: int) -> None:
        self._publish_seconds.observe(max(0, time.time_ns() - started_ns) / 1e9)
        if duplicate:
            self._duplicate.inc()
            return
        self._accepted.inc()
        if event.matched_destination_ids:
            self._queued.inc(len(event.matched_destination_ids))

    # OutcomeObserver

    def attempted(self, outcome: Outcome) -> None:
        attempt = outcome.attempt
        if attempt is None:
            return
        kind = self._kinds.get(attempt.destination_type) or self._kind(attempt.destination_type)
        (kind.success if attempt.status == "success" else kind.failed).inc()
        if attempt.latency_ms is not None:
            kind.seconds.observe(attempt.latency_ms / 1000)
        if outcome.retry_at is not None:
            kind.retries.inc()
        elif exhausted(outcome):
            kind.exhausted.inc()

    def _kind(self, destination_type: str) -> _Kind:
        """One type's series, bound once: `labels()` takes a lock and builds a key each call."""
        found = self._kinds[destination_type] = _Kind(
            self._attempts.labels(destination_type, "success"),
            self._attempts.labels(destination_type, "failed"),
            self._attempt_seconds.labels(destination_type),
            self._retries.labels(destination_type),
            self._exhausted.labels(destination_type),
        )
        return found

    # Exposition

    async def scrape(self) -> tuple[bytes, str]:
        from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

        async with self._scraping:
            self._snapshot = await self._live_families()
            # Off the event loop: in multiprocess mode this reads every process's file.
            body = await asyncio.to_thread(generate_latest, self._exposed)
        return body, CONTENT_TYPE_LATEST

    async def _live_families(self) -> list[object]:
        """What the store and the health checks say now (gauges, not counters)."""
        from prometheus_client.core import GaugeMetricFamily

        families: list[object] = []
        info = GaugeMetricFamily("outpost_build_info", "This server's version", labels=["version"])
        info.add_metric([__version__], 1)
        families.append(info)
        now = now_ms()
        try:
            due = await asyncio.wait_for(
                self._backlog.count_due(now, BACKLOG_CAP), READ_TIMEOUT_SECONDS
            )
            earliest = await asyncio.wait_for(self._backlog.next_visible_at(), READ_TIMEOUT_SECONDS)
        except (StoreError, TimeoutError):
            pass  # the store did not answer: no backlog figures (outpost_dependency_up says why)
        else:
            families.append(
                GaugeMetricFamily(
                    "outpost_due_tasks",
                    f"Delivery tasks due and not claimed (counted up to {BACKLOG_CAP})",
                    value=due,
                )
            )
            age = max(0, now - earliest) / 1000 if earliest is not None else 0.0
            families.append(
                GaugeMetricFamily(
                    "outpost_oldest_due_task_age_seconds",
                    "How long the longest-waiting due task has been due (0: none is)",
                    value=age,
                )
            )
        healthy = self._delivery_health()
        if healthy is not None:
            families.append(
                GaugeMetricFamily(
                    "outpost_delivery_healthy",
                    "1 while this server's delivery worker (or delivery process) can deliver",
                    value=1 if healthy else 0,
                )
            )
        names = list(self._dependencies)
        reachable = await asyncio.gather(*(self._reachable(self._dependencies[n]) for n in names))
        up = GaugeMetricFamily(
            "outpost_dependency_up", "1 while a dependency answers", labels=["dependency"]
        )
        for name, ok in zip(names, reachable, strict=True):
            up.add_metric([name], 1 if ok else 0)
        families.append(up)
        return families

    @staticmethod
    async def _reachable(check: Callable[[], Awaitable[None]]) -> bool:
        try:
            await asyncio.wait_for(check(), READ_TIMEOUT_SECONDS)
        except (StoreError, TimeoutError):
            return False
        return True

    def close(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
