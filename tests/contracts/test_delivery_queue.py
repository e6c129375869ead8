"""DeliveryQueue contract (contract.md §2.4, §2.5, §3.2): accepting, claiming, leasing, finishing,
retrying.

`claim` and `next_visible_at` see the whole queue, so every test here starts on an empty one.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack

import anyio
import pytest

from waypost.core.models import DeliveryTask, Event, Outcome
from waypost.core.paging import AttemptQuery, EventQuery, PageRequest
from waypost.core.timefmt import now_ms
from waypost.errors import ConfigError

from ._support import BASE, HOUR, Backend, MakeBackend, attempt, event, uid

pytestmark = [pytest.mark.anyio, pytest.mark.clean_database]

LEASE = 60_000


async def _accept(backend: Backend, e: Event) -> bool:
    now = now_ms()
    return await backend.accept(e, now, now - HOUR)


async def _claim_all(backend: Backend, lease_ms: int = LEASE) -> list[DeliveryTask]:
    return await backend.claim(1000, lease_ms)


def _pairs(tasks: Sequence[DeliveryTask]) -> list[tuple[str, str, int, bool]]:
    return sorted((t.event.id, t.destination_id, t.attempt_number, t.manual) for t in tasks)


def _failed(task: DeliveryTask, retry_at: int | None = None) -> Outcome:
    made = attempt(
        uid("att"),
        task.event,
        task.destination_id,
        time=now_ms(),
        number=task.attempt_number,
        status="failed",
        manual=task.manual,
        code="500",
    )
    return Outcome(task, made, retry_at=retry_at)


async def _attempt_numbers(backend: Backend, e: Event) -> list[tuple[str, int]]:
    page = await backend.list_attempts(AttemptQuery(event_ids=(e.id,)), PageRequest(dir="asc"))
    return sorted((a.destination_id, a.attempt_number) for a in page.items)  # times may tie


# Accepting


async def test_accept_stores_the_event_and_queues_one_task_per_match(backend: Backend) -> None:
    e = event(uid("evt"), uid("tnt"), data=b'{"b":2,"a":1.0}', matched=("d1", "d2", "d3"))

    assert await _accept(backend, e) is False

    assert await backend.get_event(e.id) == e
    tasks = await _claim_all(backend)
    assert _pairs(tasks) == [(e.id, d, 1, False) for d in ("d1", "d2", "d3")]
    assert all(t.event == e and t.claims == 1 for t in tasks)
    assert len({t.id for t in tasks}) == 3
    assert await _claim_all(backend) == []


async def test_an_event_that_matched_nothing_is_stored_but_queues_nothing(
    backend: Backend,
) -> None:
    e = event(uid("evt"), uid("tnt"))

    assert await _accept(backend, e) is False

    assert await backend.get_event(e.id) == e
    assert await _claim_all(backend) == []
    assert await backend.next_visible_at() is None


async def test_the_same_id_within_the_window_is_a_duplicate_and_queues_nothing(
    backend: Backend,
) -> None:
    first = event(uid("evt"), uid("tnt"), data=b'{"v":1}', matched=("d1", "d2"))
    now = now_ms() - 1000
    assert await backend.accept(first, now, now - HOUR) is False

    again = event(first.id, first.tenant_id, data=b'{"v":2}', matched=("d1", "d3"))
    assert await backend.accept(again, now + 10, now + 10 - HOUR) is True
    # (another tenant's event of the same id is its own: tests/contracts/test_event_identity.py)

    assert await backend.get_event(first.id) == first, "a duplicate does not replace the event"
    assert _pairs(await _claim_all(backend)) == [
        (first.id, "d1", 1, False),
        (first.id, "d2", 1, False),
    ]


async def test_an_earlier_event_that_matched_nothing_is_replaced_not_a_duplicate(
    backend: Backend,
) -> None:
    unmatched = event(uid("evt"), uid("tnt"), data=b'{"v":1}')
    now = now_ms() - 1000  # both acceptances in the past: their tasks are due
    assert await backend.accept(unmatched, now, now - HOUR) is False

    matched = event(unmatched.id, unmatched.tenant_id, data=b'{"v":2}', matched=("d1",))
    assert await backend.accept(matched, now + 10, now + 10 - HOUR) is False

    assert await backend.get_event(matched.id) == matched
    [task] = await _claim_all(backend)
    assert (task.destination_id, task.event) == ("d1", matched)


async def test_after_the_window_the_same_id_is_accepted_again(backend: Backend) -> None:
    e = event(uid("evt"), uid("tnt"), matched=("d1",))
    now = now_ms() - 1000  # both acceptances in the past: their tasks are due
    assert await backend.accept(e, now, now - HOUR) is False

    later = now + 10
    # the window starts after the first acceptance: it no longer counts
    assert await backend.accept(e, later, now + 1) is False

    assert _pairs(await _claim_all(backend)) == [(e.id, "d1", 1, False)] * 2


async def test_a_later_publish_that_matches_nothing_leaves_the_accepted_event_alone(
    backend: Backend,
) -> None:
    """contract.md §2.3: a publish with no match logs nothing, so an event already accepted (and
    perhaps already delivered) keeps its data and its matched destinations."""
    first = event(uid("evt"), uid("tnt"), data=b'{"v":1}', matched=("d1",))
    now = now_ms() - 1000
    assert await backend.accept(first, now, now - HOUR) is False

    unmatched = event(first.id, first.tenant_id, data=b'{"v":2}')
    assert await backend.accept(unmatched, now + 10, now + 10 - HOUR) is False

    assert await backend.get_event(first.id) == first
    [task] = await _claim_all(backend)
    assert task.event == first, "the pending delivery carries the data that was accepted for it"
    listed = await backend.list_events(EventQuery(destination_ids=("d1",)), PageRequest())
    assert [x.id for x in listed.items] == [first.id]


# Claiming and leases


async def test_a_claimed_task_is_leased_until_its_lease_ends(backend: Backend) -> None:
    e = event(uid("evt"), uid("tnt"), matched=("d1",))
    await _accept(backend, e)

    [task] = await backend.claim(10, 400)
    assert await backend.claim(10, 400) == [], "leased: invisible to the next claim"
    await anyio.sleep(0.6)
    [again] = await backend.claim(10, LEASE)

    assert (again.id, again.event, again.destination_id) == (task.id, e, "d1")
    assert (again.attempt_number, again.manual) == (1, False)
    assert (task.claims, again.claims) == (1, 2)
    assert await backend.claim(10, LEASE) == []


async def test_claim_takes_at_most_limit_tasks(backend: Backend) -> None:
    e = event(uid("evt"), uid("tnt"), matched=("d1", "d2", "d3", "d4", "d5"))
    await _accept(backend, e)

    batches = [await backend.claim(2, LEASE) for _ in range(4)]

    assert [len(b) for b in batches] == [2, 2, 1, 0]
    claimed = [t for b in batches for t in b]
    assert sorted(t.destination_id for t in claimed) == ["d1", "d2", "d3", "d4", "d5"]
    assert len({t.id for t in claimed}) == 5


async def test_tasks_due_later_are_not_claimed_and_the_earliest_is_reported(
    backend: Backend,
) -> None:
    assert await backend.next_visible_at() is None
    e = event(uid("evt"), uid("tnt"), matched=("d1", "d2", "d3"))
    await _accept(backend, e)
    due = await backend.next_visible_at()
    assert due is not None and due <= now_ms()

    tasks = {t.destination_id: t for t in await _claim_all(backend)}
    now = now_ms()
    await backend.finish(
        [
            _failed(tasks["d1"], retry_at=now + HOUR),
            _failed(tasks["d2"], retry_at=now + 30_000),
            _failed(tasks["d3"]),  # no retry: gone for good
        ]
    )

    assert await backend.next_visible_at() == now + 30_000
    assert await _claim_all(backend) == []


async def test_finish_records_the_attempt_and_removes_the_task(backend: Backend) -> None:
    e = event(uid("evt"), uid("tnt"), matched=("d1",))
    await _accept(backend, e)
    [task] = await backend.claim(10, 100)
    made = attempt(uid("att"), e, "d1", time=now_ms(), response_data={"status": 200})

    await backend.finish([Outcome(task, made)])

    assert await backend.get_attempt(made.id) == made
    assert await backend.latest_attempt(e.id, "d1") == made
    assert await backend.next_visible_at() is None
    await anyio.sleep(0.25)  # past the lease: a finished task does not come back
    assert await _claim_all(backend) == []


async def test_finish_without_an_attempt_drops_the_task_silently(backend: Backend) -> None:
    e = event(uid("evt"), uid("tnt"), matched=("d1",))
    await _accept(backend, e)
    [task] = await _claim_all(backend)

    await backend.finish([Outcome(task)])  # e.g. the destination was deleted meanwhile

    assert await _attempt_numbers(backend, e) == []
    assert await backend.next_visible_at() is None


async def test_retry_at_schedules_the_next_attempt_of_the_same_pair(backend: Backend) -> None:
    e = event(uid("evt"), uid("tnt"), matched=("d1",))
    await _accept(backend, e)
    [first] = await _claim_all(backend)

    await backend.finish([_failed(first, retry_at=now_ms() - 1)])

    [retry] = await _claim_all(backend)
    assert (retry.event, retry.destination_id, retry.attempt_number) == (e, "d1", 2)
    assert (retry.manual, retry.claims) == (False, 1)
    await backend.finish([_failed(retry, retry_at=now_ms() - 1)])
    [third] = await _claim_all(backend)
    assert third.attempt_number == 3
    await backend.finish([_failed(third)])
    assert await backend.next_visible_at() is None
    assert await _attempt_numbers(backend, e) == [("d1", 1), ("d1", 2), ("d1", 3)]


async def test_scheduling_again_replaces_the_pending_retry_of_the_pair(backend: Backend) -> None:
    e = event(uid("evt"), uid("tnt"), matched=("d1", "d2"))
    await _accept(backend, e)
    first = {t.destination_id: t for t in await _claim_all(backend)}
    later = now_ms() + HOUR
    await backend.finish(
        [_failed(first["d1"], retry_at=later), _failed(first["d2"], retry_at=later + 1)]
    )

    # a manual retry of (e, d1) fails before the automatic one is due (contract.md §3.2 step 5)
    await backend.enqueue_manual(e, "d1", 2)
    [manual] = await _claim_all(backend)
    assert (manual.destination_id, manual.attempt_number, manual.manual) == ("d1", 2, True)
    await backend.finish([_failed(manual, retry_at=now_ms() - 1)])

    [only] = await _claim_all(backend)
    assert (only.destination_id, only.attempt_number, only.manual) == ("d1", 3, False)
    await backend.finish([_failed(only)])
    # the retry due in an hour for d1 was replaced; the one for d2 is untouched
    assert await backend.next_visible_at() == later + 1


async def test_cancel_retry_drops_the_pending_retry_of_the_pair(backend: Backend) -> None:
    e = event(uid("evt"), uid("tnt"), matched=("d1", "d2"))
    await _accept(backend, e)
    first = {t.destination_id: t for t in await _claim_all(backend)}
    later = now_ms() + HOUR
    await backend.finish(
        [_failed(first["d1"], retry_at=later), _failed(first["d2"], retry_at=later + 1)]
    )

    await backend.enqueue_manual(e, "d1", 2)
    [manual] = await _claim_all(backend)
    succeeded = attempt(uid("att"), e, "d1", time=now_ms(), number=2, manual=True)
    await backend.finish([Outcome(manual, succeeded, cancel_retry=True)])

    assert await backend.next_visible_at() == later + 1, "only d2's retry is still pending"
    assert await backend.get_attempt(succeeded.id) == succeeded


async def test_release_makes_a_task_visible_again_without_an_attempt(backend: Backend) -> None:
    e = event(uid("evt"), uid("tnt"), matched=("d1",))
    await _accept(backend, e)
    [task] = await _claim_all(backend)

    await backend.release(task, 0)
    [again] = await _claim_all(backend)
    assert (again.id, again.attempt_number, again.claims) == (task.id, 1, 2)

    before = now_ms()
    await backend.release(again, 400)
    after = now_ms()
    assert await _claim_all(backend) == [], "released with a delay: not visible yet"
    due = await backend.next_visible_at()
    slack = 50  # the backend may read the clock a little before or after we do
    assert due is not None and before + 400 - slack <= due <= after + 400 + slack
    await anyio.sleep(0.6)
    [third] = await _claim_all(backend)
    assert (third.id, third.event, third.claims) == (task.id, e, 3)
    assert await _attempt_numbers(backend, e) == []


async def test_defer_gives_tasks_back_without_counting_their_claim(backend: Backend) -> None:
    # A destination at its cap (or with its circuit open) waits: that is not a failed claim,
    # so it must never add up to MAX_CLAIMS_WITHOUT_ATTEMPT.
    e = event(uid("evt"), uid("tnt"), matched=("d1", "d2"))
    await _accept(backend, e)
    first = await _claim_all(backend)
    later = now_ms() + 400
    await backend.defer([(t, later) for t in first])
    assert await _claim_all(backend) == [], "deferred: not visible before its time"
    assert await backend.next_visible_at() == later
    await anyio.sleep(0.6)
    again = await _claim_all(backend)
    assert sorted((t.destination_id, t.claims, t.attempt_number) for t in again) == [
        ("d1", 1, 1),
        ("d2", 1, 1),
    ]
    assert await _attempt_numbers(backend, e) == []


async def test_enqueue_manual_queues_a_manual_task(backend: Backend) -> None:
    e = event(uid("evt"), uid("tnt"), matched=("d1",))
    await _accept(backend, e)
    [first] = await _claim_all(backend)
    await backend.finish([_failed(first)])

    await backend.enqueue_manual(e, "d1", 2)
    # also to a destination the event never matched (a replay to a new destination)
    await backend.enqueue_manual(e, "d9", 1)

    tasks = await _claim_all(backend)
    assert _pairs(tasks) == [(e.id, "d1", 2, True), (e.id, "d9", 1, True)]
    assert all(t.event == e and t.claims == 1 for t in tasks)


async def test_wake_and_new_work_end_wait_for_work_early(backend: Backend) -> None:
    await backend.ping()
    with anyio.fail_after(3):
        backend.wake()
        await backend.wait_for_work(30)
    with anyio.fail_after(3):
        await _accept(backend, event(uid("evt"), uid("tnt"), matched=("d1",)))
        await backend.wait_for_work(30)


# Concurrency


async def test_concurrent_accepts_all_land(backend: Backend) -> None:
    tenant_id = uid("tnt")
    events = [event(f"{uid('evt')}-{i}", tenant_id, matched=("d1",)) for i in range(200)]
    duplicates: list[bool] = []

    async def accept(e: Event) -> None:
        duplicates.append(await _accept(backend, e))

    async with anyio.create_task_group() as group:
        for e in events:
            group.start_soon(accept, e)

    assert duplicates == [False] * 200
    page = await backend.list_events(EventQuery(tenant_ids=(tenant_id,)), PageRequest(limit=1000))
    assert sorted(e.id for e in page.items) == sorted(e.id for e in events)
    assert sorted(t.event.id for t in await _claim_all(backend)) == sorted(e.id for e in events)


async def test_concurrent_claimers_never_share_a_task(
    backend: Backend, make_backend: MakeBackend
) -> None:
    """Two claimers at once; each on a backend instance of its own where the backend allows a
    second one on the same data (as a second process would be), else sharing the one."""
    tenant_id = uid("tnt")
    for i in range(40):
        await _accept(backend, event(f"{uid('evt')}-{i}", tenant_id, matched=("d1", "d2", "d3")))
    claimed: dict[str, list[DeliveryTask]] = {"one": [], "two": []}

    async def claimer(name: str, store: Backend) -> None:
        while batch := await store.claim(7, LEASE):
            claimed[name].extend(batch)
            # a queue that hands tasks out again would loop forever: stop well past 120
            assert len(claimed["one"]) + len(claimed["two"]) <= 240, "tasks handed out again"
            await anyio.sleep(0)

    async with AsyncExitStack() as stack:
        other = await _second_instance(make_backend, stack) or backend
        with anyio.fail_after(15):
            async with anyio.create_task_group() as group:
                group.start_soon(claimer, "one", backend)
                group.start_soon(claimer, "two", other)

    one, two = ({t.id for t in claimed[n]} for n in ("one", "two"))
    assert not one & two, "a task was claimed by both"
    every = claimed["one"] + claimed["two"]
    assert len(every) == len(one | two) == 120, "each task exactly once"
    assert all(t.claims == 1 for t in every)
    assert await backend.claim(10, LEASE) == []


async def _second_instance(make_backend: MakeBackend, stack: AsyncExitStack) -> Backend | None:
    second = make_backend()
    try:
        await second.open()
    except ConfigError:  # SQLite: one process per data folder
        return None
    stack.push_async_callback(second.close)
    return second


async def test_events_accepted_at_the_same_time_keep_their_own_data(backend: Backend) -> None:
    tenant_id = uid("tnt")
    events = [
        event(uid("evt"), tenant_id, time=BASE, data=b'{"i":%d}' % i, matched=(f"d{i % 3}",))
        for i in range(30)
    ]
    async with anyio.create_task_group() as group:
        for e in events:
            group.start_soon(_accept, backend, e)

    tasks = await _claim_all(backend)
    assert {t.event.id: t.event for t in tasks} == {e.id: e for e in events}
    assert all(t.destination_id == t.event.matched_destination_ids[0] for t in tasks)
