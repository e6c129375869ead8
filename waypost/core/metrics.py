"""The metrics API's domain (contract.md §1.6.17): what may be asked, time buckets, and the answer's
rows.

The stores compute *tallies* (counts and sums per time bucket and dimension combination) with
SQL aggregates; everything derived from them (rates, error rate, averages), the zero-filled
slot grid and the ordering of the answer is computed here, once, for every backend.

Decisions where the contract leaves room:
- Dimension values are strings on the wire (`manual` "true"/"false", `attempt_number` "2"), as
  the OpenAPI document types them and the SDKs parse them; Go's ints and booleans would make
  `outpost_sdk` 1.7.0 fail to read the answer.
- Grouping events by `destination_id` counts an event once per matched destination, so events
  that matched none are not in such an answer; `filters[destination_id]` with that dimension
  keeps only the filtered destinations' shares, without it counts each matching event once.
- Points come in bucket order, then dimension-value order (`attempt_number` numerically).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Literal

from waypost.core import timefmt
from waypost.errors import InputError

Kind = Literal["events", "attempts"]
DimensionValue = str | int | bool

ROW_LIMIT = 100_000
TOO_BROAD = "query too broad: try fewer dimensions, more filters, or a shorter time range"

EVENT_MEASURES = ("count", "rate")
EVENT_DIMENSIONS = ("tenant_id", "topic", "destination_id")
ATTEMPT_MEASURES = (
    "count",
    "successful_count",
    "failed_count",
    "error_rate",
    "first_attempt_count",
    "retry_count",
    "manual_retry_count",
    "avg_attempt_number",
    "rate",
    "successful_rate",
    "failed_rate",
    "avg_latency",
    "p50_latency",
    "p95_latency",
    "p99_latency",
)
ATTEMPT_DIMENSIONS = (
    "tenant_id",
    "destination_id",
    "destination_type",
    "topic",
    "status",
    "code",
    "manual",
    "attempt_number",
)
MEASURES: dict[Kind, tuple[str, ...]] = {"events": EVENT_MEASURES, "attempts": ATTEMPT_MEASURES}
DIMENSIONS: dict[Kind, tuple[str, ...]] = {
    "events": EVENT_DIMENSIONS,
    "attempts": ATTEMPT_DIMENSIONS,
}

# What a store adds up per group. Every measure is one of these, or a ratio of two of them.
TALLIES = (
    "count",
    "successful",
    "failed",
    "first_attempts",
    "retries",
    "manual_retries",
    "attempt_number_sum",
    "latency_count",  # attempts with a recorded latency
    "latency_sum",
    "latency_p50",  # percentiles are picks, not sums: None where no latency is recorded
    "latency_p95",
    "latency_p99",
)
# Latency percentiles are nearest-rank over the group's recorded latencies, sorted ascending:
# the value at 1-based rank ceil(p/100 * n) (PostgreSQL's percentile_disc). Every store computes
# exactly this, so answers agree across stores and with an independent computation.
PERCENTILES = {"latency_p50": 50, "latency_p95": 95, "latency_p99": 99}
_TALLIES_OF_MEASURE: dict[str, tuple[str, ...]] = {
    "count": ("count",),
    "rate": ("count",),
    "successful_count": ("successful",),
    "successful_rate": ("successful",),
    "failed_count": ("failed",),
    "failed_rate": ("failed",),
    "error_rate": ("count", "failed"),
    "first_attempt_count": ("first_attempts",),
    "retry_count": ("retries",),
    "manual_retry_count": ("manual_retries",),
    "avg_attempt_number": ("count", "attempt_number_sum"),
    "avg_latency": ("latency_count", "latency_sum"),
    "p50_latency": ("latency_p50",),
    "p95_latency": ("latency_p95",),
    "p99_latency": ("latency_p99",),
}

_GRANULARITY = re.compile(r"^(?P<amount>[1-9][0-9]{0,2})(?P<unit>[smhdwM])$")
_UNIT_MAX = {"s": 60, "m": 60, "h": 24, "d": 31, "w": 4, "M": 12}
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
# Weeks start on Sunday: 1970-01-04 is the first Sunday after the epoch (a Thursday).
_WEEK_ORIGIN_MS = 3 * 86_400_000


@dataclass(frozen=True, slots=True)
class Granularity:
    """`<amount><unit>`: a bucket is `amount` units long, aligned from the epoch (contract.md
    §1.6.17)."""

    amount: int
    unit: str

    @staticmethod
    def parse(text: str) -> Granularity:
        match = _GRANULARITY.match(text)
        unit = match["unit"] if match else ""
        if match is None or not 1 <= int(match["amount"]) <= _UNIT_MAX[unit]:
            raise InputError(
                f'invalid granularity "{text}": expected <number><unit> with unit s (1-60), '
                "m (1-60), h (1-24), d (1-31), w (1-4) or M (1-12)"
            )
        return Granularity(int(match["amount"]), unit)

    @property
    def text(self) -> str:
        return f"{self.amount}{self.unit}"

    @property
    def calendar(self) -> bool:
        """Months vary in length, so their buckets are counted in months, not milliseconds."""
        return self.unit == "M"

    @property
    def step_ms(self) -> int:
        assert not self.calendar
        return self.amount * _UNIT_MS[self.unit]

    @property
    def origin_ms(self) -> int:
        return _WEEK_ORIGIN_MS if self.unit == "w" else 0

    def bucket(self, ms: int) -> int:
        """The index of the bucket holding instant `ms` (what the stores compute in SQL)."""
        if self.calendar:
            year, month = _year_month(ms)
            return ((year - 1970) * 12 + month - 1) // self.amount
        return (ms - self.origin_ms) // self.step_ms

    def start(self, index: int) -> int:
        if self.calendar:
            return _month_start(index * self.amount)
        return self.origin_ms + index * self.step_ms

    def seconds(self, index: int) -> float:
        return (self.start(index + 1) - self.start(index)) / 1000


def _year_month(ms: int) -> tuple[int, int]:
    t = time.gmtime(ms // 1000)
    return t.tm_year, t.tm_mon


def _month_start(months_since_1970: int) -> int:
    # Integer arithmetic, not calendar.timegm: the bucket after one in December 9999 starts in
    # year 10000, which the datetime types cannot hold (a 500 before).
    years, month = divmod(months_since_1970, 12)
    return _days_from_civil(1970 + years, month + 1) * 86_400_000


def _days_from_civil(year: int, month: int) -> int:
    """Days from 1970-01-01 to the first of `month` of `year`, proleptic Gregorian."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


@dataclass(frozen=True, slots=True)
class MetricsQuery:
    """One metrics request, validated. Filters hold typed values (`manual`: bool,
    `attempt_number`: int, others str); an absent key does not filter."""

    kind: Kind
    start: int  # epoch ms, inclusive
    end: int  # exclusive
    measures: tuple[str, ...]
    granularity: Granularity | None = None
    dimensions: tuple[str, ...] = ()
    filters: Mapping[str, tuple[DimensionValue, ...]] = field(default_factory=dict)

    @property
    def tallies(self) -> tuple[str, ...]:
        """The tallies the requested measures need, in `TALLIES` order; always `count`, which
        tells groups with rows from the one row an ungrouped aggregate over nothing gives."""
        needed = {"count"} | {t for m in self.measures for t in _TALLIES_OF_MEASURE[m]}
        return tuple(t for t in TALLIES if t in needed)

    def slots(self) -> range:
        """The bucket indexes from the one holding `start` up to, excluding, `end`."""
        assert self.granularity is not None
        first = self.granularity.bucket(self.start)
        last = self.granularity.bucket(self.end - 1)
        return range(first, last + 1)


@dataclass(frozen=True, slots=True)
class Tally:
    """One group of a store's answer: its bucket (None without granularity), its dimension
    values in the query's order, and the tallies the query asked for."""

    bucket: int | None
    key: tuple[DimensionValue, ...]
    values: Mapping[str, int | None]  # None only for a percentile with no latency to pick


def parse_time(name: str, text: str | None) -> int:
    if not text:
        raise InputError("time[start] and time[end] are required")
    try:
        return timefmt.parse(text)
    except ValueError:
        raise InputError(f"invalid {name}: expected RFC 3339 (e.g. 2026-03-02T00:00:00Z)") from None


def build_query(
    kind: Kind,
    *,
    start: str | None,
    end: str | None,
    measures: Iterable[str],
    granularity: str | None,
    dimensions: Iterable[str],
    filters: Mapping[str, tuple[str, ...]],
) -> MetricsQuery:
    """Validate the parameters of a request; every problem is a 400 naming it."""
    if not start or not end:
        raise InputError("time[start] and time[end] are required")
    start_ms, end_ms = parse_time("time[start]", start), parse_time("time[end]", end)
    if start_ms >= end_ms:
        raise InputError("invalid time range: start must be before end")
    wanted = _unique(measures)
    if not wanted:
        raise InputError("at least one measure is required")
    for m in wanted:
        if m not in MEASURES[kind]:
            raise InputError(f'unknown measure "{m}"')
    dims = _unique(dimensions)
    for d in dims:
        if d not in DIMENSIONS[kind]:
            raise InputError(f'unknown dimension "{d}"')
    typed = {k: _typed(k, v) for k, v in filters.items() if k in DIMENSIONS[kind] and v}
    query = MetricsQuery(
        kind,
        start_ms,
        end_ms,
        wanted,
        Granularity.parse(granularity) if granularity else None,
        dims,
        typed,
    )
    if query.granularity is not None and len(query.slots()) > ROW_LIMIT:
        raise InputError(TOO_BROAD)
    return query


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def _typed(key: str, values: tuple[str, ...]) -> tuple[DimensionValue, ...]:
    if key == "manual":
        if any(v not in ("true", "false") for v in values):
            raise InputError('invalid filters[manual]: expected "true" or "false"')
        return tuple(dict.fromkeys(v == "true" for v in values))
    if key == "attempt_number":
        try:
            return tuple(dict.fromkeys(int(v) for v in values))
        except ValueError:
            raise InputError("invalid filters[attempt_number]: expected integers") from None
    return tuple(dict.fromkeys(values))


def answer(query: MetricsQuery, tallies: list[Tally], query_time_ms: int) -> dict[str, Any]:
    """The response body: data points in bucket order, then dimension order, zero-filled."""
    # Built lazily and cut at the limit: slots × dimension combinations could be far more.
    points = list(islice(_points(query, tallies), ROW_LIMIT + 1))
    truncated = len(points) > ROW_LIMIT
    data = points[:ROW_LIMIT]
    metadata: dict[str, Any] = {}
    if query.granularity is not None:
        metadata["granularity"] = query.granularity.text
    metadata.update(
        query_time_ms=query_time_ms,
        row_count=len(data),
        row_limit=ROW_LIMIT,
        truncated=truncated,
    )
    return {"data": data, "metadata": metadata}


def _points(query: MetricsQuery, tallies: list[Tally]) -> Iterator[dict[str, Any]]:
    by_group = {(t.bucket, t.key): t.values for t in tallies}
    combos = sorted({t.key for t in tallies}, key=_sort_key)
    if not query.dimensions:
        combos = [()]  # one series, present even without data
    granularity = query.granularity
    if granularity is None:
        return (
            _point(query, None, combo, by_group.get((None, combo), {}), _range_seconds(query))
            for combo in combos
        )
    return (
        _point(
            query,
            granularity.start(slot),
            combo,
            by_group.get((slot, combo), {}),
            granularity.seconds(slot),
        )
        for slot in query.slots()
        for combo in combos
    )


def _sort_key(key: tuple[DimensionValue, ...]) -> tuple[tuple[int, Any], ...]:
    # Values of one dimension share a type; the tag keeps mixed tuples comparable anyway.
    return tuple((0, v) if isinstance(v, int | bool) else (1, v) for v in key)


def _range_seconds(query: MetricsQuery) -> float:
    return (query.end - query.start) / 1000


def _point(
    query: MetricsQuery,
    bucket_start: int | None,
    combo: tuple[DimensionValue, ...],
    values: Mapping[str, int | None],
    seconds: float,
) -> dict[str, Any]:
    point: dict[str, Any] = {}
    if bucket_start is not None:
        point["time_bucket"] = timefmt.format_seconds(bucket_start)
    point["dimensions"] = {
        d: _dimension_text(v) for d, v in zip(query.dimensions, combo, strict=True)
    }
    point["metrics"] = {m: _measure(m, values, seconds) for m in query.measures}
    return point


def _dimension_text(value: DimensionValue) -> str:
    """Dimension values are strings on the wire, as the OpenAPI document and the SDKs type them
    (`manual` is "true"/"false", `attempt_number` its decimal digits)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _measure(name: str, tallied: Mapping[str, int | None], seconds: float) -> int | float | None:
    if name.endswith("_latency"):
        if name == "avg_latency":
            recorded = tallied.get("latency_count") or 0
            return (tallied.get("latency_sum") or 0) / recorded if recorded else None
        return tallied.get("latency_" + name.removesuffix("_latency"))
    values = {k: v or 0 for k, v in tallied.items()}
    count = values.get("count", 0)
    if name == "count":
        return count
    if name == "rate":
        return count / seconds
    if name == "successful_count":
        return values.get("successful", 0)
    if name == "successful_rate":
        return values.get("successful", 0) / seconds
    if name == "failed_count":
        return values.get("failed", 0)
    if name == "failed_rate":
        return values.get("failed", 0) / seconds
    if name == "error_rate":
        return values.get("failed", 0) / count if count else 0.0
    if name == "first_attempt_count":
        return values.get("first_attempts", 0)
    if name == "retry_count":
        return values.get("retries", 0)
    if name == "manual_retry_count":
        return values.get("manual_retries", 0)
    assert name == "avg_attempt_number", name
    return values.get("attempt_number_sum", 0) / count if count else 0.0
