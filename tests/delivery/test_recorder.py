"""The recorder: outcomes that end close together share one write of their attempts.

`finish` here is a list that notes each write: what is pinned is how outcomes are grouped into
writes, which the store cannot show (tests/delivery/test_worker.py runs the worker, recorder
included, over the real embedded store)."""

from __future__ import annotations

import asyncio

import pytest

from waypost.core.models import DeliveryTask, Event, Outcome
from waypost.delivery.recorder import Recorder

pytestmark = pytest.mark.anyio


def outcome(n: int) -> Outcome:
    event = Event(f"e{n}", "t", "a", 0, b"{}", True, {}, "", ("d",))
    return Outcome(DeliveryTask(n, event, "d", 1, False, 1, 1))


async def written_in(linger_seconds: float) -> list[list[int]]:
    writes: list[list[int]] = []

    async def finish(outcomes: list[Outcome]) -> None:
        writes.append([o.task.id for o in outcomes])

    recorder = Recorder(finish, linger_seconds=linger_seconds)
    futures = []
    for n in range(3):  # three deliveries ending on three turns of the event loop
        futures.append(recorder.submit(outcome(n)))
        await asyncio.sleep(0)
    await asyncio.gather(*futures)
    assert recorder.backlog == 0
    return writes


async def test_outcomes_ending_within_the_linger_share_one_write() -> None:
    assert await written_in(linger_seconds=0.5) == [[0, 1, 2]]


async def test_without_a_linger_the_first_outcome_from_idle_is_written_at_once() -> None:
    writes = await written_in(linger_seconds=0)
    assert writes[0] == [0] and [n for write in writes for n in write] == [0, 1, 2]
