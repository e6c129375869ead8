"""Counting a recovery job's tasks as they finish, in `task_ops.finish`'s commit."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from waypost.core.models import Outcome


def count_finished(conn: sqlite3.Connection, outcomes: Sequence[Outcome]) -> None:
    """Count the finished tasks of recovery jobs (manual tasks only can be theirs)."""
    for outcome in outcomes:
        if not outcome.task.manual:
            continue
        row = conn.execute(
            "DELETE FROM recovery_tasks WHERE task_id = ? RETURNING recovery_id",
            (outcome.task.id,),
        ).fetchone()
        if row is None or outcome.attempt is None:
            continue
        ok = outcome.attempt.status == "success"
        conn.execute(
            "UPDATE recoveries SET delivered = delivered + ?, failed = failed + ? WHERE id = ?",
            (int(ok), int(not ok), row[0]),
        )
