"""Metrics aggregates on the embedded store (SQL in storage/metrics_sql.py)."""

from __future__ import annotations

import sqlite3

from waypost.core.metrics import MetricsQuery, Tally
from waypost.storage import metrics_sql

_MONTH = (
    "strftime('%Y', time / 1000, 'unixepoch') * 12"
    " + strftime('%m', time / 1000, 'unixepoch') - 1970 * 12 - 1"
)

DIALECT = metrics_sql.Dialect(
    month_index=_MONTH,
    fan_out=", json_each(events.matched_destination_ids) AS matched",
    matched_any=(
        "EXISTS (SELECT 1 FROM json_each(matched_destination_ids) WHERE value IN ({marks}))"
    ),
    matched_any_params=False,
    count_where="SUM({condition})",  # a comparison is 0 or 1
)


def tallies(conn: sqlite3.Connection, query: MetricsQuery) -> list[Tally]:
    statement = metrics_sql.statement(query, DIALECT)
    return metrics_sql.tallies(query, conn.execute(statement.sql, statement.params).fetchall())
