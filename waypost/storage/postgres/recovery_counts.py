"""Counting a recovery job's tasks as they finish, in `task_ops.finish`'s transaction."""

from __future__ import annotations

from collections.abc import Sequence

from waypost.core.models import Outcome
from waypost.storage.postgres.database import Conn

_COUNT_FINISHED = """
WITH done AS (
    DELETE FROM recovery_tasks r USING unnest($1::bigint[], $2::boolean[], $3::boolean[])
        AS d(id, attempted, ok)
    WHERE r.task_id = d.id RETURNING r.recovery_id, d.attempted, d.ok
), counted AS (
    SELECT recovery_id, count(*) FILTER (WHERE attempted AND ok) AS ok,
           count(*) FILTER (WHERE attempted AND NOT ok) AS bad
    FROM done GROUP BY recovery_id
)
UPDATE recoveries SET delivered = delivered + counted.ok, failed = failed + counted.bad
FROM counted WHERE recoveries.id = counted.recovery_id
"""


async def count_finished(conn: Conn, outcomes: Sequence[Outcome]) -> None:
    """Count the finished tasks of recovery jobs (manual tasks only can be theirs)."""
    manual = [o for o in outcomes if o.task.manual]
    if manual:
        await conn.execute(
            _COUNT_FINISHED,
            [o.task.id for o in manual],
            [o.attempt is not None for o in manual],
            [o.attempt is not None and o.attempt.status == "success" for o in manual],
        )
