"""The delivery worker over the real embedded store.

The provider here is a stand-in written for each test: these tests pin what the worker does with
a result, a slow delivery, or a provider that breaks, which no real destination does on demand.
Webhook delivery itself is covered end to end in tests/e2e.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support.waiting import until

from waypost.core.backoff import RetryPolicy
from waypost.core.ids import IdGenerator
from waypost.core.models import Attempt, DeliveryResult, Destination, Event
from waypost.core.paging import AttemptQuery, PageRequest
from waypost.core.timefmt import now_ms
from waypost.delivery.flow import FlowSettings
from waypost.delivery.worker import MAX_CLAIMS_WITHOUT_ATTEMPT, DeliveryWorker, WorkerSettings
from waypost.destinations.provider import Display
from waypost.destinations.registry import Registry
from waypost.errors import DeliveryInfrastructureError
from waypost.storage.sealing import Sealer
from waypost.storage.sqlite.backend import SqliteBackend
from waypost.telemetry.hooks import OutcomeObserver

pytestmark = pytest.mark.anyio
Behaviour = Callable[[Event], Awaitable[DeliveryResult]]
NO_RETRIES = RetryPolicy(max_retries=0, interval_seconds=1)


class StandIn:
    type = "webhook"

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.calls = 0

    def describe(self) -> dict[str, Any]:
        return {"type": self.type}

    def validate(self, destination: Destination) -> list[str]:
        return []

    def preprocess(
        self, destination: Destination, original: Destination | None, *, admin: bool, now: int
    ) -> Destination:
        return destination

    def display(self, destination: Destination, now: int) -> Display:
        return Display(destination.credentials, "")

    async def publish(self, event: Event, destination: Destination) -> DeliveryResult:
        self.calls += 1
        return await self.behaviour(event)

    async def close(self) -> None:
        return None


def worker_for(
    store: SqliteBackend,
    provider: StandIn,
    policy: RetryPolicy = NO_RETRIES,
    outcomes: OutcomeObserver | None = None,
) -> DeliveryWorker:
    settings = WorkerSettings(concurrency=4, lease_ms=60_000, idle_poll_ms=50, release_delay_ms=0)
    return DeliveryWorker(
        queue=store,
        destinations=store,
        registry=Registry([provider]),
        policy=policy,
        ids=IdGenerator(),
        settings=settings,
        outcomes=outcomes,
    )


async def publish(store: SqliteBackend, event_id: str = "e1", *, retry: bool = True) -> None:
    event = Event(event_id, "t", "a", now_ms(), b"{}", retry, {}, "", ("d",))
    await store.accept(event, now_ms(), 0)


async def attempts(store: SqliteBackend) -> list[Attempt]:
    page = await store.list_attempts(AttemptQuery(), PageRequest(limit=100, dir="asc"))
    return page.items


async def run_until(worker: DeliveryWorker, check: Callable[[], Awaitable[bool]]) -> None:
    running = asyncio.create_task(worker.run())
    try:
        await until(check)
    finally:
        worker.stop()
        await running


async def ok(event: Event) -> DeliveryResult:
    return DeliveryResult("success", "200")


async def refused(event: Event) -> DeliveryResult:
    return DeliveryResult("failed", "500", {"status": 500, "body": "no"})


async def test_failures_are_retried_on_schedule_until_the_budget_is_spent(
    store: SqliteBackend,
) -> None:
    provider = StandIn(refused)
    worker = worker_for(store, provider, RetryPolicy(schedule=(1, 1)))
    await publish(store)
    await run_until(worker, lambda: _count(store, 3))
    made = await attempts(store)
    assert [a.attempt_number for a in made] == [1, 2, 3]
    assert all(a.status == "failed" and not a.manual for a in made)
    assert await store.next_visible_at() is None  # nothing left scheduled


async def test_each_attempt_records_how_long_the_provider_took(store: SqliteBackend) -> None:
    async def answers_after_a_while(event: Event) -> DeliveryResult:
        await asyncio.sleep(0.12 if event.id == "slow" else 0)
        return DeliveryResult("success", "200")

    worker = worker_for(store, StandIn(answers_after_a_while))
    await publish(store, "slow")
    await publish(store, "quick")
    await run_until(worker, lambda: _count(store, 2))
    latency = {a.event_id: a.latency_ms for a in await attempts(store)}
    assert latency["slow"] is not None and latency["slow"] >= 120
    assert latency["quick"] is not None and 0 <= latency["quick"] < latency["slow"]


async def test_each_attempt_records_the_headers_its_provider_sent(store: SqliteBackend) -> None:
    sent = {"Content-Type": "application/json", "X-Outpost-Event-Id": "with"}

    async def answers(event: Event) -> DeliveryResult:
        return DeliveryResult(
            "success", "200", request_headers=sent if event.id == "with" else None
        )

    worker = worker_for(store, StandIn(answers))
    await publish(store, "with")
    await publish(store, "without")
    await run_until(worker, lambda: _count(store, 2))
    recorded = {a.event_id: a.request_headers for a in await attempts(store)}
    assert recorded == {"with": sent, "without": None}


async def test_an_event_not_eligible_for_retry_is_attempted_once(store: SqliteBackend) -> None:
    worker = worker_for(store, StandIn(refused), RetryPolicy(schedule=(1,)))
    await publish(store, retry=False)
    await run_until(worker, lambda: _count(store, 1))
    assert await store.next_visible_at() is None


async def test_a_provider_bug_becomes_a_failed_attempt_not_a_loop(store: SqliteBackend) -> None:
    async def broken(event: Event) -> DeliveryResult:
        raise RuntimeError("bug")

    provider = StandIn(broken)
    await publish(store)
    await run_until(worker_for(store, provider), lambda: _count(store, 1))
    [made] = await attempts(store)
    assert (made.status, made.code, made.response_data) == (
        "failed",
        "ERR",
        {"error": "internal error"},
    )
    assert provider.calls == 1


async def test_infrastructure_faults_release_the_task_then_give_up_as_a_failed_attempt(
    store: SqliteBackend,
) -> None:
    async def unreachable(event: Event) -> DeliveryResult:
        raise DeliveryInfrastructureError("proxy down")

    provider = StandIn(unreachable)
    await publish(store)
    await run_until(worker_for(store, provider), lambda: _count(store, 1))
    [made] = await attempts(store)
    assert (made.code, made.response_data) == ("ERR", {"error": "proxy down"})
    assert provider.calls == MAX_CLAIMS_WITHOUT_ATTEMPT


async def test_a_destination_disabled_after_publish_is_skipped_without_an_attempt(
    store: SqliteBackend,
) -> None:
    provider = StandIn(ok)
    await publish(store)
    current = await store.get_destination("t", "d")
    assert current is not None
    await store.update_destination(replace(current, disabled_at=now_ms()))

    async def queue_empty() -> bool:
        return await store.next_visible_at() is None

    await run_until(worker_for(store, provider), queue_empty)
    assert provider.calls == 0
    assert await attempts(store) == []


async def test_stop_waits_for_deliveries_in_flight_and_records_them(store: SqliteBackend) -> None:
    started = asyncio.Event()

    async def slow(event: Event) -> DeliveryResult:
        started.set()
        await asyncio.sleep(0.3)
        return DeliveryResult("success", "200")

    worker = worker_for(store, StandIn(slow))
    await publish(store)
    running = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 10)
    worker.stop()
    await running
    assert [a.status for a in await attempts(store)] == ["success"]


async def test_never_more_deliveries_at_once_than_the_concurrency_and_stop_drains_the_claimed(
    store: SqliteBackend,
) -> None:
    # Claims run ahead of the free slots (worker_for's concurrency is 4): the tasks claimed but
    # not started must still wait for a slot, and be delivered when the worker is stopped.
    at_once = peak = 0
    eight_started = asyncio.Event()

    async def slow(event: Event) -> DeliveryResult:
        nonlocal at_once, peak
        at_once += 1
        peak = max(peak, at_once)
        await asyncio.sleep(0.05)
        at_once -= 1
        if provider.calls >= 8:
            eight_started.set()
        return DeliveryResult("success", "200")

    provider = StandIn(slow)
    worker = worker_for(store, provider)
    for n in range(12):
        await publish(store, f"e{n}")
    running = asyncio.create_task(worker.run())
    await asyncio.wait_for(eight_started.wait(), 10)
    worker.stop()
    await running
    assert peak == 4
    delivered = {a.event_id for a in await attempts(store)}
    assert len(delivered) == provider.calls >= 8  # everything started was recorded
    leftover = await store.claim(100, 60_000)  # nothing claimed was stranded under a lease
    assert {t.event.id for t in leftover} | delivered == {f"e{n}" for n in range(12)}


async def test_leases_of_a_dead_process_are_released_when_the_store_reopens(
    tmp_path: Path,
) -> None:
    first = SqliteBackend(tmp_path, sealer=Sealer("worker-tests"), synchronous="NORMAL")
    await first.open()
    await publish(first)
    assert len(await first.claim(10, 60_000)) == 1
    assert await first.claim(10, 60_000) == []  # leased: invisible to other claims
    await first.close()  # as if killed: the task was never finished

    second = SqliteBackend(tmp_path, sealer=Sealer("worker-tests"), synchronous="NORMAL")
    await second.open()
    try:
        [task] = await second.claim(10, 60_000)
        assert (task.event.id, task.attempt_number, task.claims) == ("e1", 1, 2)
    finally:
        await second.close()


async def _count(store: SqliteBackend, n: int) -> bool:
    return len(await attempts(store)) >= n


async def test_deliveries_held_back_by_a_rate_limit_go_back_unattempted_and_uncounted(
    store: SqliteBackend,
) -> None:
    provider = StandIn(ok)
    limited = WorkerSettings(
        concurrency=4,
        lease_ms=60_000,
        idle_poll_ms=50,
        flow=FlowSettings(4, 4, 4, rate_per_second=1.0, circuit_failures=0),
    )
    worker = DeliveryWorker(
        queue=store,
        destinations=store,
        registry=Registry([provider]),
        policy=NO_RETRIES,
        ids=IdGenerator(),
        settings=limited,
    )
    for n in range(3):
        await publish(store, f"e{n}")
    await run_until(worker, lambda: _count(store, 1))
    assert provider.calls == 1  # one per second: the others waited, then the worker stopped
    [first] = await attempts(store)

    # The next one waited in memory and is due at once; the last was deferred to its token's
    # time. Both come back with no claim spent and no attempt recorded.
    back: list[Any] = []

    async def both_back() -> bool:
        back.extend(await store.claim(10, 60_000))
        return len(back) == 2

    await until(both_back, timeout=5)
    assert {t.event.id for t in back} == {"e0", "e1", "e2"} - {first.event_id}
    assert {t.claims for t in back} == {1}
    assert [a.attempt_number for a in await attempts(store)] == [1]


async def test_a_trickle_of_work_is_gathered_for_a_moment_before_the_next_claim(
    store: SqliteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    claim = store.claim

    async def noted_claim(limit: int, lease_ms: int) -> list[Any]:
        found = await claim(limit, lease_ms)
        if found:
            sizes.append(len(found))
        return found

    monkeypatch.setattr(store, "claim", noted_claim)
    worker = DeliveryWorker(
        queue=store,
        destinations=store,
        registry=Registry([StandIn(ok)]),
        policy=NO_RETRIES,
        ids=IdGenerator(),
        # Woken by each publish, never by a poll; a linger far longer than three publishes take.
        settings=WorkerSettings(concurrency=4, lease_ms=60_000, idle_poll_ms=60_000, linger_ms=500),
    )
    running = asyncio.create_task(worker.run())
    try:
        await publish(store, "e0")
        await until(lambda: _count(store, 1))
        for n in range(1, 4):  # the claim after the first, short one waits: all three in one
            await publish(store, f"e{n}")
        await until(lambda: _count(store, 4))
    finally:
        worker.stop()
        await running
    assert sizes == [1, 3]
