"""Pending automatic retries, read for the API's `next_attempt_at` (an attempt's follow-up)."""

from __future__ import annotations

from collections.abc import Sequence

from outpost.core.models import PendingRetry, RetryPair, retry_key
from outpost.storage.postgres.database import Conn

# `retry_key IS NOT NULL`: the partial unique index's predicate (006), so that it is used.
_PENDING = """
SELECT retry_key, attempt_number, visible_at FROM tasks
WHERE retry_key = ANY($1::text[]) AND retry_key IS NOT NULL AND NOT leased
"""


async def pending_retries(conn: Conn, pairs: Sequence[RetryPair]) -> dict[RetryPair, PendingRetry]:
    keys = {retry_key(*pair): pair for pair in pairs}
    if not keys:
        return {}
    found = await conn.fetch(_PENDING, list(keys))
    return {keys[row[0]]: PendingRetry(int(row[1]), int(row[2])) for row in found}
