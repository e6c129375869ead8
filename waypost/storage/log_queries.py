"""The event and attempt list queries, shared by the SQL backends.

Each backend runs the planned SQL its own way and names the one dialect-specific condition:
whether an event's `matched_destination_ids` (a JSON array) contains any of some ids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from waypost.core.models import Attempt, Event
from waypost.core.paging import AttemptQuery, EventQuery, Page, PageRequest
from waypost.storage import keyset, rows
from waypost.storage.keyset import Plan, Where

# ids → (condition with ? placeholders, its parameters)
MatchedAny = Callable[[tuple[str, ...]], tuple[str, tuple[Any, ...]]]

SELECT_EVENTS = f"SELECT {rows.EVENT_COLUMNS} FROM events"
SELECT_ATTEMPTS = f"SELECT {rows.ATTEMPT_COLUMNS} FROM attempts"


def events_plan(query: EventQuery, request: PageRequest, matched_any: MatchedAny) -> Plan:
    where = (
        Where()
        .any_of("tenant_id", query.tenant_ids)
        .any_of("id", query.ids)
        .any_of("topic", query.topics)
    )
    if query.destination_ids:
        clause, params = matched_any(query.destination_ids)
        where = where.add(clause, *params)
    return keyset.plan(
        kind="evt",
        select=SELECT_EVENTS,
        where=where.within("time", query.time),
        sort="time",
        id_column="id",
        request=request,
    )


def attempts_plan(query: AttemptQuery, request: PageRequest) -> Plan:
    where = (
        Where()
        .any_of("tenant_id", query.tenant_ids)
        .any_of("event_id", query.event_ids)
        .any_of("destination_id", query.destination_ids)
        .any_of("destination_type", query.destination_types)
        .any_of("topic", query.topics)
    )
    if query.status:
        where = where.add("status = ?", query.status)
    return keyset.plan(
        kind="att",
        select=SELECT_ATTEMPTS,
        where=where.within("time", query.time),
        sort="time",
        id_column="id",
        request=request,
    )


def events_page(plan: Plan, found: Sequence[Any]) -> Page[Event]:
    return keyset.page(plan, found, rows.event, lambda e: (e.time, e.id))


def attempts_page(plan: Plan, found: Sequence[Any]) -> Page[Attempt]:
    return keyset.page(plan, found, rows.attempt, lambda a: (a.time, a.id))
