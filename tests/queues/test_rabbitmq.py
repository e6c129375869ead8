"""RabbitMQ as the task queue, against the real broker and PostgreSQL on this machine.

PostgreSQL is the source of truth; these tests pin what the broker adds and what happens when a
message is lost, repeated, unreadable, or arrives while the task was already taken.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aio_pika
import anyio
import asyncpg
import msgspec
import pytest
from support import rabbitmq
from support.postgres import create_database, database_url, drop_database

import waypost.queues.rabbitmq as rabbit_queue
from waypost.core.models import DeliveryTask, Event, Outcome
from waypost.core.timefmt import now_ms
from waypost.errors import StoreUnavailable
from waypost.queues.rabbitmq import RabbitQueue, RabbitSettings, TaskMessage, TasksMessage
from waypost.storage.postgres.backend import PostgresBackend
from waypost.storage.postgres.channels import TASKS_CHANNEL
from waypost.storage.sealing import Sealer

pytestmark = pytest.mark.anyio
LEASE_MS = 60_000


@pytest.fixture
async def name() -> AsyncIterator[str]:
    """A fresh database, whose name also names this test's exchange and queues."""
    database, _ = await asyncio.to_thread(create_database, "outpost_rmq")
    yield database
    await asyncio.to_thread(rabbitmq.delete, database)
    await asyncio.to_thread(drop_database, database)


@pytest.fixture
async def store(name: str) -> AsyncIterator[PostgresBackend]:
    backend = PostgresBackend(database_url(name), sealer=Sealer("rabbitmq-tests"))
    await backend.open()
    yield backend
    await backend.close()


def settings(name: str, *, hold_ms: int = 30_000, linger_ms: int = 0) -> RabbitSettings:
    """Hand-outs not held back by default (`linger_ms`): each turn of the loop is a message."""
    names = rabbitmq.settings_for(name)
    return RabbitSettings(
        url=rabbitmq.URL,
        exchange=names["RABBITMQ_EXCHANGE"],
        queue=names["RABBITMQ_DELIVERY_QUEUE"],
        dead_letter_queue=names["RABBITMQ_DELIVERY_QUEUE"] + ".dlq",
        hold_ms=hold_ms,
        max_redeliveries=2,
        hand_out_linger_ms=linger_ms,
    )


@pytest.fixture
async def queue(name: str, store: PostgresBackend) -> AsyncIterator[RabbitQueue]:
    broker = RabbitQueue(store, settings(name))
    await broker.open(consume=True)
    yield broker
    await broker.close()


def unacked(queue: RabbitQueue) -> int:
    """Messages this consumer received and has not answered yet."""
    return sum(len(tags) for tags in queue._unacked.values())


async def publish_raw(name: str, body: bytes) -> None:
    """A message as another (e.g. older) publisher would send it."""
    s = settings(name)
    connection = await aio_pika.connect(rabbitmq.URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(s.exchange)
        await exchange.publish(aio_pika.Message(body), routing_key=s.queue)


def event(event_id: str = "e1", destinations: tuple[str, ...] = ("d1",)) -> Event:
    return Event(event_id, "t", "topic", now_ms(), b"{}", True, {}, "", destinations)


async def claim_some(
    queue: RabbitQueue, want: int, seconds: float = 10, *, limit: int = 10, lease_ms: int = LEASE_MS
) -> list[DeliveryTask]:
    """Claim until `want` tasks came back, polling with a deadline."""
    got: list[DeliveryTask] = []
    with anyio.fail_after(seconds):
        while len(got) < want:
            got += await queue.claim(min(limit, want - len(got)), lease_ms)
            if len(got) < want:
                await queue.wait_for_work(0.05)
    return got


async def claims_nothing_for(queue: RabbitQueue, seconds: float) -> bool:
    """A bounded observation window: True if no task could be claimed during it."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        if await queue.claim(10, LEASE_MS):
            return False
        await asyncio.sleep(0.05)
    return True


async def test_accepted_tasks_are_handed_out_by_the_broker_before_their_hold_ends(
    queue: RabbitQueue, store: PostgresBackend
) -> None:
    assert not await queue.accept(event(destinations=("d1", "d2")), now_ms(), 0)
    # Held 30 s from database claims: only the broker can have handed these out this fast.
    assert await store.claim(10, LEASE_MS) == []
    tasks = await claim_some(queue, 2)
    assert sorted(t.destination_id for t in tasks) == ["d1", "d2"]


async def nothing_comes_back_after_reconnecting(
    queue: RabbitQueue, store: PostgresBackend, name: str
) -> bool:
    """Close `queue` (its unacked messages return to the broker) and consume again: True when
    nothing is handed out."""
    await queue.close()
    again = RabbitQueue(store, settings(name))
    await again.open(consume=True)
    try:
        return await claims_nothing_for(again, 0.5)
    finally:
        await again.close()


async def test_a_finished_task_is_not_handed_out_again_after_a_reconnect(
    name: str, queue: RabbitQueue, store: PostgresBackend
) -> None:
    await queue.accept(event(), now_ms(), 0)
    [task] = await claim_some(queue, 1)
    await queue.finish([Outcome(task)])
    assert await nothing_comes_back_after_reconnecting(queue, store, name)


async def test_a_repeated_message_for_a_finished_task_is_acked_without_a_delivery(
    queue: RabbitQueue,
) -> None:
    await queue.accept(event(), now_ms(), 0)
    [task] = await claim_some(queue, 1)
    await queue.finish([Outcome(task)])
    await queue._hand_out([task.id])  # the broker delivers the same id once more
    assert await claims_nothing_for(queue, 0.5)
    assert not queue._unclaimed and not unacked(queue)


async def test_a_lost_message_costs_only_the_hold(name: str, store: PostgresBackend) -> None:
    broker = RabbitQueue(store, settings(name, hold_ms=300))
    # Never opened: handing out fails, as if the process died right after its commit.
    assert not await broker.accept(event(), now_ms(), 0)
    assert await store.claim(10, LEASE_MS) == []
    with anyio.fail_after(10):
        while not (tasks := await store.claim(10, LEASE_MS)):
            await asyncio.sleep(0.05)
    assert [t.event.id for t in tasks] == ["e1"]


@pytest.mark.parametrize(
    "body", [b"not a task", b'{"type":"v2","tasks":[1,99999999999999999999]}', b'{"type":"v9"}']
)
async def test_an_unreadable_message_goes_to_the_dead_letter_queue(
    name: str, queue: RabbitQueue, body: bytes
) -> None:
    s = settings(name)
    connection = await aio_pika.connect(rabbitmq.URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(s.exchange)
        await exchange.publish(aio_pika.Message(body), routing_key=s.queue)
        dlq = await channel.get_queue(s.dead_letter_queue)
        with anyio.fail_after(10):
            while True:
                await queue.claim(10, LEASE_MS)
                message = await dlq.get(fail=False)
                if message is not None:
                    break
                await asyncio.sleep(0.05)
        assert message.body == body
        await message.ack()


def test_messages_are_versioned() -> None:
    assert msgspec.json.encode(TaskMessage(7)) == b'{"type":"v1","task":7}'
    assert msgspec.json.encode(TasksMessage([7, 8])) == b'{"type":"v2","tasks":[7,8]}'


async def test_past_the_hand_out_bound_tasks_wait_their_hold(
    name: str, store: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker that does not keep up with confirms gets no more messages; the tasks are
    claimed from the database once their hold ends, so none is lost."""
    monkeypatch.setattr(rabbit_queue, "MAX_HANDING_OUT", 0)
    broker = RabbitQueue(store, settings(name, hold_ms=3000))
    await broker.open(consume=True)
    try:
        assert not await broker.accept(event(), now_ms(), 0)
        assert await claims_nothing_for(broker, 1.0)  # not handed out: held in the database
        tasks = await claim_some(broker, 1)
        assert [t.event.id for t in tasks] == ["e1"]
    finally:
        await broker.close()


def messages_sent(queue: RabbitQueue, monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The task ids of each message `queue` hands out from now on (filled as they go)."""
    groups: list[list[int]] = []
    hand_out = queue._hand_out

    async def recorded(task_ids: list[int]) -> None:
        groups.append(list(task_ids))
        await hand_out(task_ids)

    monkeypatch.setattr(queue, "_hand_out", recorded)
    return groups


async def test_the_tasks_of_publishes_committed_together_travel_in_one_message(
    queue: RabbitQueue, store: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups = messages_sent(queue, monkeypatch)
    events = [event(f"e{n}", ("d1", "d2", "d3")) for n in range(40)]
    await asyncio.gather(*(queue.accept(e, now_ms(), 0) for e in events))
    await asyncio.sleep(0)  # the hand-out runs at the end of the loop's turn
    assert sum(len(g) for g in groups) == 120
    assert len(groups) < 40  # grouped: a message per group commit, not per task or publish
    tasks = await claim_some(queue, 120, limit=100)
    assert len({t.id for t in tasks}) == 120  # each task once
    await queue.finish([Outcome(t) for t in tasks])
    assert await claims_nothing_for(queue, 0.5)
    assert unacked(queue) == 0


async def test_a_message_is_acked_only_once_all_its_tasks_are_settled(
    name: str, queue: RabbitQueue, store: PostgresBackend
) -> None:
    await queue.accept(event(destinations=("d1", "d2", "d3")), now_ms(), 0)
    tasks = await claim_some(queue, 3)
    assert unacked(queue) == 1  # one message for the three tasks
    await queue.finish([Outcome(tasks[0])])
    await queue.release(tasks[1], 60_000)  # released: back in the database, done for the broker
    assert unacked(queue) == 1  # tasks[2] is still in hand
    await queue.finish([Outcome(tasks[2])])
    assert unacked(queue) == 0
    assert await nothing_comes_back_after_reconnecting(queue, store, name)


async def test_a_consumer_gone_with_part_of_a_message_done_loses_none_of_it(
    name: str, store: PostgresBackend
) -> None:
    """Five tasks in one message; the consumer finishes one, holds another, has not claimed the
    other three, and dies. The redelivered message skips the finished task; the three unclaimed
    ones are claimed from it, the held one from the database once its lease ends."""
    first = RabbitQueue(store, settings(name))
    await first.open(consume=True)
    await first.accept(event(destinations=("d1", "d2", "d3", "d4", "d5")), now_ms(), 0)
    done, held = await claim_some(first, 2, limit=2, lease_ms=500)
    await first.finish([Outcome(done)])
    assert len(first._unclaimed) == 3
    await first.close()
    second = RabbitQueue(store, settings(name))
    await second.open(consume=True)
    try:
        rest = await claim_some(second, 4, limit=10)
        assert sorted(t.destination_id for t in rest) == ["d2", "d3", "d4", "d5"]
        assert held.id in {t.id for t in rest}
        await second.finish([Outcome(t) for t in rest])
        assert await claims_nothing_for(second, 0.7)  # the finished task is never delivered again
        assert unacked(second) == 0
    finally:
        await second.close()


async def test_a_v1_message_from_an_older_publisher_is_still_handled(
    name: str, queue: RabbitQueue, store: PostgresBackend
) -> None:
    await queue.accept(event(), now_ms(), 0)
    [task] = await claim_some(queue, 1)
    await queue.release(task, 60_000)  # back in the database, not due there for a minute
    await store.finish([])
    await publish_raw(name, msgspec.json.encode(TaskMessage(task.id)))
    # The first message was acked at release; a v1 copy brings the (released) task again.
    [again] = await claim_some(queue, 1)
    assert again.id == task.id
    await queue.finish([Outcome(again)])
    assert unacked(queue) == 0


async def test_a_message_naming_a_task_twice_delivers_it_once(
    name: str, queue: RabbitQueue
) -> None:
    queue._settings = settings(name, hold_ms=60_000)
    await queue.accept(event(), now_ms(), 0)
    [task] = await claim_some(queue, 1)
    await queue.release(task, 60_000)
    await publish_raw(name, msgspec.json.encode(TasksMessage([task.id, task.id])))
    [again] = await claim_some(queue, 1)
    assert again.id == task.id
    await queue.finish([Outcome(again)])
    assert await claims_nothing_for(queue, 0.5)
    assert unacked(queue) == 0


async def test_messages_finished_in_order_are_acked_together(
    queue: RabbitQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(3):  # three messages: each accept's hand-out is its own turn of the loop
        await queue.accept(event(f"e{n}"), now_ms(), 0)
        await asyncio.sleep(0)
    tasks = await claim_some(queue, 3)
    assert unacked(queue) == 3
    acks: list[bool] = []
    real = aio_pika.IncomingMessage.ack

    async def ack(message: aio_pika.IncomingMessage, multiple: bool = False) -> None:
        acks.append(multiple)
        await real(message, multiple=multiple)

    monkeypatch.setattr(aio_pika.IncomingMessage, "ack", ack)
    await queue.finish([Outcome(t) for t in tasks])
    assert acks == [True]  # one frame for the three
    assert unacked(queue) == 0
    assert await claims_nothing_for(queue, 0.5)


async def test_a_message_met_by_a_database_outage_is_nacked_and_comes_back(
    queue: RabbitQueue, store: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    claim_ids = store.claim_ids

    async def down(ids: list[int], lease_ms: int) -> list[DeliveryTask]:
        raise StoreUnavailable("down")

    monkeypatch.setattr(store, "claim_ids", down)
    await queue.accept(event(destinations=("d1", "d2")), now_ms(), 0)
    with anyio.fail_after(10):
        while not queue._unclaimed:
            await queue.wait_for_work(0.05)
    with pytest.raises(StoreUnavailable):
        await queue.claim(1, LEASE_MS)  # takes one id of the message: the whole message is nacked
    assert not queue._unclaimed
    monkeypatch.setattr(store, "claim_ids", claim_ids)
    tasks = await claim_some(queue, 2)  # redelivered
    assert sorted(t.destination_id for t in tasks) == ["d1", "d2"]


# Asking the database only when it may have work


async def tasks_channel_heard(name: str, write: Callable[[], Awaitable[object]]) -> bool:
    """Run `write`, then NOTIFY a marker: True if workers were told of tasks before the marker
    arrived (PostgreSQL delivers notifications in commit order, so none can come later)."""
    heard: list[str] = []
    marker = asyncio.Event()
    listener = await asyncpg.connect(database_url(name))
    try:
        await listener.add_listener(TASKS_CHANNEL, lambda *_: heard.append("tasks"))
        await listener.add_listener("marker", lambda *_: marker.set())
        await write()
        await listener.execute("SELECT pg_notify('marker', '')")
        with anyio.fail_after(5):
            await marker.wait()
        return bool(heard)
    finally:
        await listener.close()


async def test_tasks_held_for_the_broker_wake_no_worker_and_due_tasks_do(
    name: str, store: PostgresBackend
) -> None:
    """A held task is not claimable from the database: a worker woken for it would claim
    nothing. The broker's message is its wake-up."""

    async def accept_many(hold_ms: int, prefix: str) -> None:  # merged into one statement
        await asyncio.gather(
            *(
                store.accept_held(event(f"{prefix}{n}"), now_ms(), 0, hold_ms=hold_ms)
                for n in range(8)
            )
        )

    assert not await tasks_channel_heard(
        name, lambda: store.accept_held(event("h1"), now_ms(), 0, hold_ms=30_000)
    )
    assert not await tasks_channel_heard(name, lambda: accept_many(30_000, "held"))
    assert not await tasks_channel_heard(
        name, lambda: store.enqueue_manual_held(event("h1"), "d2", 1, hold_ms=30_000)
    )
    assert await tasks_channel_heard(name, lambda: store.accept(event("due1"), now_ms(), 0))
    assert await tasks_channel_heard(name, lambda: accept_many(0, "due"))
    assert await tasks_channel_heard(name, lambda: store.enqueue_manual(event("h1"), "d3", 1))


class CountingStore:
    """The store, counting the claims and look-ups that go to the database."""

    def __init__(self, store: PostgresBackend, monkeypatch: pytest.MonkeyPatch) -> None:
        self.claims = 0
        self.lookups = 0
        claim, next_visible_at = store.claim, store.next_visible_at

        async def counted_claim(limit: int, lease_ms: int) -> list[DeliveryTask]:
            self.claims += 1
            return await claim(limit, lease_ms)

        async def counted_next_visible_at() -> int | None:
            self.lookups += 1
            return await next_visible_at()

        monkeypatch.setattr(store, "claim", counted_claim)
        monkeypatch.setattr(store, "next_visible_at", counted_next_visible_at)


async def claim_as_the_worker(
    queue: RabbitQueue, want: int, *, idle_poll_seconds: float = 30.0
) -> list[DeliveryTask]:
    """Claim as the delivery worker does: when a claim comes back short, ask when the database
    is due next and wait for work until then (at most `idle_poll_seconds`)."""
    got: list[DeliveryTask] = []
    with anyio.fail_after(10):
        while len(got) < want:
            got += await queue.claim(10, LEASE_MS)
            if len(got) < want:
                due = await queue.next_visible_at()
                wait = idle_poll_seconds if due is None else (due - now_ms()) / 1000
                await queue.wait_for_work(max(0.0, min(idle_poll_seconds, wait)))
    return got


async def deliver_messages_as_a_worker(
    queue: RabbitQueue, count: int, *, first: int = 0
) -> list[DeliveryTask]:
    """Accept `count` events one at a time, each claimed as the worker claims."""
    got: list[DeliveryTask] = []
    for n in range(first, first + count):
        await queue.accept(event(f"m{n}"), now_ms(), 0)
        got += await claim_as_the_worker(queue, 1)
    return got


async def test_tasks_handed_out_by_the_broker_are_claimed_without_asking_the_database(
    queue: RabbitQueue, store: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rabbit_queue, "DATABASE_RECHECK_MS", 60_000)
    counted = CountingStore(store, monkeypatch)
    # Starting, the database is asked (and its LISTEN connection's start wakes the worker once,
    # so asked again); its answer: nothing due.
    await deliver_messages_as_a_worker(queue, 2)
    assert counted.claims >= 1
    counted.claims = counted.lookups = 0
    tasks = await deliver_messages_as_a_worker(queue, 5, first=2)
    assert sorted(t.event.id for t in tasks) == [f"m{n}" for n in range(2, 7)]
    assert (counted.claims, counted.lookups) == (0, 0)


async def test_a_retry_the_database_schedules_is_claimed_at_once(
    queue: RabbitQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its NOTIFY ends the wait, and the next claim asks the database again."""
    monkeypatch.setattr(rabbit_queue, "DATABASE_RECHECK_MS", 60_000)
    [task] = await deliver_messages_as_a_worker(queue, 1)
    await queue.finish([Outcome(task, retry_at=now_ms())])
    [retried] = await claim_as_the_worker(queue, 1)
    assert (retried.event.id, retried.attempt_number) == ("m0", 2)


async def test_a_released_task_is_claimed_from_the_database_when_due(
    queue: RabbitQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rabbit_queue, "DATABASE_RECHECK_MS", 60_000)
    [task] = await deliver_messages_as_a_worker(queue, 1)
    await queue.release(task, 300)
    [again] = await claim_as_the_worker(queue, 1)
    assert again.id == task.id


async def test_a_lease_ended_in_a_process_that_died_is_claimed_at_the_next_recheck(
    queue: RabbitQueue, store: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing says that a lease ended: the database's "nothing due before the hold ends" is
    trusted only so long."""
    monkeypatch.setattr(rabbit_queue, "DATABASE_RECHECK_MS", 500)
    # Another process accepted an event (its hand-out lost), so the task is held for 30 s ...
    _, [task_id] = await store.accept_held(event("lost"), now_ms(), 0, hold_ms=30_000)
    assert await queue.claim(10, LEASE_MS) == []
    await queue.next_visible_at()  # ... as this process now knows; then that process claims
    await store.claim_ids([task_id], 200)  # it for 200 ms and dies
    [task] = await claim_as_the_worker(queue, 1)  # long before the hold ends
    assert task.id == task_id


async def test_tasks_accepted_within_the_linger_travel_in_one_message(
    name: str, store: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publishes one after another (each its own commit) share a message if they come within
    the hand-out's linger; it is sent when the linger ends, without waiting for more."""
    broker = RabbitQueue(store, settings(name, linger_ms=300))
    await broker.open(consume=True)
    groups = messages_sent(broker, monkeypatch)
    try:
        for n in range(3):
            await broker.accept(event(f"e{n}"), now_ms(), 0)
        tasks = await claim_some(broker, 3)
        assert len(groups) == 1 and len(groups[0]) == 3
        assert unacked(broker) == 1
        await broker.finish([Outcome(t) for t in tasks])
    finally:
        await broker.close()


async def test_ids_gathered_when_closing_are_sent_not_left_to_their_hold(
    name: str, store: PostgresBackend
) -> None:
    first = RabbitQueue(store, settings(name, linger_ms=60_000))
    await first.open(consume=False)
    await first.accept(event(), now_ms(), 0)
    await first.close()  # long before the linger ends
    second = RabbitQueue(store, settings(name))
    await second.open(consume=True)
    try:
        [task] = await claim_some(second, 1)  # from the message: the hold is 30 s
        assert task.event.id == "e1"
    finally:
        await second.close()


async def test_a_due_retry_is_claimed_while_messages_keep_coming(
    queue: RabbitQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages waiting to be claimed do not keep the database's due tasks out of a claim."""
    monkeypatch.setattr(rabbit_queue, "DATABASE_RECHECK_MS", 60_000)
    [task] = await deliver_messages_as_a_worker(queue, 1)
    await asyncio.gather(*(queue.accept(event(f"fresh{n}"), now_ms(), 0) for n in range(30)))
    with anyio.fail_after(10):
        while len(queue._unclaimed) < 30:
            await queue.wait_for_work(0.05)
    await queue.finish([Outcome(task, retry_at=now_ms())])
    claimed = await queue.claim(10, LEASE_MS)
    assert len(claimed) == 10
    assert ("m0", 2) in [(t.event.id, t.attempt_number) for t in claimed]


async def test_a_retry_another_process_schedules_is_claimed_when_due_not_a_recheck_later(
    queue: RabbitQueue, store: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its NOTIFY comes when it is scheduled, before it is due: the claim then finds nothing,
    and the queue must learn when it is due rather than wait for the next recheck."""
    monkeypatch.setattr(rabbit_queue, "DATABASE_RECHECK_MS", 60_000)
    await store.accept_held(event("elsewhere"), now_ms(), 0, hold_ms=0)
    [task] = await store.claim(10, LEASE_MS)  # another process's delivery, which failed
    await store.finish([Outcome(task, retry_at=now_ms() + 300)])
    [retried] = await claim_as_the_worker(queue, 1)
    assert (retried.event.id, retried.attempt_number) == ("elsewhere", 2)
