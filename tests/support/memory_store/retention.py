"""Retention for the memory backend: the same rules as storage/sqlite/retention_ops.py."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from waypost.core.models import EventKey
from waypost.storage.retention import Deleted

Row = tuple[Any, ...]
RowTest = Callable[[Row], bool]
# Positions in rows.EVENT_COLUMNS / rows.ATTEMPT_COLUMNS.
_EVENT_TENANT, _EVENT_TIME = 1, 3
_ATTEMPT_TENANT, _ATTEMPT_EVENT, _ATTEMPT_TIME = 1, 2, 7


def delete_batch(
    events: dict[EventKey, tuple[Row, int]],
    attempts: dict[str, Row],
    busy_events: Collection[EventKey],
    batch_size: int,
    *,
    event_wanted: RowTest,
    attempt_wanted: RowTest,
) -> Deleted:
    """Delete up to `batch_size` wanted attempts (oldest first), then up to `batch_size` wanted
    events (oldest first) that have no task (`busy_events`) and no attempt left (an event is
    its tenant's: both are named by (tenant, event id))."""
    doomed = sorted(
        (row[_ATTEMPT_TIME], key) for key, row in attempts.items() if attempt_wanted(row)
    )[:batch_size]
    for _, key in doomed:
        del attempts[key]
    with_attempts = {(row[_ATTEMPT_TENANT], row[_ATTEMPT_EVENT]) for row in attempts.values()}
    gone = sorted(
        (row[_EVENT_TIME], event)
        for event, (row, _) in events.items()
        if event_wanted(row) and event not in busy_events and event not in with_attempts
    )[:batch_size]
    for _, event in gone:
        del events[event]
    return Deleted(events=len(gone), attempts=len(doomed))


def before(cutoff: int) -> tuple[RowTest, RowTest]:
    return (lambda row: row[_EVENT_TIME] < cutoff), (lambda row: row[_ATTEMPT_TIME] < cutoff)


def of_tenant(tenant_id: str) -> tuple[RowTest, RowTest]:
    return (lambda row: row[_EVENT_TENANT] == tenant_id), (
        lambda row: row[_ATTEMPT_TENANT] == tenant_id
    )
