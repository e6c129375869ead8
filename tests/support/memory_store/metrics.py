"""Metrics for the memory backend: the tallies of storage/metrics_sql.py, added up in Python."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from waypost.core.metrics import PERCENTILES, DimensionValue, MetricsQuery, Tally
from waypost.core.models import Attempt, Event

Group = tuple[int | None, tuple[DimensionValue, ...]]


def event_tallies(query: MetricsQuery, events: Iterable[Event]) -> list[Tally]:
    counts: dict[Group, int] = {}
    wanted_destinations = query.filters.get("destination_id")
    fanned = "destination_id" in query.dimensions
    for e in events:
        if not (query.start <= e.time < query.end):
            continue
        if not _matches(query, {"tenant_id": e.tenant_id, "topic": e.topic}):
            continue
        destinations: Iterable[str] = e.matched_destination_ids
        if wanted_destinations:
            picked = [d for d in e.matched_destination_ids if d in wanted_destinations]
            if not picked:
                continue
            destinations = picked
        shares: Iterable[str | None] = destinations if fanned else (None,)
        for destination in shares:
            values = {"tenant_id": e.tenant_id, "topic": e.topic, "destination_id": destination}
            group = (_bucket(query, e.time), tuple(values[d] or "" for d in query.dimensions))
            counts[group] = counts.get(group, 0) + 1
    return [Tally(b, key, {"count": n}) for (b, key), n in counts.items()]


def attempt_tallies(query: MetricsQuery, attempts: Iterable[Attempt]) -> list[Tally]:
    sums: dict[Group, dict[str, int | None]] = {}
    latencies: dict[Group, list[int]] = {}
    for a in attempts:
        if not (query.start <= a.time < query.end):
            continue
        values: dict[str, DimensionValue] = {
            "tenant_id": a.tenant_id,
            "destination_id": a.destination_id,
            "destination_type": a.destination_type,
            "topic": a.topic,
            "status": a.status,
            "code": a.code,
            "manual": a.manual,
            "attempt_number": a.attempt_number,
        }
        if not _matches(query, values):
            continue
        group = (_bucket(query, a.time), tuple(values[d] for d in query.dimensions))
        tally = sums.setdefault(group, dict.fromkeys(query.tallies, 0))
        for name in query.tallies:
            if name not in PERCENTILES:
                tally[name] = (tally[name] or 0) + _contribution(name, a)
        if a.latency_ms is not None:
            latencies.setdefault(group, []).append(a.latency_ms)
    for group, tally in sums.items():
        recorded = sorted(latencies.get(group, ()))
        for name in query.tallies:
            if name in PERCENTILES:
                tally[name] = _nearest_rank(recorded, PERCENTILES[name])
    return [Tally(b, key, values) for (b, key), values in sums.items()]


def _nearest_rank(ordered: list[int], percent: int) -> int | None:
    """The value at 1-based rank ceil(percent * n / 100) (metrics.PERCENTILES)."""
    if not ordered:
        return None
    return ordered[max(1, -(-percent * len(ordered) // 100)) - 1]


def _matches(query: MetricsQuery, values: dict[str, Any]) -> bool:
    for key, allowed in query.filters.items():
        if key in values and values[key] not in allowed:
            return False
    return True


def _bucket(query: MetricsQuery, time: int) -> int | None:
    return None if query.granularity is None else query.granularity.bucket(time)


def _contribution(name: str, a: Attempt) -> int:
    if name == "count":
        return 1
    if name == "successful":
        return int(a.status == "success")
    if name == "failed":
        return int(a.status == "failed")
    if name == "first_attempts":
        return int(a.attempt_number == 1 and not a.manual)
    if name == "retries":
        return int(a.attempt_number > 1)
    if name == "manual_retries":
        return int(a.manual)
    if name == "latency_count":
        return int(a.latency_ms is not None)
    if name == "latency_sum":
        return a.latency_ms or 0
    assert name == "attempt_number_sum", name
    return a.attempt_number
