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

import outpost.queues.rabbitmq as rabbit_queue
from outpost.core.models import DeliveryTask, Event, Outcome
from outpost.core.timefmt import now_ms
from outpost.queues.rabbitmq import RabbitQueue, RabbitSettings, TaskMessage
from outpost.storage.postgres.backend import PostgresBackend
from outpost.storage.sealing import Sealer

pytestmark = pytest.mark.anyio
LEASE_MS = 60_000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


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


def event(event_id: str = "e1", destinations: tuple[str, ...] = ("d1",)) -> Event:
    return Event(event_id, "t", "topic", now_ms(), b"{}", True, {}, "", destinations)


async def claim_some(queue: RabbitQueue, want: int, seconds: float = 10) -> list[DeliveryTask]:
    """Claim until `want` tasks came back, polling with a deadline."""
    got: list[DeliveryTask] = []
    with anyio.fail_after(seconds):
        while len(got) < want:
            got += await queue.claim(10, LEASE_MS)
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


async def test_a_finished_task_is_not_handed_out_again_after_a_reconnect(
    name: str, queue: RabbitQueue, store: PostgresBackend
) -> None:
    await queue.accept(event(), now_ms(), 0)
    [task] = await claim_some(queue, 1)
    await queue.finish([Outcome(task)])
    await queue.close()  # unacked messages would now return to the queue
    again = RabbitQueue(store, settings(name))
    await again.open(consume=True)
    try:
        assert await claims_nothing_for(again, 0.5)
    finally:
        await again.close()


async def test_a_repeated_message_for_a_finished_task_is_acked_without_a_delivery(
    queue: RabbitQueue,
) -> None:
    await queue.accept(event(), now_ms(), 0)
    [task] = await claim_some(queue, 1)
    await queue.finish([Outcome(task)])
    await queue._hand_out([task.id])  # the broker delivers the same id once more
    assert await claims_nothing_for(queue, 0.5)
    assert queue._inbox.empty()


async def test_a_lost_message_costs_only_the_hold(name: str, store: PostgresBackend) -> None:
    broker = RabbitQueue(store, settings(name, hold_ms=300))
    # Never opened: handing out fails, as if the process died right after its commit.
    assert not await broker.accept(event(), now_ms(), 0)
    assert await store.claim(10, LEASE_MS) == []
    with anyio.fail_after(10):
        while not (tasks := await store.claim(10, LEASE_MS)):
            await asyncio.sleep(0.05)
    assert [t.event.id for t in tasks] == ["e1"]


async def test_an_unreadable_message_goes_to_the_dead_letter_queue(
    name: str, queue: RabbitQueue
) -> None:
    s = settings(name)
    connection = await aio_pika.connect(rabbitmq.URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(s.exchange)
        await exchange.publish(aio_pika.Message(b"not a task"), routing_key=s.queue)
        dlq = await channel.get_queue(s.dead_letter_queue)
        with anyio.fail_after(10):
            while True:
                await queue.claim(10, LEASE_MS)
                message = await dlq.get(fail=False)
                if message is not None:
                    break
                await asyncio.sleep(0.05)
        assert message.body == b"not a task"
        await message.ack()


def test_messages_are_versioned() -> None:
    assert msgspec.json.encode(TaskMessage(7)) == b'{"type":"v1","task":7}'


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
