"""What Prometheus costs the hot paths: the publish and attempt hooks, off and on.

Off, the publisher and the worker test one attribute for None. On, each publish observes a
histogram and a counter, each attempt two counters and a histogram (three with a retry): in the
in-memory registry (one process) and in the multiprocess mode of embedded mode's two processes
(values in memory-mapped files). Run: `flock /tmp/bench.lock .venv/bin/python
bench/prometheus_hooks.py [multiprocess]`. The mode is fixed when prometheus_client is first
imported, hence one mode per run.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import replace

from waypost.core.models import Attempt, DeliveryTask, Event, Outcome
from waypost.prometheus.exporter import PrometheusExporter, _folder

N = 200_000


class _NoStore:
    async def count_due(self, now: int, limit: int) -> int:
        return 0

    async def next_visible_at(self) -> int | None:
        return None


def per_call_ns(run: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter_ns()
        for _ in range(N):
            run()
        best = min(best, (time.perf_counter_ns() - started) / N)
    return best


def main() -> None:
    multiprocess = sys.argv[1:] == ["multiprocess"]
    folder = _folder(multiprocess, False)
    exporter = PrometheusExporter(
        _NoStore(), lambda: True, {}, ("webhook",), folder=folder, owns_folder=True
    )
    event = Event("e", "t", "a", 0, b"{}", True, {}, "", ("d1", "d2"))
    task = DeliveryTask(1, event, "d1", 1)
    attempt = Attempt("a", "t", "e", "d1", "webhook", "a", "success", 0, 1, False, latency_ms=12)
    success = Outcome(task, attempt)
    retried = Outcome(task, replace(attempt, status="failed"), retry_at=1)
    observer = None

    def off() -> None:
        if observer is not None:
            raise AssertionError

    started = time.time_ns()
    print(f"mode: {'multiprocess' if multiprocess else 'one process'}")
    print(f"off (one `is None` test): {per_call_ns(off):.0f} ns")
    print(f"publish hook: {per_call_ns(lambda: exporter.published(event, False, started)):.0f} ns")
    print(f"attempt hook (success): {per_call_ns(lambda: exporter.attempted(success)):.0f} ns")
    print(f"attempt hook (retry): {per_call_ns(lambda: exporter.attempted(retried)):.0f} ns")
    scrape_started = time.perf_counter()
    body, _ = asyncio.run(exporter.scrape())
    print(f"a scrape: {(time.perf_counter() - scrape_started) * 1000:.1f} ms, {len(body)} bytes")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
