"""RabbitMQ as the internal delivery queue, for operators who already run one.

PostgreSQL stays the source of truth: publishing writes the event and its tasks there (one
commit, before the 202), holding the tasks back from database claims for `hold_ms`; then each
task id is published to a durable queue with publisher confirms. Delivery processes consume the
ids, claim those tasks in the database, deliver, record, and only then ack. So:

- a message lost or never sent (a crash between commit and publish) costs latency, not an
  event: the held task becomes claimable from the database when `hold_ms` ends;
- a message delivered twice finds its task done or claimed and is acked without a delivery;
- a message that cannot be handled (the database is down) is nacked and redelivered; one that
  keeps failing goes to the dead-letter queue after `max_redeliveries`.

Retries stay in PostgreSQL, scheduled and claimed as in plain PostgreSQL mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass

import aio_pika
import msgspec
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from outpost.core.models import DeliveryTask, Event, Outcome
from outpost.errors import StoreUnavailable
from outpost.storage.postgres.backend import PostgresBackend

log = logging.getLogger(__name__)
OPEN_ATTEMPTS = 5
# Messages awaiting the broker's confirm. Past this the broker is not keeping up, and new tasks
# are left to their hold (claimed from the database) instead of queueing without bound.
MAX_HANDING_OUT = 4096


class TaskMessage(msgspec.Struct, tag="v1"):
    """A task handed out by the broker; versioned so that a new shape can be told apart."""

    task: int


_encode = msgspec.json.encode
_decode = msgspec.json.Decoder(TaskMessage)


@dataclass(frozen=True, slots=True)
class RabbitSettings:
    url: str
    exchange: str = "outpost"
    queue: str = "outpost-delivery"
    dead_letter_queue: str = "outpost-delivery.dlq"
    hold_ms: int = 30_000
    prefetch: int = 64
    max_redeliveries: int = 10


class RabbitQueue:
    """A `DeliveryQueue` over PostgreSQL (truth) and RabbitMQ (hand-out)."""

    def __init__(self, store: PostgresBackend, settings: RabbitSettings) -> None:
        self._store = store
        self._settings = settings
        self._connection: AbstractRobustConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._messages: dict[int, AbstractIncomingMessage] = {}
        self._arrived = asyncio.Event()
        self._hand_outs: set[asyncio.Task[None]] = set()
        self._handing_out = 0  # task ids published and not yet confirmed

    async def open(self, *, consume: bool) -> None:
        """Connect and declare, trying again a few times: several processes declaring the same
        quorum queue at once can make RabbitMQ close the connection with INTERNAL_ERROR (seen
        starting four processes together); a moment later the declaration goes through."""
        for attempt in range(1, OPEN_ATTEMPTS + 1):
            try:
                await self._declare(consume)
                return
            except (aio_pika.exceptions.AMQPError, OSError, TimeoutError) as exc:
                await self.close()
                if attempt == OPEN_ATTEMPTS:
                    raise StoreUnavailable(f"RabbitMQ unavailable: {exc!r}") from exc
                log.warning("RabbitMQ set-up failed (%r); trying again", exc)
                await asyncio.sleep(0.5 * attempt)

    async def _declare(self, consume: bool) -> None:
        s = self._settings
        self._connection = await aio_pika.connect_robust(s.url, timeout=10)
        channel = await self._connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=s.prefetch)
        self._exchange = await channel.declare_exchange(
            s.exchange, aio_pika.ExchangeType.DIRECT, durable=True
        )
        dead = await channel.declare_exchange(
            s.exchange + ".dlx", aio_pika.ExchangeType.DIRECT, durable=True
        )
        dlq = await channel.declare_queue(s.dead_letter_queue, durable=True)
        await dlq.bind(dead, routing_key=s.queue)
        queue = await channel.declare_queue(
            s.queue,
            durable=True,
            arguments={
                "x-queue-type": "quorum",  # counts redeliveries for the dead-letter limit
                "x-delivery-limit": s.max_redeliveries,
                "x-dead-letter-exchange": s.exchange + ".dlx",
            },
        )
        await queue.bind(self._exchange, routing_key=s.queue)
        if consume:
            await queue.consume(self._receive)

    async def close(self) -> None:
        if self._hand_outs:  # let hand-outs in flight finish (bounded): fewer tasks wait a hold
            await asyncio.wait(set(self._hand_outs), timeout=5)
        if self._connection is not None:
            with contextlib.suppress(Exception):  # closing a connection that never came up
                await self._connection.close()
            self._connection = None
            self._exchange = None

    async def ping(self) -> None:
        # A robust connection is not "closed" while it reconnects; `connected` says if it is up.
        if self._connection is None or not self._connection.connected.is_set():
            raise StoreUnavailable("RabbitMQ is not connected")

    async def _receive(self, message: AbstractIncomingMessage) -> None:
        await self._inbox.put(message)
        self._arrived.set()

    async def _hand_out(self, task_ids: list[int]) -> None:
        """Publish task ids with confirms; a failure only delays those tasks (see module doc)."""
        if self._exchange is None or not task_ids:
            return
        try:
            await asyncio.gather(
                *(
                    self._exchange.publish(
                        aio_pika.Message(
                            _encode(TaskMessage(task_id)),
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=self._settings.queue,
                    )
                    for task_id in task_ids
                )
            )
        except Exception as exc:
            log.warning(
                "could not hand %d tasks to RabbitMQ (%r); they wait their hold", len(task_ids), exc
            )

    # DeliveryQueue

    async def accept(self, event: Event, now: int, dedupe_after: int) -> bool:
        duplicate, task_ids = await self._store.accept_held(
            event, now, dedupe_after, hold_ms=self._settings.hold_ms
        )
        self._hand_out_soon(task_ids)
        return duplicate

    async def enqueue_manual(self, event: Event, destination_id: str, attempt_number: int) -> None:
        task_id = await self._store.enqueue_manual_held(
            event, destination_id, attempt_number, hold_ms=self._settings.hold_ms
        )
        self._hand_out_soon([task_id])

    def _hand_out_soon(self, task_ids: list[int]) -> None:
        """Hand out without making the caller wait for the broker's confirm: the tasks are
        already durable in PostgreSQL, so the 202 need not wait for a quorum queue's write too,
        and a hand-out that never happens costs only the hold."""
        if not task_ids or self._exchange is None:
            return
        if self._handing_out + len(task_ids) > MAX_HANDING_OUT:
            log.warning("RabbitMQ is not keeping up: %d tasks wait their hold", len(task_ids))
            return
        self._handing_out += len(task_ids)
        running = asyncio.create_task(self._hand_out(task_ids))
        self._hand_outs.add(running)
        running.add_done_callback(lambda done: self._handed(done, len(task_ids)))

    def _handed(self, done: asyncio.Task[None], count: int) -> None:
        self._hand_outs.discard(done)
        self._handing_out -= count

    async def claim(self, limit: int, lease_ms: int) -> list[DeliveryTask]:
        handed = await self._claim_handed_out(limit, lease_ms)
        if len(handed) >= limit:
            return handed
        return handed + await self._store.claim(limit - len(handed), lease_ms)

    async def _claim_handed_out(self, limit: int, lease_ms: int) -> list[DeliveryTask]:
        by_id: dict[int, AbstractIncomingMessage] = {}
        while len(by_id) < limit and not self._inbox.empty():
            message = self._inbox.get_nowait()
            try:
                by_id[_decode.decode(message.body).task] = message
            except msgspec.DecodeError:
                log.error("unreadable message on %s; dead-lettering it", self._settings.queue)
                await _settle(message.reject(requeue=False))
        if not by_id:
            return []
        try:
            tasks = await self._store.claim_ids(list(by_id), lease_ms)
        except StoreUnavailable:
            for message in by_id.values():
                await _settle(message.nack(requeue=True))  # the database is down: try again
            raise
        for task in tasks:
            self._messages[task.id] = by_id.pop(task.id)
        for message in by_id.values():  # done already, or claimed from the database meanwhile
            await _settle(message.ack())
        return tasks

    async def finish(self, outcomes: list[Outcome]) -> None:
        await self._store.finish(outcomes)
        await self._ack(o.task for o in outcomes)

    async def release(self, task: DeliveryTask, delay_ms: int) -> None:
        await self._store.release(task, delay_ms)
        await self._ack([task])

    async def _ack(self, tasks: Iterable[DeliveryTask]) -> None:
        for task in tasks:
            message = self._messages.pop(task.id, None)
            if message is not None:
                await _settle(message.ack())

    async def next_visible_at(self) -> int | None:
        return await self._store.next_visible_at()

    def wake(self) -> None:
        self._arrived.set()
        self._store.wake()

    async def wait_for_work(self, timeout: float) -> None:
        if self._inbox.empty():
            arrived = asyncio.create_task(self._arrived.wait())
            queued = asyncio.create_task(self._store.wait_for_work(timeout))
            await asyncio.wait(
                {arrived, queued}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            arrived.cancel()
            queued.cancel()
        self._arrived.clear()


async def _settle(answer: Awaitable[None]) -> None:
    """Ack, nack or reject, whatever state the channel is in.

    The database already holds the truth: a message whose answer is lost with its channel is
    delivered again, finds its task done or claimed, and is acked then.
    """
    try:
        await answer
    except Exception as exc:  # aiormq raises RuntimeError subclasses on a dead channel
        log.debug("could not answer a RabbitMQ message: %r", exc)
