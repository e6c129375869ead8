"""The only place JSON field names live: domain records → Outpost's response shapes (contract.md
§1.5)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from waypost.core import topics as topic_rules
from waypost.core.models import Attempt, Destination, Event, Tenant
from waypost.core.paging import Page, PageRequest
from waypost.core.recovery import RecoveryJob
from waypost.core.timefmt import format_ms
from waypost.destinations.registry import Registry
from waypost.recovery import Undelivered


def tenant(t: Tenant, destinations: Sequence[Destination]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": t.id,
        "destinations_count": len(destinations),
        "topics": topic_rules.tenant_topics(d.topics for d in destinations),
    }
    if t.metadata:
        body["metadata"] = t.metadata
    body["created_at"] = format_ms(t.created_at)
    body["updated_at"] = format_ms(t.updated_at)
    return body


def destination(d: Destination, registry: Registry, now: int) -> dict[str, Any]:
    provider = registry.find(d.type)
    display = provider.display(d, now) if provider else None
    body: dict[str, Any] = {
        "id": d.id,
        "tenant_id": d.tenant_id,
        "type": d.type,
        "topics": list(d.topics),
    }
    if d.filter:
        body["filter"] = d.filter
    body["config"] = d.config
    body["credentials"] = display.credentials if display else {}
    if d.delivery_metadata:
        body["delivery_metadata"] = d.delivery_metadata
    if d.metadata:
        body["metadata"] = d.metadata
    body["created_at"] = format_ms(d.created_at)
    body["updated_at"] = format_ms(d.updated_at)
    body["disabled_at"] = None if d.disabled_at is None else format_ms(d.disabled_at)
    body["target"] = display.target if display else ""
    if display and display.target_url:
        body["target_url"] = display.target_url
    return body


# What an embedded destination shows instead of each credential value.
MASK = "********"


def attempt_destination(d: Destination, registry: Registry, now: int) -> dict[str, Any]:
    """The destination embedded in an attempt (`include=destination`): without its credentials'
    values, which only the destination routes show (SDK 1.7.0: "without credentials"). The
    keys stay, each value masked: the TypeScript SDK 1.6.0 parses the embedded destination with
    its type's full schema, which requires some keys (`key`, `secret`, `password`...). Timestamps
    (`previous_secret_invalid_at`) go with the secret they qualify."""
    body = destination(d, registry, now)
    body["credentials"] = {key: MASK for key in body["credentials"] if not key.endswith("_at")}
    return body


def event(e: Event, *, data: bool = True, summary: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"id": e.id, "tenant_id": e.tenant_id}
    if e.matched_destination_ids or not summary:
        body["matched_destination_ids"] = list(e.matched_destination_ids)
    body["topic"] = e.topic
    body["time"] = format_ms(e.time)
    body["eligible_for_retry"] = e.eligible_for_retry
    if e.metadata:
        body["metadata"] = e.metadata
    if data:
        body["data"] = msgspec.Raw(e.data)
    return body


def attempt(
    a: Attempt,
    *,
    response_data: bool = False,
    event_body: dict[str, Any] | None = None,
    destination_body: dict[str, Any] | None = None,
    next_attempt_at: int | None = None,
) -> dict[str, Any]:
    """Outpost's attempt, and this server's read-only extensions (waypost/api/openapi.yaml):
    `latency_ms`, `next_attempt_at` (when the automatic retry this attempt scheduled is due,
    while it is pending) and `request_headers` (what was sent besides the body)."""
    body: dict[str, Any] = {
        "id": a.id,
        "tenant_id": a.tenant_id,
        "status": a.status,
        "time": format_ms(a.time),
    }
    if a.code:
        body["code"] = a.code
    body["attempt_number"] = a.attempt_number
    body["manual"] = a.manual
    body["destination_type"] = a.destination_type
    body["event_id"] = a.event_id
    body["destination_id"] = a.destination_id
    body["latency_ms"] = a.latency_ms
    body["next_attempt_at"] = None if next_attempt_at is None else format_ms(next_attempt_at)
    body["request_headers"] = a.request_headers
    if response_data and a.response_data:
        body["response_data"] = a.response_data
    if event_body is not None:
        body["event"] = event_body
    if destination_body is not None:
        body["destination"] = destination_body
    return body


def pagination(page: Page[Any], request: PageRequest, order_by: str) -> dict[str, Any]:
    return {
        "order_by": order_by,
        "dir": request.dir,
        "limit": request.limit,
        "next": page.next,
        "prev": page.prev,
    }


# Recovery (an extension of /api/v1: waypost/api/openapi.yaml)


def undelivered(item: Undelivered) -> dict[str, Any]:
    return {
        "event": event(item.event),
        "destinations": [
            {"destination_id": p.destination_id, "status": p.status, "attempts": p.attempts}
            for p in item.pending
        ],
    }


def recovery(job: RecoveryJob) -> dict[str, Any]:
    spec = job.spec
    return {
        "id": job.id,
        "tenant_id": job.tenant_id,
        "destination_id": spec.destination_id,
        "topics": list(spec.topics),
        "since": None if spec.time_gte is None else format_ms(spec.time_gte),
        "until": format_ms(spec.time_lt),
        "status": spec.status,
        "idempotency_key": job.idempotency_key,
        "state": job.state,
        "matched": job.matched,
        "enqueued": job.enqueued,
        "pending": job.pending,
        "delivered": job.delivered,
        "failed": job.failed,
        "created_at": format_ms(job.created_at),
        "updated_at": format_ms(job.updated_at),
        "finished_at": None if job.finished_at is None else format_ms(job.finished_at),
    }
