"""Recovery: which stored events never reached a destination, and the jobs that send them again.

Pure: no I/O. Storage finds candidate events and summarises their attempts per destination;
this module decides, pair by pair, what is undelivered and what a job sends.

Statuses a caller selects: `failed` (attempted, never successfully), `never` (no attempt at all:
published while the destination was disabled, before it existed, or matching nothing then) and
`all` (both). A pair is never one with a successful attempt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from waypost.core.models import Destination, Event
from waypost.core.paging import TimeRange

Selection = Literal["failed", "never", "all"]
PairStatus = Literal["failed", "never_attempted"]
JobState = Literal["running", "completed", "cancelled"]
SELECTIONS: tuple[Selection, ...] = ("failed", "never", "all")
# Operator event topics, named as Outpost names its own (`<subject>.<object>.<what happened>`,
# like `tenant.subscription.updated`); sent when OPERATOR_EVENTS_TOPICS asks for them.
JOB_CREATED = "recovery.job.created"
JOB_COMPLETED = "recovery.job.completed"
JOB_CANCELLED = "recovery.job.cancelled"
OPERATOR_TOPICS = (JOB_CREATED, JOB_COMPLETED, JOB_CANCELLED)
# Metadata key of an event sent by "send a test event": such events are never recovered.
TEST_METADATA_KEY = "outpost-test"


@dataclass(frozen=True, slots=True)
class Tried:
    """A (event, destination) pair's attempts: the latest number, and whether one succeeded."""

    last_number: int
    delivered: bool


@dataclass(frozen=True, slots=True)
class Candidate:
    """A stored event and its attempts per destination id."""

    event: Event
    tried: dict[str, Tried] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Scan:
    """One read of candidate events of a tenant, in (time, id) order after `after`.

    With `destination_id`, events delivered to it are left out by the store already.
    """

    tenant_id: str
    destination_id: str | None = None
    topics: tuple[str, ...] = ()
    time: TimeRange = field(default_factory=TimeRange)
    after: tuple[int, str] | None = None
    descending: bool = False
    limit: int = 500


@dataclass(frozen=True, slots=True)
class Pending:
    """One pair still to deliver: its status, and the attempt number a new attempt gets."""

    destination_id: str
    status: PairStatus
    attempts: int

    @property
    def next_number(self) -> int:
        return self.attempts + 1


def undelivered(
    candidate: Candidate,
    destinations: Sequence[Destination],
    selection: Selection,
    accepts: Callable[[Destination, Event], bool],
    *,
    enabled_only: bool,
) -> list[Pending]:
    """The pairs of this event and `destinations` that `selection` wants.

    A destination counts when it was attempted (failed) or accepts the event now (`accepts`:
    topics and filter), so a destination created or re-enabled after the event was published
    sees it; `enabled_only` (recovery jobs) leaves disabled destinations out.
    """
    if candidate.event.metadata.get(TEST_METADATA_KEY):
        return []
    found = []
    for destination in destinations:
        if enabled_only and not destination.enabled:
            continue
        tried = candidate.tried.get(destination.id)
        if tried is not None and tried.delivered:
            continue
        # Jobs send only what the destination accepts now, as a retry does; the listing still
        # shows a failed pair (it was sent once).
        if (enabled_only or tried is None) and not accepts(destination, candidate.event):
            continue
        status: PairStatus = "never_attempted" if tried is None else "failed"
        if selection == "failed" and status != "failed":
            continue
        if selection == "never" and status != "never_attempted":
            continue
        found.append(Pending(destination.id, status, 0 if tried is None else tried.last_number))
    return found


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a recovery job selects."""

    destination_id: str | None
    topics: tuple[str, ...]
    time_gte: int | None
    time_lt: int
    status: Selection

    @property
    def time(self) -> TimeRange:
        return TimeRange(gte=self.time_gte, lt=self.time_lt)


@dataclass(frozen=True, slots=True)
class RecoveryJob:
    id: str
    tenant_id: str
    spec: JobSpec
    state: JobState
    created_at: int
    updated_at: int
    idempotency_key: str | None = None
    cursor: tuple[int, str] | None = None  # (time, id) of the last event scanned
    scan_done: bool = False
    matched: int | None = None  # pairs found by the runner's count; None until counted
    enqueued: int = 0
    delivered: int = 0
    failed: int = 0
    pending: int = 0  # its tasks still queued
    finished_at: int | None = None
    lease_owner: str | None = None


@dataclass(frozen=True, slots=True)
class QueuedPair:
    event: Event
    destination_id: str
    attempt_number: int


@dataclass(frozen=True, slots=True)
class Advance:
    """One step of a job, written in one commit when the job is still `owner`'s and running:
    `tasks` queued, the cursor moved, counts added, the lease extended; `complete` ends it."""

    job_id: str
    owner: str
    now: int
    lease_ms: int
    tasks: tuple[QueuedPair, ...] = ()
    cursor: tuple[int, str] | None = None
    scan_done: bool = False
    matched: int | None = None
    complete: bool = False
