"""The operator event envelope (contract.md §7.4) and the projections of records it carries.

`{"id", "topic", "time", "deployment_id"?, "tenant_id"?, "data"}`; a destination is shown
without credentials, an event with its data as published (raw bytes, never re-encoded).
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from waypost.core.models import Attempt, Destination, Event
from waypost.core.operator_records import OperatorRecord
from waypost.core.timefmt import format_ms

_encode = msgspec.json.Encoder().encode


def destination(d: Destination) -> dict[str, Any]:
    return {
        "id": d.id,
        "tenant_id": d.tenant_id,
        "type": d.type,
        "topics": list(d.topics),
        "config": d.config,
        "created_at": format_ms(d.created_at),
        "disabled_at": None if d.disabled_at is None else format_ms(d.disabled_at),
    }


def event(e: Event) -> dict[str, Any]:
    return {
        "id": e.id,
        "tenant_id": e.tenant_id,
        "destination_id": e.destination_id,
        "matched_destination_ids": list(e.matched_destination_ids),
        "topic": e.topic,
        "eligible_for_retry": e.eligible_for_retry,
        "time": format_ms(e.time),
        "metadata": e.metadata,
        "data": msgspec.Raw(e.data),
    }


def attempt(a: Attempt) -> dict[str, Any]:
    return {
        "id": a.id,
        "tenant_id": a.tenant_id,
        "event_id": a.event_id,
        "destination_id": a.destination_id,
        "destination_type": a.destination_type,
        "attempt_number": a.attempt_number,
        "manual": a.manual,
        "status": a.status,
        "time": format_ms(a.time),
        "code": a.code,
        "response_data": a.response_data,
    }


def record(
    topic: str, data: dict[str, Any], *, tenant_id: str, deployment_id: str, now: int
) -> OperatorRecord:
    """A new operator event, its envelope serialised once, here."""
    event_id = str(uuid.uuid4())
    envelope: dict[str, Any] = {"id": event_id, "topic": topic, "time": format_ms(now)}
    if deployment_id:
        envelope["deployment_id"] = deployment_id
    if tenant_id:
        envelope["tenant_id"] = tenant_id
    envelope["data"] = data
    return OperatorRecord(event_id, topic, _encode(envelope), now)
