"""Polling with a deadline, and bounded observation windows.

Tests never sleep for a fixed time to "let things happen". They either poll a condition until a
deadline (`poll_until`) or, to show that something does *not* happen, watch for a bounded and
explicitly named observation window (see `Receiver.assert_quiet`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0
DEFAULT_INTERVAL = 0.05


class PollTimeout(AssertionError):
    """The polled condition did not hold before the deadline."""


def poll_until(
    probe: Callable[[], T | None],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = DEFAULT_INTERVAL,
    what: str = "condition",
) -> T:
    """Call `probe` until it returns a truthy value and return that value.

    Exceptions raised by `probe` count as "not yet" and the last one is reported on timeout, so a
    probe may simply assert.
    """
    deadline = time.monotonic() + timeout
    last_value: object = None
    last_error: BaseException | None = None
    while True:
        try:
            value = probe()
        except Exception as exc:  # the probe may assert; keep polling
            last_error = exc
        else:
            if value:
                return value
            last_value = value
            last_error = None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            detail = f"last error: {last_error!r}" if last_error else f"last value: {last_value!r}"
            raise PollTimeout(f"{what} not met within {timeout:.1f}s ({detail})") from last_error
        time.sleep(min(interval, remaining))
