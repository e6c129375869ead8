"""The memory backend's operator outbox and destination health (storage/sqlite/operator_ops.py
is the reference). Plain synchronous state: `MemoryBackend` calls it inside its atomic steps."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from waypost.core.models import Destination, Outcome
from waypost.core.operator_records import Health, OperatorRecord, OutcomeJudge
from waypost.storage import judging
from waypost.storage.judging import DestinationKey


@dataclass(slots=True)
class _Queued:
    record: OperatorRecord
    visible_at: int


class OperatorState:
    def __init__(self) -> None:
        self.judge: OutcomeJudge | None = None
        self._outbox: dict[str, _Queued] = {}
        self._health: dict[DestinationKey, Health] = {}

    def clear(self) -> None:
        self._outbox, self._health = {}, {}

    def judge_recorded(
        self,
        judge: OutcomeJudge,
        outcomes: Sequence[Outcome],
        seen: set[str],
        destinations: Mapping[DestinationKey, Destination | None],
        disable: Callable[[DestinationKey, int], bool],
        now: int,
    ) -> int:
        """Judge the attempts just recorded (not in `seen` before); `disable` is the backend's
        compare-and-set. Returns how many events were queued."""
        ordered = judging.judged_order(outcomes, seen)
        judged, changed = judging.verdicts(judge, ordered, destinations, self._health, now)
        self._health.update(changed)
        requests = judging.disable_requests(judged)
        disabled = {key: requests[key] for key in requests if disable(key, now)}
        judging.report_disabled(disabled)
        events = judging.events_of(judge, judged, destinations, disabled, now)
        self.add(events, now)
        return len(events)

    def health(self, key: DestinationKey) -> Health:
        return self._health.get(key, Health())

    def forget(self, key: DestinationKey) -> None:
        self._health.pop(key, None)

    def add(self, events: Sequence[OperatorRecord], now: int) -> None:
        for event in events:
            self._outbox.setdefault(event.id, _Queued(event, now))

    def claim(self, now: int, limit: int, lease_ms: int) -> list[OperatorRecord]:
        due = sorted(
            (q for q in self._outbox.values() if q.visible_at <= now),
            key=lambda q: (q.visible_at, q.record.created_at),
        )[:limit]
        for queued in due:
            queued.visible_at = now + lease_ms
        return sorted((q.record for q in due), key=lambda r: r.created_at)

    def settle(self, done: Sequence[str], retry: Sequence[tuple[str, int]]) -> None:
        for event_id in done:
            self._outbox.pop(event_id, None)
        for event_id, visible_at in retry:
            queued = self._outbox.get(event_id)
            if queued is not None:
                queued.record = replace(queued.record, tries=queued.record.tries + 1)
                queued.visible_at = visible_at
