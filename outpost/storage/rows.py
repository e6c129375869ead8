"""Conversions between domain records and SQLite rows."""

from __future__ import annotations

from typing import Any

import msgspec

from outpost.core.models import Attempt, Destination, Event, Tenant

_encode = msgspec.json.encode
_decode = msgspec.json.decode


def dump(value: Any) -> str | None:
    return None if value is None else _encode(value).decode()


def load(text: str | bytes | None) -> Any:
    return None if text is None else _decode(text)


TENANT_COLUMNS = "id, metadata, created_at, updated_at"


def tenant(row: Any) -> Tenant:
    return Tenant(id=row[0], metadata=load(row[1]), created_at=row[2], updated_at=row[3])


DESTINATION_COLUMNS = (
    "id, tenant_id, type, topics, filter, config, credentials, delivery_metadata, metadata, "
    "created_at, updated_at, disabled_at"
)


def destination(row: Any) -> Destination:
    return Destination(
        id=row[0],
        tenant_id=row[1],
        type=row[2],
        topics=tuple(load(row[3])),
        filter=load(row[4]),
        config=load(row[5]),
        credentials=load(row[6]),
        delivery_metadata=load(row[7]),
        metadata=load(row[8]),
        created_at=row[9],
        updated_at=row[10],
        disabled_at=row[11],
    )


def destination_values(d: Destination) -> tuple[Any, ...]:
    return (
        d.id,
        d.tenant_id,
        d.type,
        dump(list(d.topics)),
        dump(d.filter) if d.filter else None,
        dump(d.config),
        dump(d.credentials),
        dump(d.delivery_metadata) if d.delivery_metadata else None,
        dump(d.metadata) if d.metadata else None,
        d.created_at,
        d.updated_at,
        d.disabled_at,
    )


EVENT_COLUMNS = (
    "id, tenant_id, topic, time, eligible_for_retry, metadata, data, matched_destination_ids, "
    "destination_id"
)


def event(row: Any) -> Event:
    return Event(
        id=row[0],
        tenant_id=row[1],
        topic=row[2],
        time=row[3],
        eligible_for_retry=bool(row[4]),
        metadata=load(row[5]),
        data=bytes(row[6]),
        matched_destination_ids=tuple(load(row[7])),
        destination_id=row[8],
    )


def event_values(e: Event) -> tuple[Any, ...]:
    return (
        e.id,
        e.tenant_id,
        e.topic,
        e.time,
        e.eligible_for_retry,
        dump(e.metadata),
        e.data,
        dump(list(e.matched_destination_ids)),
        e.destination_id,
    )


ATTEMPT_COLUMNS = (
    "id, tenant_id, event_id, destination_id, destination_type, topic, status, time, "
    "attempt_number, manual, code, response_data"
)


def attempt(row: Any) -> Attempt:
    return Attempt(
        id=row[0],
        tenant_id=row[1],
        event_id=row[2],
        destination_id=row[3],
        destination_type=row[4],
        topic=row[5],
        status=row[6],
        time=row[7],
        attempt_number=row[8],
        manual=bool(row[9]),
        code=row[10],
        response_data=load(row[11]),
    )


def attempt_values(a: Attempt) -> tuple[Any, ...]:
    return (
        a.id,
        a.tenant_id,
        a.event_id,
        a.destination_id,
        a.destination_type,
        a.topic,
        a.status,
        a.time,
        a.attempt_number,
        a.manual,
        a.code,
        dump(a.response_data) if a.response_data else None,
    )
