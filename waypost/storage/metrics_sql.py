"""The metrics aggregates (contract.md §1.6.17) as SQL, shared by the SQLite and PostgreSQL
backends.

One `GROUP BY` per request: the time bucket (an integer index, see `Granularity.bucket`), the
requested dimensions, and only the sums the requested measures need. The range condition comes
first so that the `time`-leading indexes of 003_metrics.sql bound the scan. Each backend names
its dialect: how to get a month index from epoch milliseconds, and how to fan an event out to
its matched destinations (a JSON array in a text column).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from waypost.core.metrics import PERCENTILES, DimensionValue, MetricsQuery, Tally
from waypost.storage.keyset import Where


@dataclass(frozen=True, slots=True)
class Dialect:
    month_index: str  # SQL: months since 1970-01 of the row's `time` (epoch ms), in UTC
    fan_out: str  # FROM-clause tail joining `events` to `matched(value)`, one row per destination
    matched_any: str  # condition: the event matched any of the ids bound to one `?`...
    matched_any_params: bool  # ...given as one array parameter (True) or one `?` per id (False)
    count_where: str  # the number of rows where {condition} holds (the cheapest form there is)


@dataclass(frozen=True, slots=True)
class Statement:
    sql: str
    params: tuple[Any, ...]


# Tally → the rows it counts (None: not a count).
_CONDITIONS = {
    "successful": "status = 'success'",
    "failed": "status = 'failed'",
    "first_attempts": "attempt_number = 1 AND NOT manual",
    "retries": "attempt_number > 1",
    "manual_retries": "manual",
}


def _aggregate(tally: str, dialect: Dialect) -> str:
    if tally == "count":
        return "COUNT(*)"
    if tally == "attempt_number_sum":
        return "SUM(attempt_number)"
    if tally == "latency_count":
        return "COUNT(latency_ms)"
    if tally == "latency_sum":
        return "SUM(latency_ms)"
    if tally in PERCENTILES:
        # Nearest rank: 1-based rank ceil(p * n / 100), in integer arithmetic (SQLite has no
        # percentile function, and this is exactly PostgreSQL's percentile_disc).
        rank = f"({PERCENTILES[tally]} * latency_n + 99) / 100"
        return f"MAX(CASE WHEN latency_rank = {rank} THEN latency_ms END)"
    return dialect.count_where.format(condition=_CONDITIONS[tally])


def statement(query: MetricsQuery, dialect: Dialect) -> Statement:
    fanned = query.kind == "events" and "destination_id" in query.dimensions
    source = ("events" + dialect.fan_out) if fanned else query.kind
    where = Where().add("time >= ?", query.start).add("time < ?", query.end)
    for key, values in query.filters.items():
        where = _filter(where, query, key, values, dialect, fanned)
    columns = [_bucket(query, dialect)]
    columns += [_dimension_column(query, d) for d in query.dimensions]
    columns += [_aggregate(t, dialect) for t in _sums(query)]
    if any(t in PERCENTILES for t in _sums(query)):
        # Percentiles need each row's rank within its group: the filtered rows are numbered by
        # latency (NULLs last, so never picked) per bucket and dimension values, then grouped.
        group = [_bucket(query, dialect)] if query.granularity is not None else []
        group += query.dimensions
        within = f"PARTITION BY {', '.join(group)}" if group else ""
        ranked = (
            f"SELECT *, ROW_NUMBER() OVER ({within} ORDER BY latency_ms NULLS LAST)"
            f" AS latency_rank, COUNT(latency_ms) OVER ({within}) AS latency_n"
            f" FROM {source} WHERE {where.sql()}"
        )
        sql = f"SELECT {', '.join(columns)} FROM ({ranked}) AS ranked"
    else:
        sql = f"SELECT {', '.join(columns)} FROM {source} WHERE {where.sql()}"
    grouped = len(query.dimensions) + (query.granularity is not None)
    if grouped:
        first = 1 if query.granularity is not None else 2
        sql += " GROUP BY " + ", ".join(str(i) for i in range(first, 2 + len(query.dimensions)))
    return Statement(sql, where.params)


def _bucket(query: MetricsQuery, dialect: Dialect) -> str:
    g = query.granularity
    if g is None:
        return "NULL"
    if g.calendar:
        return f"(({dialect.month_index}) / {g.amount})"
    return f"((time - {g.origin_ms}) / {g.step_ms})"


def _dimension_column(query: MetricsQuery, dimension: str) -> str:
    if query.kind == "events" and dimension == "destination_id":
        return "matched.value"
    return dimension


def _filter(
    where: Where,
    query: MetricsQuery,
    key: str,
    values: Sequence[DimensionValue],
    dialect: Dialect,
    fanned: bool,
) -> Where:
    if query.kind == "events" and key == "destination_id":
        if fanned:  # count only the filtered destinations' shares of each event
            return where.any_of("matched.value", values)
        if dialect.matched_any_params:
            return where.add(dialect.matched_any, list(values))
        marks = ",".join("?" * len(values))
        return where.add(dialect.matched_any.format(marks=marks), *values)
    return where.any_of(key, values)


def tallies(query: MetricsQuery, found: Sequence[Sequence[Any]]) -> list[Tally]:
    """Rows of `statement`'s SQL as tallies, with dimension values typed as `DimensionValue`."""
    sums = _sums(query)  # "count" first
    width = len(query.dimensions)
    result = []
    for row in found:
        if not row[1 + width]:
            continue  # the one row of an ungrouped aggregate over nothing
        key = tuple(_typed(d, v) for d, v in zip(query.dimensions, row[1 : 1 + width], strict=True))
        values = {
            t: (None if v is None else int(v)) if t in PERCENTILES else int(v or 0)
            for t, v in zip(sums, row[1 + width :], strict=True)
        }
        bucket = None if row[0] is None else int(row[0])
        result.append(Tally(bucket, key, values))
    return result


def _sums(query: MetricsQuery) -> tuple[str, ...]:
    return query.tallies if query.kind == "attempts" else ("count",)


def _typed(dimension: str, value: Any) -> DimensionValue:
    if dimension == "manual":
        return bool(value)
    if dimension == "attempt_number":
        return int(value)
    return str(value)
