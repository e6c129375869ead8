"""Domain records. Timestamps are integer milliseconds since the epoch, UTC.

They are frozen: a change is a new value (`dataclasses.replace`), so a record handed to
another task can never shift under it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

StrMap = dict[str, str]
EventKey = tuple[str, str]  # (tenant_id, event id): events are their tenant's, ids are not global
AttemptStatus = Literal["success", "failed"]


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    created_at: int
    updated_at: int
    metadata: StrMap | None = None


@dataclass(frozen=True, slots=True)
class Destination:
    id: str
    tenant_id: str
    type: str
    topics: tuple[str, ...]
    config: StrMap
    credentials: StrMap
    created_at: int
    updated_at: int
    disabled_at: int | None = None
    filter: dict[str, Any] | None = None
    delivery_metadata: StrMap | None = None
    metadata: StrMap | None = None

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    tenant_id: str
    topic: str
    time: int
    data: bytes  # the event's JSON object as compact raw text: key order and literals kept
    eligible_for_retry: bool = True
    metadata: StrMap = field(default_factory=dict)
    destination_id: str = ""
    matched_destination_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What one delivery to a destination came to. A remote failure is a value, not an exception."""

    status: AttemptStatus
    code: str = ""
    response_data: dict[str, Any] | None = None
    latency_ms: int | None = None  # set by the worker around the provider's publish call
    # What was sent besides the body: HTTP headers, or a message's attributes/properties
    # (core/sent_headers.py bounds and masks them); None where the type has no such notion.
    # A record of the request, not part of the outcome: results compare equal without it.
    request_headers: StrMap | None = field(default=None, compare=False)
    retry_after_s: float | None = None  # the destination asked to be retried no sooner

    @property
    def ok(self) -> bool:
        return self.status == "success"


@dataclass(frozen=True, slots=True)
class Attempt:
    id: str
    tenant_id: str
    event_id: str
    destination_id: str
    destination_type: str
    topic: str
    status: AttemptStatus
    time: int
    attempt_number: int
    manual: bool
    code: str = ""
    response_data: dict[str, Any] | None = None
    latency_ms: int | None = None  # None: never reached the provider, or recorded before 008
    request_headers: StrMap | None = None  # None: none sent, or recorded before 010


@dataclass(frozen=True, slots=True)
class DeliveryTask:
    """One delivery to make: an event, a destination, and which attempt this is."""

    id: int
    event: Event
    destination_id: str
    attempt_number: int
    manual: bool = False
    generation: int = 1
    claims: int = 1

    @property
    def retry_key(self) -> str:
        """Names the pending automatic retry of this (tenant, event, destination): unique per
        triple, whatever characters the ids hold (tenant and event ids are length-prefixed).
        Migration 007 wrote the keys of earlier versions ('<event>:<destination>') this way."""
        return retry_key(self.event.tenant_id, self.event.id, self.destination_id)


RetryPair = tuple[str, str, str]  # (tenant_id, event id, destination_id): what a retry is for


def retry_key(tenant_id: str, event_id: str, destination_id: str) -> str:
    """`DeliveryTask.retry_key` of this (tenant, event, destination)."""
    return f"{len(tenant_id)}:{tenant_id}{len(event_id)}:{event_id}{destination_id}"


@dataclass(frozen=True, slots=True)
class PendingRetry:
    """The automatic retry queued for a (tenant, event, destination), not yet claimed."""

    attempt_number: int  # the attempt it will make
    due: int  # when it becomes deliverable (ms)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a claimed task ends: what to record, and what happens to the pending retry.

    `retry_at` schedules attempt `attempt_number + 1` (replacing any pending retry of the same
    event and destination); `cancel_retry` drops the pending one instead.
    """

    task: DeliveryTask
    attempt: Attempt | None = None
    retry_at: int | None = None
    cancel_retry: bool = False
