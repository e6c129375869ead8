"""Automatic retry policy: how many retries a failed delivery gets and how long each waits."""

from __future__ import annotations

from dataclasses import dataclass

# Exponential growth is capped well before it could overflow a timer or a datastore score: a
# retry later than a week out is indistinguishable from giving up.
MAX_DELAY_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff (`interval_seconds * 2**n`) unless an explicit `schedule` is given.

    A schedule (seconds per retry) replaces both the curve and `max_retries`: there are exactly
    `len(schedule)` retries, which is how Outpost's RETRY_SCHEDULE behaves.
    """

    max_retries: int = 10
    interval_seconds: int = 30
    schedule: tuple[int, ...] = ()
    retry_after_max_seconds: int = 3600  # 0: Retry-After is not honoured

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.interval_seconds < 0:
            raise ValueError("max_retries and interval_seconds must not be negative")
        if any(delay < 1 for delay in self.schedule):
            raise ValueError("every retry schedule entry must be at least 1 second")

    @property
    def limit(self) -> int:
        """The retry budget: an event gets at most `limit + 1` automatic attempts."""
        return len(self.schedule) if self.schedule else self.max_retries

    def delay_seconds(self, attempt_number: int) -> int:
        """Wait before the retry that follows failed attempt `attempt_number` (1-based)."""
        if attempt_number < 1:
            raise ValueError("attempt numbers start at 1")
        if self.schedule:
            # Past the end the last delay repeats (only reachable for manual attempts).
            return self.schedule[min(attempt_number, len(self.schedule)) - 1]
        # Bound the exponent first so 2**n stays a small int however large the attempt number.
        exponent = min(attempt_number - 1, MAX_DELAY_SECONDS.bit_length())
        return min(self.interval_seconds << exponent, MAX_DELAY_SECONDS)

    def next_delay_seconds(self, attempt_number: int, retry_after: float | None) -> float:
        """Wait before the retry that follows failed attempt `attempt_number`: the destination's
        own Retry-After when it sent one (at least 1 s, at most `retry_after_max_seconds`),
        otherwise the schedule's."""
        if retry_after is None or self.retry_after_max_seconds <= 0:
            return self.delay_seconds(attempt_number)
        return min(max(retry_after, 1.0), float(self.retry_after_max_seconds))

    def retries_after(self, attempt_number: int) -> bool:
        """Whether failed attempt `attempt_number` still has a retry left in the budget."""
        return attempt_number <= self.limit
