"""Metrics aggregates on PostgreSQL (SQL in storage/metrics_sql.py)."""

from __future__ import annotations

from waypost.core.metrics import MetricsQuery, Tally
from waypost.storage import metrics_sql
from waypost.storage.keyset import numbered
from waypost.storage.postgres.database import Conn

# EXTRACT on a timestamptz would follow the session's TimeZone: take the UTC wall time.
_UTC = "(to_timestamp(time / 1000) AT TIME ZONE 'UTC')"
_MONTH = f"(EXTRACT(YEAR FROM {_UTC})::int * 12 + EXTRACT(MONTH FROM {_UTC})::int - 1970 * 12 - 1)"

DIALECT = metrics_sql.Dialect(
    month_index=_MONTH,
    fan_out=(
        " CROSS JOIN LATERAL jsonb_array_elements_text(events.matched_destination_ids::jsonb)"
        " AS matched(value)"
    ),
    matched_any="jsonb_exists_any(matched_destination_ids::jsonb, ?::text[])",
    matched_any_params=True,
    count_where="COUNT(*) FILTER (WHERE {condition})",
)


async def tallies(conn: Conn, query: MetricsQuery) -> list[Tally]:
    statement = metrics_sql.statement(query, DIALECT)
    found = await conn.fetch(numbered(statement.sql), *statement.params)
    return metrics_sql.tallies(query, found)
