"""Conversions between domain records and rows, shared by the SQL backends (and the memory double).

Destination credentials go through a `Sealer` when one is given: stored sealed, opened on read.
A stored value that is not sealed is plain JSON written before sealing existed, and still reads.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

import msgspec

from waypost.core.models import Attempt, DeliveryTask, Destination, Event, EventKey, Tenant
from waypost.errors import InputError, StoreError
from waypost.storage.sealing import Sealer

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


def _context(tenant_id: str, destination_id: str) -> str:
    """Names the row in errors, and is the associated data binding sealed credentials to it."""
    return f"destination {destination_id!r} of tenant {tenant_id!r}"


def load_credentials(
    stored: str, tenant_id: str, destination_id: str, sealer: Sealer | None
) -> Any:
    if sealer is None or not Sealer.is_sealed(stored):
        return load(stored)
    return _decode(sealer.open(stored, _context(tenant_id, destination_id)))


def dump_credentials(
    credentials: Any, tenant_id: str, destination_id: str, sealer: Sealer | None
) -> str:
    plain = _encode(credentials)
    if sealer is None:
        return plain.decode()
    return sealer.seal(plain, _context(tenant_id, destination_id))


def resealed(row: Any, sealer: Sealer) -> str | None:
    """`(id, tenant_id, credentials)` stored under a previous key or as plain JSON, sealed under
    the current key; None when already current, or when it does not open (reads will say why)."""
    destination_id, tenant_id, stored = row
    if sealer.is_current(stored):
        return None
    try:
        credentials = load_credentials(stored, tenant_id, destination_id, sealer)
    except StoreError:
        return None
    return dump_credentials(credentials, tenant_id, destination_id, sealer)


def destination(row: Any, sealer: Sealer | None) -> Destination:
    return Destination(
        id=row[0],
        tenant_id=row[1],
        type=row[2],
        topics=tuple(load(row[3])),
        filter=load(row[4]),
        config=load(row[5]),
        credentials=load_credentials(row[6], row[1], row[0], sealer),
        delivery_metadata=load(row[7]),
        metadata=load(row[8]),
        created_at=row[9],
        updated_at=row[10],
        disabled_at=row[11],
    )


def destination_values(d: Destination, sealer: Sealer | None) -> tuple[Any, ...]:
    return (
        d.id,
        d.tenant_id,
        d.type,
        dump(list(d.topics)),
        dump(d.filter) if d.filter else None,
        dump(d.config),
        dump_credentials(d.credentials, d.tenant_id, d.id, sealer),
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
    "attempt_number, manual, code, response_data, latency_ms, request_headers"
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
        latency_ms=row[12],
        request_headers=load(row[13]),
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
        a.latency_ms,
        dump(a.request_headers) if a.request_headers else None,
    )


def event_key(e: Event) -> EventKey:
    return (e.tenant_id, e.id)


def the_event(found: Sequence[Event], event_id: str) -> Event | None:
    """The event of a read by id (at most two rows fetched): None if there is none; if several
    tenants have this id and the read named none of them, the caller must say which."""
    if len(found) > 1:
        raise InputError(f"event {event_id!r} exists for several tenants: pass tenant_id")
    return found[0] if found else None


def keyed_events(found: Iterable[Event], keys: Collection[EventKey]) -> dict[EventKey, Event]:
    """The events among `found` that `keys` asked for (a query by ids and tenants may return
    some pairs that were not asked for), by key."""
    return {key: e for e in found if (key := event_key(e)) in keys}


def claimed_tasks(
    found: Sequence[Any], events: dict[EventKey, Event]
) -> tuple[list[DeliveryTask], list[int]]:
    """Claimed task rows (id, event_id, tenant_id, destination_id, attempt_number, manual,
    generation, claims) paired with their events; also the ids of tasks whose event was erased,
    which have nothing left to deliver and are the caller's to delete."""
    tasks: list[DeliveryTask] = []
    orphans: list[int] = []
    for task_id, event_id, tenant_id, destination_id, number, manual, generation, claims in found:
        event = events.get((tenant_id, event_id))
        if event is None:
            orphans.append(task_id)
            continue
        tasks.append(
            DeliveryTask(task_id, event, destination_id, number, bool(manual), generation, claims)
        )
    return tasks, orphans
