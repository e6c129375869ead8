"""Polling with a deadline, and bounded observation windows.

Tests never sleep for a fixed time to "let things happen". They either poll a condition until a
deadline (`poll_until`, or `until` in async tests) or, to show that something does *not* happen,
watch for a bounded and explicitly named observation window (see `Receiver.assert_quiet`).
Harnesses that hand back whatever arrived, for the caller to judge, use `arrivals`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
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


async def until(
    check: Callable[[], Awaitable[bool]],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.02,
    what: str = "condition",
) -> None:
    """Await `check` until it is true; PollTimeout when `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while not await check():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise PollTimeout(f"{what} not met within {timeout:.1f}s")
        await asyncio.sleep(min(interval, remaining))


async def arrivals(
    read: Callable[[], Sequence[T]],
    count: int,
    timeout: float,
    *,
    blocking: bool = False,
    interval: float = 0.02,
) -> list[T]:
    """Call `read` (it returns everything that arrived so far) until it returns `count` items or
    `timeout` passed, and return its last answer: too few is for the caller to judge.

    `blocking`: `read` blocks (a client of a remote service) and runs in a thread.
    """
    deadline = time.monotonic() + timeout
    while True:
        got = list(await asyncio.to_thread(read) if blocking else read())
        if len(got) >= count or time.monotonic() > deadline:
            return got
        await asyncio.sleep(interval)
