"""The judge of recorded attempts (contract.md §7.4): which operator events each causes, and
auto-disable.

Called by the store inside the commit that records the attempt (see `records.OutcomeJudge`), so
an attempt, the destination's failure count, its disabling and the events they cause are
durable together or not at all: a crash cannot leave an alert unsent or a count off by one.

- `attempt.success` / `attempt.failed`: every attempt.
- `alert.destination.consecutive_failure`: the run of consecutive failures reaches
  ceil(N·p/100) for p = 50, 70, 90 (exactly), and on every failure from N on (100 %). Its
  `consecutive_failures` says `current`, `max` (N), `threshold` (the percentage) and, beyond
  Outpost, `remaining`: failures left before the destination is disabled (0 from N on).
- `alert.destination.disabled`: ALERT_AUTO_DISABLE_DESTINATION and the 100 % level reached, or,
  beyond Outpost, a webhook answered `410 Gone` (the receiver says it is gone for good). Only
  the write that actually disabled the destination reports it.
- `alert.attempt.exhausted_retries`: a failed retry-eligible attempt numbered past the retry
  limit; at most one per destination per window (0: every time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from waypost.core.models import Attempt, Destination, Outcome
from waypost.core.operator_records import Health, OperatorRecord, Verdict
from waypost.core.timefmt import format_ms
from waypost.operator import envelope

ATTEMPT_SUCCESS = "attempt.success"
ATTEMPT_FAILED = "attempt.failed"
CONSECUTIVE_FAILURE = "alert.destination.consecutive_failure"
DESTINATION_DISABLED = "alert.destination.disabled"
EXHAUSTED_RETRIES = "alert.attempt.exhausted_retries"
SUBSCRIPTION_UPDATED = "tenant.subscription.updated"
TOPICS = (
    ATTEMPT_SUCCESS,
    ATTEMPT_FAILED,
    CONSECUTIVE_FAILURE,
    DESTINATION_DISABLED,
    EXHAUSTED_RETRIES,
    SUBSCRIPTION_UPDATED,
)

REASON_CONSECUTIVE_FAILURE = "consecutive_failure"
REASON_GONE = "gone"  # a webhook answered 410 Gone
_PERCENTAGES = (90, 70, 50)  # below 100 %, highest first: one alert per attempt


@dataclass(frozen=True)
class AlertSettings:
    wanted: frozenset[str] = frozenset()  # operator topics to emit; "*" means all
    failure_threshold: int | None = None  # ALERT_CONSECUTIVE_FAILURE_COUNT; None: no counting
    auto_disable: bool = False
    exhausted_window_ms: int | None = None  # None: no exhausted-retries alerts
    retry_limit: int = 0
    deployment_id: str = ""

    def wants(self, topic: str) -> bool:
        return "*" in self.wanted or topic in self.wanted


@dataclass(frozen=True)
class AlertJudge:
    settings: AlertSettings
    _levels: dict[int, int] = field(init=False, default_factory=dict)  # count → percentage

    def __post_init__(self) -> None:
        n = self.settings.failure_threshold
        if n is not None:
            for p in reversed(_PERCENTAGES):  # a higher percentage wins a shared count
                self._levels[-(-n * p // 100)] = p  # ceil(n·p/100), in integers

    @property
    def counts_failures(self) -> bool:
        s = self.settings
        return s.failure_threshold is not None and (s.auto_disable or s.wants(CONSECUTIVE_FAILURE))

    @property
    def alerts_exhausted(self) -> bool:
        s = self.settings
        return (
            s.exhausted_window_ms is not None and s.retry_limit > 0 and s.wants(EXHAUSTED_RETRIES)
        )

    @property
    def active(self) -> bool:
        """Whether any attempt can lead anywhere: if not, the store need not call the judge."""
        s = self.settings
        return (
            s.wants(ATTEMPT_SUCCESS)
            or s.wants(ATTEMPT_FAILED)
            or self.counts_failures
            or self.alerts_exhausted
            or s.auto_disable
        )

    @property
    def tracks_health(self) -> bool:
        return self.counts_failures or (
            self.alerts_exhausted and bool(self.settings.exhausted_window_ms)
        )

    def judge(
        self, outcome: Outcome, destination: Destination | None, health: Health, now: int
    ) -> Verdict:
        attempt = outcome.attempt
        assert attempt is not None, "only recorded attempts are judged"
        s = self.settings
        events: list[OperatorRecord] = []
        emit = self._emitter(outcome, attempt, destination, events, now)
        if attempt.status == "success":
            emit(ATTEMPT_SUCCESS, {})
            return Verdict(Health(0, health.exhausted_alerted_at), tuple(events))
        emit(ATTEMPT_FAILED, {})
        failures = health.consecutive_failures + 1 if self.counts_failures else 0
        reason = None
        n = s.failure_threshold
        if n is not None and self.counts_failures:
            level = 100 if failures >= n else self._levels.get(failures)
            if level is not None:
                emit(
                    CONSECUTIVE_FAILURE,
                    {
                        "consecutive_failures": {
                            "current": failures,
                            "max": n,
                            "threshold": level,
                            "remaining": max(n - failures, 0),
                        }
                    },
                )
            if s.auto_disable and failures >= n:
                reason = REASON_CONSECUTIVE_FAILURE
        if reason is None and s.auto_disable and _gone(attempt):
            reason = REASON_GONE
        alerted_at = health.exhausted_alerted_at
        if self._exhausted(outcome, attempt) and _window_passed(
            alerted_at, s.exhausted_window_ms or 0, now
        ):
            emit(EXHAUSTED_RETRIES, {})
            alerted_at = now
        return Verdict(Health(failures, alerted_at), tuple(events), reason)

    def disabled(
        self, outcome: Outcome, destination: Destination | None, reason: str, now: int
    ) -> tuple[OperatorRecord, ...]:
        attempt = outcome.attempt
        assert attempt is not None
        events: list[OperatorRecord] = []
        emit = self._emitter(outcome, attempt, destination, events, now, disabled_at=now)
        emit(DESTINATION_DISABLED, {"disabled_at": format_ms(now), "reason": reason})
        return tuple(events)

    def _exhausted(self, outcome: Outcome, attempt: Attempt) -> bool:
        return (
            self.alerts_exhausted
            and outcome.task.event.eligible_for_retry
            and attempt.attempt_number > self.settings.retry_limit
        )

    def _emitter(
        self,
        outcome: Outcome,
        attempt: Attempt,
        destination: Destination | None,
        into: list[OperatorRecord],
        now: int,
        *,
        disabled_at: int | None = None,
    ) -> Callable[[str, dict[str, Any]], None]:
        """`emit(topic, extra)` appends that event if wanted; the common part is built once."""
        common: dict[str, Any] = {}

        def emit(topic: str, extra: dict[str, Any]) -> None:
            if not self.settings.wants(topic):
                return
            if not common:
                shown = _projection(destination, attempt)
                if disabled_at is not None:
                    shown["disabled_at"] = format_ms(disabled_at)
                common.update(
                    tenant_id=attempt.tenant_id,
                    event=envelope.event(outcome.task.event),
                    attempt=envelope.attempt(attempt),
                    destination=shown,
                )
            into.append(
                envelope.record(
                    topic,
                    {**common, **extra},
                    tenant_id=attempt.tenant_id,
                    deployment_id=self.settings.deployment_id,
                    now=now,
                )
            )

        return emit


def _projection(destination: Destination | None, attempt: Attempt) -> dict[str, Any]:
    if destination is not None:
        return envelope.destination(destination)
    # deleted while the attempt was in flight: what the attempt itself knows
    return {
        "id": attempt.destination_id,
        "tenant_id": attempt.tenant_id,
        "type": attempt.destination_type,
    }


def _gone(attempt: Attempt) -> bool:
    return attempt.destination_type == "webhook" and attempt.code == "410"


def _window_passed(last: int | None, window_ms: int, now: int) -> bool:
    return last is None or window_ms == 0 or now - last >= window_ms
