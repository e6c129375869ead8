"""What follows an attempt (pure): retry later, cancel the pending retry, or nothing (contract.md
§3.2)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from waypost.core.backoff import RetryPolicy
from waypost.core.models import Attempt, DeliveryResult, DeliveryTask, Outcome

if TYPE_CHECKING:
    from waypost.config import Config


def retry_policy(config: Config) -> RetryPolicy:
    """The settings' retry schedule (also told to the portal, which shows the retry budget)."""
    return RetryPolicy(
        max_retries=config.max_retry_limit,
        interval_seconds=config.retry_interval_seconds,
        schedule=config.retry_schedule,
        retry_after_max_seconds=config.retry_after_max_seconds,
    )


def next_step(
    task: DeliveryTask, result: DeliveryResult, attempt: Attempt, policy: RetryPolicy, now: int
) -> Outcome:
    """A failed attempt within budget schedules the next; a manual attempt that schedules nothing
    cancels the pending automatic retry of its event and destination (it took that retry's place).
    """
    if (
        not result.ok
        and task.event.eligible_for_retry
        and policy.retries_after(task.attempt_number)
    ):
        delay = policy.next_delay_seconds(task.attempt_number, result.retry_after_s)
        due = now + round(delay * 1000)
        return Outcome(task, attempt, retry_at=due)
    return Outcome(task, attempt, cancel_retry=task.manual)


def exhausted(outcome: Outcome) -> bool:
    """A failed attempt after which no automatic retry follows, though the event could retry:
    the retry budget (`MAX_RETRY_LIMIT`) is spent. The operator's cue to look."""
    attempt = outcome.attempt
    return (
        attempt is not None
        and attempt.status != "success"
        and outcome.retry_at is None
        and outcome.task.event.eligible_for_retry
    )
