"""The relay (waypost/operator/relay.py): the outbox through a real HTTP sink (the loopback
receiver of the e2e suite), over the memory backend's outbox (same contract as the SQL ones)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from support.memory_store import MemoryBackend
from support.receiver import Receiver

from waypost.core.operator_records import OperatorRecord
from waypost.core.timefmt import now_ms
from waypost.operator.relay import Relay, backoff_ms
from waypost.operator.sinks import HttpSink
from waypost.transport.http import HttpClient

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as rx:
        yield rx


def records(count: int) -> list[OperatorRecord]:
    return [
        OperatorRecord(f"op_{n}", "attempt.success", json.dumps({"n": n}).encode(), now_ms())
        for n in range(count)
    ]


async def relay_until_drained(store: MemoryBackend, url: str) -> None:
    relay = Relay(store, HttpSink(url, "", HttpClient(user_agent="test")))
    relay.stop()  # a stopped relay sends what is due, then returns
    await asyncio.wait_for(relay.run(), 30)


def test_every_due_event_is_sent_then_removed(receiver: Receiver) -> None:
    path = receiver.new_path("relay")

    async def main() -> list[OperatorRecord]:
        store = MemoryBackend()
        await store.open()
        await store.add_operator_events(records(40))  # more than one batch
        await relay_until_drained(store, receiver.configure(path))
        return await store.claim_operator_events(100, 1000)

    assert asyncio.run(main()) == []
    sent = sorted(json.loads(r.body)["n"] for r in receiver.requests_for(path))
    assert sent == list(range(40))


def test_a_refused_event_waits_its_backoff_and_counts_the_try(receiver: Receiver) -> None:
    path = receiver.new_path("relay-down")

    async def main() -> tuple[list[OperatorRecord], list[OperatorRecord]]:
        store = MemoryBackend()
        await store.open()
        await store.add_operator_events(records(1))
        await relay_until_drained(store, receiver.configure(path, status=500))
        not_yet = await store.claim_operator_events(100, 1000)
        deadline = asyncio.get_running_loop().time() + 10
        later: list[OperatorRecord] = []
        while not later and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)  # polling for the retry, due after its backoff (1 s)
            later = await store.claim_operator_events(100, 1000)
        return not_yet, later

    not_yet, later = asyncio.run(main())
    assert not_yet == []
    assert [(r.id, r.tries) for r in later] == [("op_0", 1)]


def test_backoff_grows_to_five_minutes() -> None:
    assert [backoff_ms(n) // 1000 for n in (1, 2, 3, 9, 10, 50)] == [1, 2, 4, 256, 300, 300]
