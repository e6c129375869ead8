"""Event-loop lag under hostile requests: a `/healthz` poller and the probes of issue 13.

One server process serves every tenant on one event loop, so a request that computes for a second
stalls everyone for a second. The poller asks `/healthz` back to back on one kept-alive connection
from a thread of its own; a poll that overlaps a stall takes as long as the stall. The lag a probe
causes is the slowest poll overlapping it, minus the poller's typical (median) poll time at rest,
so a loaded machine's steady slowness is not counted as the probe's.

Used by tests/e2e/test_hostile_input.py (asserts) and bench/lag.py (reports).
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx


class HealthPoller:
    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._polls: list[tuple[float, float]] = []  # (start, end), perf_counter seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="healthz-poller", daemon=True)
        self._lock = threading.Lock()

    def __enter__(self) -> HealthPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        conn = http.client.HTTPConnection(self._host, self._port, timeout=120)
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                conn.request("GET", "/healthz")
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(self._host, self._port, timeout=120)
            ended = time.perf_counter()
            with self._lock:
                self._polls.append((started, ended))
            time.sleep(0.002)  # leave the server (and this 2-core machine) some room
        conn.close()

    def polls(self) -> list[tuple[float, float]]:
        with self._lock:
            return list(self._polls)

    def rest_time(self, window: float = 0.5) -> float:
        """The median poll time over `window` seconds with nothing else going on."""
        time.sleep(window)
        recent = [end - start for start, end in self.polls() if end > time.perf_counter() - window]
        return statistics.median(recent) if recent else 0.0

    def worst_during(self, start: float, end: float) -> float:
        """The slowest poll that overlapped [start, end] (waiting for one that ends after it)."""
        deadline = time.perf_counter() + 5
        while time.perf_counter() < deadline and not any(s > end for s, _ in self.polls()):
            time.sleep(0.005)
        overlapping = [e - s for s, e in self.polls() if s <= end and e >= start]
        return max(overlapping, default=0.0)


@dataclass
class Outcome:
    name: str
    statuses: list[int]
    request_seconds: float  # the slowest of the probe's requests
    lag_seconds: float  # worst /healthz poll during the probe, minus the poll time at rest
    rss_mb: float  # the server process's resident memory after the probe


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


Probe = Callable[[httpx.Client, str], list[tuple[int, float]]]


def _timed(send: Callable[[], httpx.Response]) -> tuple[int, float]:
    started = time.perf_counter()
    try:
        status = send().status_code
    except httpx.TimeoutException:
        status = 0  # no answer within the client's timeout
    return status, time.perf_counter() - started


def _destination(topics: object, filter: object = None) -> dict[str, object]:
    body: dict[str, object] = {
        "type": "webhook",
        "topics": topics,
        "config": {"url": "http://127.0.0.1:9/hook"},
    }
    if filter is not None:
        body["filter"] = filter
    return body


def topics_probe(count: int) -> Probe:
    topics = [f"topic.{i:06d}" for i in range(count)]

    def run(client: httpx.Client, tenant: str) -> list[tuple[int, float]]:
        url = f"/tenants/{tenant}/destinations"
        return [_timed(lambda: client.post(url, json=_destination(topics)))]

    return run


def wildcard_probe(length: int) -> Probe:
    # Two long patterns that differ only at the end: telling whether one covers the other made
    # the old backtracking matcher try every split of the run of "a"s.
    topics = ["*" + "a" * length + "b", "*" + "a" * length + "c"]

    def run(client: httpx.Client, tenant: str) -> list[tuple[int, float]]:
        url = f"/tenants/{tenant}/destinations"
        return [_timed(lambda: client.post(url, json=_destination(topics)))]

    return run


def big_filters_probe(destinations: int, filter_bytes: int, publishes: int) -> Probe:
    # A filter the size of the body limit: one `$in` list of short strings that never matches.
    items = [f"v{i:07d}" for i in range(filter_bytes // 11)]
    filter = {"data": {"tag": {"$in": items}}}

    def run(client: httpx.Client, tenant: str) -> list[tuple[int, float]]:
        url = f"/tenants/{tenant}/destinations"
        results = [
            _timed(lambda: client.post(url, json=_destination("*", filter)))
            for _ in range(destinations)
        ]
        event = {"tenant_id": tenant, "topic": "user.created", "data": {"tag": "other"}}
        results += [_timed(lambda: client.post("/publish", json=event)) for _ in range(publishes)]
        return results

    return run


def deep_json_probe(levels: int) -> Probe:
    nested = b"[" * levels + b"]" * levels

    def run(client: httpx.Client, tenant: str) -> list[tuple[int, float]]:
        headers = {"content-type": "application/json"}
        publish = b'{"tenant_id":"' + tenant.encode() + b'","data":{"x":' + nested + b"}}"
        create = b'{"type":"webhook","topics":"*","filter":{"x":' + nested + b"}}"
        tenant_body = b'{"metadata":' + nested + b"}"
        return [
            _timed(lambda: client.post("/publish", content=publish, headers=headers)),
            _timed(
                lambda: client.post(
                    f"/tenants/{tenant}/destinations", content=create, headers=headers
                )
            ),
            _timed(lambda: client.put(f"/tenants/{tenant}", content=tenant_body, headers=headers)),
        ]

    return run


def far_future_metrics_probe() -> Probe:
    def run(client: httpx.Client, tenant: str) -> list[tuple[int, float]]:
        ranges = [
            ("9999-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1M"),
            ("9999-06-01T00:00:00Z", "9999-12-31T23:59:59Z", "12M"),
            ("9999-12-01T00:00:00Z", "9999-12-31T23:59:59Z", "4w"),
            ("0001-01-01T00:00:00Z", "0001-03-01T00:00:00Z", "1w"),
            ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1M"),
        ]
        results = []
        for start, end, granularity in ranges:
            params = {
                "time[start]": start,
                "time[end]": end,
                "granularity": granularity,
                "measures": "count",
                "tenant_id": tenant,
            }
            results.append(_timed(partial(client.get, "/metrics/events", params=params)))
        return results

    return run


def hostile_probes(*, full: bool) -> list[tuple[str, Probe]]:
    """The issue's inputs; `full` adds the ones that took minutes before the fix."""
    probes: list[tuple[str, Probe]] = [
        ("4,000 topics on one destination", topics_probe(4000)),
        ("two 12 KB wildcard topics", wildcard_probe(12_000)),
        (
            "20 destinations with ~1 MB filters, then 5 publishes",
            big_filters_probe(20, 1_000_000, 5),
        ),
        ("JSON nested 400,000 levels (publish, destination, tenant)", deep_json_probe(400_000)),
        ("metrics buckets near year 1 and 9999", far_future_metrics_probe()),
    ]
    if full:
        probes.insert(1, ("90,000 topics on one destination", topics_probe(90_000)))
    return probes


def run_probe(
    poller: HealthPoller, client: httpx.Client, pid: int, name: str, probe: Probe, tenant: str
) -> Outcome:
    client.put(f"/tenants/{tenant}")
    rest = poller.rest_time()
    start = time.perf_counter()
    results = probe(client, tenant)
    end = time.perf_counter()
    worst = poller.worst_during(start, end)
    return Outcome(
        name,
        [status for status, _ in results],
        max(seconds for _, seconds in results),
        max(0.0, worst - rest),
        rss_mb(pid),
    )
