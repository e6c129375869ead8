"""RabbitMQ as the task queue, against the real broker and PostgreSQL on this machine.

PostgreSQL is the source of truth; these tests pin what the broker adds and what happens when a
message is lost, repeated, unreadable, or arrives while the task was already taken.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import anyio
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


def settings(name: str, *, hold_ms: int = 30_000) -> RabbitSettings:
    names = rabbitmq.settings_for(name)
    return RabbitSettings(
        url=rabbitmq.URL,
        exchange=names["RABBITMQ_EXCHANGE"],
        queue=names["RABBITMQ_DELIVERY_QUEUE"],
        dead_letter_queue=names["RABBITMQ_DELIVERY_QUEUE"] + ".dlq",
        hold_ms=hold_ms,
        max_redeliveries=2,
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


async def test_the_tasks_of_publishes_committed_together_travel_in_one_message(
    queue: RabbitQueue, store: PostgresBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups: list[list[int]] = []
    hand_out = queue._hand_out

    async def recorded(task_ids: list[int]) -> None:
        groups.append(list(task_ids))
        await hand_out(task_ids)

    monkeypatch.setattr(queue, "_hand_out", recorded)
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
    await queue.release(task, 0)  # back in the database, still held from its claims there
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
