"""What the store keeps for operator events and alerts, and the seam it calls while recording.

Pure: no I/O. Storage imports this module the way it imports `core.models`; the rest of the
operator events (what is judged, sent and how) lives in `waypost/operator/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from waypost.core.models import Destination, Outcome


@dataclass(frozen=True, slots=True)
class OperatorRecord:
    """One operator event in the outbox: `body` is the envelope exactly as it will be sent."""

    id: str
    topic: str
    body: bytes
    created_at: int
    tries: int = 0  # failed sends so far


@dataclass(frozen=True, slots=True)
class Health:
    """A destination's alert state: its run of consecutive failed attempts (reset by a success)
    and when it last raised `alert.attempt.exhausted_retries` (for the suppression window)."""

    consecutive_failures: int = 0
    exhausted_alerted_at: int | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one recorded attempt leads to: the destination's new health, the events to queue,
    and whether to disable the destination (`disable_reason` set), which the store does as a
    compare-and-set so that only the write that actually disables it reports it."""

    health: Health
    events: tuple[OperatorRecord, ...] = ()
    disable_reason: str | None = None


class OutcomeJudge(Protocol):
    """Called by `finish()` inside the commit that records the attempts, once per new attempt.

    `tracks_health` False means no verdict depends on `Health`: the store neither reads nor
    writes it. A successful attempt is judged with the store having already reset the count.
    """

    @property
    def tracks_health(self) -> bool: ...

    def judge(
        self, outcome: Outcome, destination: Destination | None, health: Health, now: int
    ) -> Verdict: ...

    def disabled(
        self, outcome: Outcome, destination: Destination | None, reason: str, now: int
    ) -> tuple[OperatorRecord, ...]:
        """The events of a destination this verdict just disabled (at `now`)."""
        ...
