"""The delivery worker's scheduling rules (waypost/delivery/flow.py): pure, times passed in."""

from __future__ import annotations

import itertools

from waypost.core.models import DeliveryTask, Event
from waypost.delivery.flow import HOLD_MS, Flow, FlowSettings

_ids = itertools.count(1)


def task(tenant: str, destination: str) -> DeliveryTask:
    event = Event(id=f"e{next(_ids)}", tenant_id=tenant, topic="t", time=0, data=b"{}")
    return DeliveryTask(id=next(_ids), event=event, destination_id=destination, attempt_number=1)


def flow(**overrides: object) -> Flow:
    settings: dict[str, object] = {
        "concurrency": 64,
        "destination_concurrency": 8,
        "tenant_concurrency": 32,
        "rate_per_second": 0.0,
        "circuit_failures": 3,
        "timeout_ms": 5_000,
    }
    settings.update(overrides)
    made = Flow(FlowSettings(**settings))  # type: ignore[arg-type]
    return made


def take_all(f: Flow, now: int) -> list[DeliveryTask]:
    taken = []
    while (t := f.take(now)) is not None:
        taken.append(t)
    return taken


def test_tasks_start_round_robin_across_tenants_not_in_claim_order() -> None:
    f = flow()
    burst = [task("a", "d1") for _ in range(5)]
    other = [task("b", "d2"), task("c", "d3")]
    for t in [*burst, *other]:
        f.add(t)
    first_three = [f.take(0) for _ in range(3)]
    assert {t.event.tenant_id for t in first_three if t} == {"a", "b", "c"}


def test_tenant_turns_before_its_destinations_turns() -> None:
    f = flow()
    for d in ("d1", "d2", "d3", "d4"):  # one tenant with four busy destinations
        f.add(task("a", d))
        f.add(task("a", d))
    f.add(task("b", "x"))
    f.add(task("b", "x"))
    order = [t.event.tenant_id for t in take_all(f, 0)[:4]]
    assert order.count("b") == 2  # b gets every other turn, not one in five


def test_a_destination_holds_at_most_its_own_cap() -> None:
    f = flow(destination_concurrency=8)
    f.learn("a", "d", {"outpost.max_concurrency": "2"})
    tasks = [task("a", "d") for _ in range(5)]
    for t in tasks:
        f.add(t)
    started = take_all(f, 0)
    assert len(started) == 2
    f.finished(started[0], "200", 10)
    assert f.take(10) is tasks[2]


def test_the_default_cap_is_exceeded_only_while_more_than_a_quarter_of_slots_are_free() -> None:
    f = flow(concurrency=8, destination_concurrency=2, tenant_concurrency=4)
    for _ in range(10):
        f.add(task("a", "busy"))
    assert len(take_all(f, 0)) == 6  # alone, it may use all but the reserved quarter (2)
    for _ in range(3):
        f.add(task("b", "other"))
    assert len(take_all(f, 0)) == 2  # the reserve: for those under their cap
    assert f.running == 8


def test_a_tenant_with_many_busy_destinations_leaves_the_reserve_to_others() -> None:
    f = flow(concurrency=16, destination_concurrency=2, tenant_concurrency=8)
    for d in range(20):
        f.add(task("a", f"d{d}"))
    assert len(take_all(f, 0)) == 12  # its cap of 8, then borrowing down to the reserve of 4
    f.add(task("b", "x"))
    assert f.take(0) is not None


def test_circuit_opens_after_consecutive_timeouts_and_lets_one_probe_through() -> None:
    f = flow(circuit_failures=3)
    f.learn("a", "d", {"outpost.max_concurrency": "4"})
    for _ in range(10):
        f.add(task("a", "d"))
    running = take_all(f, 0)
    assert len(running) == 4
    for t in running[:3]:
        f.finished(t, "timeout", 5_000)
    assert f.circuit_open("a", "d")
    assert f.take(5_000) is None  # one still in flight: it is the probe
    f.finished(running[3], "timeout", 5_001)
    probe = f.take(5_001)
    assert probe is not None and f.take(5_001) is None
    f.finished(probe, "500", 5_010)  # an answer, even an error, closes the circuit
    assert not f.circuit_open("a", "d")
    assert len(take_all(f, 5_010)) == 4


def test_http_errors_do_not_open_the_circuit() -> None:
    f = flow(circuit_failures=2)
    for _ in range(4):
        f.add(task("a", "d"))
    for t in take_all(f, 0):
        f.finished(t, "503", 1)
    assert not f.circuit_open("a", "d")


def test_open_circuit_tasks_go_back_until_after_the_probe() -> None:
    f = flow(destination_concurrency=2, circuit_failures=1, timeout_ms=5_000)
    f.add(task("a", "d"))
    [first] = take_all(f, 0)
    f.finished(first, "timeout", 5_000)
    f.add(task("a", "d"))
    probe = f.take(5_000)
    assert probe is not None
    later = [task("a", "d") for _ in range(3)]
    for t in later:
        f.add(t)
    deferred = f.overflow(5_000)
    assert [t for t, _ in deferred] == later
    assert all(at >= 10_000 for _, at in deferred)  # not before the probe's timeout
    assert f.waiting == 0


def test_rate_limit_spaces_starts_and_says_when_the_next_may_start() -> None:
    f = flow()
    f.learn("a", "d", {"outpost.rate_limit_per_second": "2"})
    for _ in range(3):
        f.add(task("a", "d"))
    assert f.take(1_000) is not None
    assert f.take(1_000) is None
    assert f.next_start_at(1_000) == 1_500
    assert f.take(1_499) is None
    assert f.take(1_500) is not None


def test_slow_rate_limited_tasks_go_back_with_their_start_time() -> None:
    f = flow()
    f.learn("a", "d", {"outpost.rate_limit_per_second": "0.5"})  # one every 2 s
    tasks = [task("a", "d") for _ in range(3)]
    for t in tasks:
        f.add(t)
    assert f.take(0) is tasks[0]
    deferred = dict((t.id, at) for t, at in f.overflow(0))
    assert set(deferred) == {tasks[1].id, tasks[2].id}  # 2 s and 4 s away: beyond HOLD_MS
    assert deferred[tasks[1].id] >= 2_000 > HOLD_MS
    assert deferred[tasks[2].id] >= 4_000


def test_fast_busy_destination_keeps_its_tasks_in_memory() -> None:
    f = flow(destination_concurrency=2)
    for _ in range(4):
        f.add(task("a", "d"))
    first = take_all(f, 0)
    for t in first:
        f.finished(t, "200", 3)  # 3 ms each
    for _ in range(2):
        f.add(task("a", "d"))
    take_all(f, 3)
    assert f.overflow(3) == []


def test_memory_is_bounded_by_giving_back_blocked_tasks() -> None:
    f = flow(concurrency=4, destination_concurrency=1, tenant_concurrency=4)
    for d in ("d1", "d2", "d3", "d4"):
        for _ in range(3):
            f.add(task("a", d))
    take_all(f, 0)
    f.overflow(0)
    assert f.waiting <= 4


def test_state_of_idle_destinations_is_forgotten() -> None:
    f = flow()
    t = task("a", "d")
    f.add(t)
    f.take(0)
    f.finished(t, "200", 1)
    assert f.unknown([task("a", "d")]) == {("a", "d")}


def test_drain_returns_every_waiting_task() -> None:
    f = flow(destination_concurrency=1)
    tasks = [task("a", "d") for _ in range(3)]
    for t in tasks:
        f.add(t)
    f.take(0)
    assert f.drain() == tasks[1:]
    assert f.waiting == 0 and f.take(0) is None
