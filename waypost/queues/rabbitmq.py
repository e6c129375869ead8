"""RabbitMQ as the internal delivery queue, for operators who already run one.

PostgreSQL stays the source of truth: publishing writes the event and its tasks there (one
commit, before the 202), holding the tasks back from database claims for `hold_ms`; then the
task ids are published to a durable quorum queue with publisher confirms, many per message: the
ids of every publish that reached the hand-out within `hand_out_linger_ms` go out as one message
of at most `MAX_TASKS_PER_MESSAGE` ids, so the broker's per-message costs (a Raft write, a
confirm, a delivery, an ack: about 700 µs of the broker's CPU on the benchmark's machine) are
paid once per group rather than once per task. Delivery processes consume the messages and
claim the ids of as many as a claim takes in one statement (a message bigger than the worker's
claim is split over the next ones), deliver, record, and ack a message once every one of its
tasks is finished, released, or found taken; messages settled together are acked in one
`multiple` frame when no older one of the channel is still open. So:

- a message lost or never sent (a crash between commit and publish) costs latency, not an
  event: the held tasks become claimable from the database when `hold_ms` ends;
- a message delivered twice (or again after a consumer died with part of it done) skips the
  tasks found done or claimed, and delivers only the rest;
- a message whose claim fails (the database is down) is nacked and redelivered; one that keeps
  failing goes to the dead-letter queue after `max_redeliveries`; an unreadable one at once;
- at most `MAX_HANDING_OUT` task ids await the broker's confirm; past that new tasks wait their
  hold.

Messages are tagged: "v2" carries a list of ids; "v1" (one id, from older publishers) is still
read, so during a rolling upgrade delivery processes must be upgraded before API processes (an
old consumer dead-letters a "v2" message, whose tasks then wait their hold). `prefetch` counts
messages, as the broker does: a consumer holds at most that many messages unacked, each with up
to `MAX_TASKS_PER_MESSAGE` ids.

Retries stay in PostgreSQL, scheduled and claimed as in plain PostgreSQL mode. The database is
asked for due tasks only when it may have some: its NOTIFY says a task became due (a retry
scheduled, say), or the earliest task it held when last asked is due now, or that answer is
older than `DATABASE_RECHECK_MS` (a lease can end without anyone saying so, in a process that
died). Asking it at every wake-up, as plain PostgreSQL mode does, cost two round trips per
broker message for nothing: its tasks are all held. When it may have some, it gets half of
each claim at least, before the messages' ids: a stream of fresh events must not starve the
retries that are due (before, a claim took the database's tasks only when the messages left
room, so under load retries waited for the stream to end).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Annotated, Protocol

import aio_pika
import msgspec
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from waypost.core.models import DeliveryTask, Event, Outcome
from waypost.core.timefmt import now_ms
from waypost.errors import StoreUnavailable
from waypost.storage.protocols import DeliveryQueue

log = logging.getLogger(__name__)
OPEN_ATTEMPTS = 5
# Task ids awaiting the broker's confirm (counted in ids, not messages, so the bound means the
# same whatever the grouping). Past this the broker is not keeping up, and new tasks are left to
# their hold (claimed from the database) instead of queueing without bound.
MAX_HANDING_OUT = 4096
# Ids in one message: bounds a message's size and the work redone when it is redelivered.
MAX_TASKS_PER_MESSAGE = 256
# How long the database's answer "nothing due before T" is trusted, when nothing woke us since.
DATABASE_RECHECK_MS = 1_000


# A task id as PostgreSQL stores it (bigint): an id out of range is refused when decoded, so
# the message is dead-lettered at once instead of failing every claim it is part of.
TaskId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class TaskMessage(msgspec.Struct, tag="v1"):
    """One task handed out by the broker (the first shape; still read during an upgrade)."""

    task: TaskId


class TasksMessage(msgspec.Struct, tag="v2"):
    """Tasks handed out together by the broker, acked once all of them are settled."""

    tasks: list[TaskId]


_encode = msgspec.json.encode
_decode = msgspec.json.Decoder(TaskMessage | TasksMessage)


# How long the first task id of a message waits for others. At 1,000 events/s, the ids of each
# group commit went alone (2 publishes each, 460 messages a second, a third of both cores in the
# broker); gathered for 5 ms, 200 at most (bench/README.md). Under load messages fill up anyway.
HAND_OUT_LINGER_MS = 5


@dataclass(frozen=True, slots=True)
class RabbitSettings:
    url: str
    exchange: str = "outpost"
    queue: str = "outpost-delivery"
    dead_letter_queue: str = "outpost-delivery.dlq"
    hold_ms: int = 30_000
    prefetch: int = 64  # messages
    max_redeliveries: int = 10
    hand_out_linger_ms: int = HAND_OUT_LINGER_MS  # 0: the ids of one turn of the event loop


class _Carrier:
    """A received message and how many of its tasks are still open (unclaimed or in hand)."""

    __slots__ = ("message", "open", "settled", "tag")

    def __init__(self, message: AbstractIncomingMessage, tasks: int) -> None:
        self.message = message
        self.tag = message.delivery_tag or 0
        self.open = tasks
        self.settled = False  # acked, nacked or rejected: its tasks answer to nothing now


class HoldingStore(DeliveryQueue, Protocol):
    """What the hand-out needs of the store that stays the truth (PostgreSQL's backend): the
    delivery queue, tasks accepted held back from database claims, and claims by task id."""

    async def accept_held(
        self, event: Event, now: int, dedupe_after: int, *, hold_ms: int
    ) -> tuple[bool, list[int]]: ...

    async def enqueue_manual_held(
        self, event: Event, destination_id: str, attempt_number: int, *, hold_ms: int
    ) -> int: ...

    async def claim_ids(self, ids: list[int], lease_ms: int) -> list[DeliveryTask]: ...


class RabbitQueue:
    """A `DeliveryQueue` over PostgreSQL (truth) and RabbitMQ (hand-out)."""

    def __init__(self, store: HoldingStore, settings: RabbitSettings) -> None:
        self._store = store
        self._settings = settings
        self._connection: AbstractRobustConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        # Ids of received messages not claimed yet: a message bigger than a claim is split.
        self._unclaimed: collections.deque[tuple[int, _Carrier]] = collections.deque()
        self._holding: dict[int, _Carrier] = {}  # claimed task id -> the message that brought it
        # Unsettled messages by channel (a reconnect starts new delivery tags), in tag order.
        self._unacked: dict[object, dict[int, _Carrier]] = {}
        self._arrived = asyncio.Event()
        self._hand_outs: set[asyncio.Task[None]] = set()
        self._handing_out = 0  # task ids given to the hand-out and not yet confirmed
        self._to_hand_out: list[int] = []  # gathered for the next message(s)
        self._flush_timer: asyncio.Handle | None = None  # sends what was gathered
        # The database had no task due before this (ms since the epoch) when last asked, and
        # nothing said otherwise since: until then only handed-out ids are claimed.
        self._database_quiet_until = 0

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
        if self._flush_timer is not None:  # ids gathered: send them rather than leave them a hold
            self._flush()
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
        """Note the message as unacked at once: a `multiple` ack covers every earlier delivery
        tag of the channel, so none may be unknown here, even one whose ids are not claimed."""
        try:
            decoded = _decode.decode(message.body)
        except msgspec.DecodeError:
            log.error("unreadable message on %s; dead-lettering it", self._settings.queue)
            await _settle(message.reject(requeue=False))
            return
        ids = [decoded.task] if isinstance(decoded, TaskMessage) else decoded.tasks
        unique = list(dict.fromkeys(ids))  # a message naming a task twice settles it once
        carrier = _Carrier(message, len(unique))
        with contextlib.suppress(Exception):  # a closed channel: nothing of it can be acked
            self._unacked.setdefault(message.channel, {})[carrier.tag] = carrier
        if not unique:
            await self._ack([carrier])
            return
        self._unclaimed.extend((task_id, carrier) for task_id in unique)
        self._arrived.set()

    # Handing out

    async def _hand_out(self, task_ids: list[int]) -> None:
        """Publish task ids as one message, confirmed; a failure only delays those tasks (see
        module doc)."""
        if self._exchange is None or not task_ids:
            return
        try:
            await self._exchange.publish(
                aio_pika.Message(
                    _encode(TasksMessage(task_ids)),
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=self._settings.queue,
            )
        except Exception as exc:
            log.warning(
                "could not hand %d tasks to RabbitMQ (%r); they wait their hold", len(task_ids), exc
            )

    def _hand_out_soon(self, task_ids: list[int]) -> None:
        """Hand out without making the caller wait for the broker's confirm: the tasks are
        already durable in PostgreSQL, so the 202 need not wait for a quorum queue's write too,
        and a hand-out that never happens costs only the hold.

        The ids wait `hand_out_linger_ms` for others (at least to the end of this turn of the
        event loop, where the other publishes of their group commit resume): they then travel
        in one message. A message full already goes at once."""
        if not task_ids or self._exchange is None:
            return
        if self._handing_out + len(task_ids) > MAX_HANDING_OUT:
            log.warning("RabbitMQ is not keeping up: %d tasks wait their hold", len(task_ids))
            return
        self._handing_out += len(task_ids)
        self._to_hand_out += task_ids
        if len(self._to_hand_out) >= MAX_TASKS_PER_MESSAGE:
            self._flush()
        elif self._flush_timer is None:
            loop = asyncio.get_running_loop()
            linger = self._settings.hand_out_linger_ms / 1000
            self._flush_timer = (
                loop.call_later(linger, self._flush) if linger > 0 else loop.call_soon(self._flush)
            )

    def _flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        gathered, self._to_hand_out = self._to_hand_out, []
        for start in range(0, len(gathered), MAX_TASKS_PER_MESSAGE):
            group = gathered[start : start + MAX_TASKS_PER_MESSAGE]
            running = asyncio.create_task(self._hand_out(group))
            self._hand_outs.add(running)
            running.add_done_callback(functools.partial(self._handed, count=len(group)))

    def _handed(self, done: asyncio.Task[None], *, count: int) -> None:
        self._hand_outs.discard(done)
        self._handing_out -= count

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

    async def claim(self, limit: int, lease_ms: int) -> list[DeliveryTask]:
        if now_ms() < self._database_quiet_until:
            return await self._claim_handed_out(limit, lease_ms)
        share = max(1, limit // 2) if self._unclaimed else limit
        due = await self._store.claim(share, lease_ms)
        if len(due) < share:  # none left due now: when is the next? (see the module's doc)
            await self._ask_when_due()
        return due + await self._claim_handed_out(limit - len(due), lease_ms)

    async def _claim_handed_out(self, limit: int, lease_ms: int) -> list[DeliveryTask]:
        """Claim up to `limit` handed-out ids in one statement; a message bigger than that
        leaves its other ids for the next claim (the worker's bounds are in tasks)."""
        taken: dict[int, list[_Carrier]] = {}
        count = 0
        while count < limit and self._unclaimed:
            task_id, carrier = self._unclaimed.popleft()
            taken.setdefault(task_id, []).append(carrier)  # a repeated message: same id twice
            count += 1
        if not taken:
            return []
        try:
            tasks = await self._store.claim_ids(list(taken), lease_ms)
        except Exception:
            # The database is down (or refuses these ids): nothing was claimed. Nacked, the
            # messages come back, and one that keeps failing is dead-lettered by the broker.
            await self._give_back(taken)
            raise
        done: list[_Carrier] = []
        for task in tasks:
            first, *others = taken.pop(task.id)
            earlier = self._holding.get(task.id)
            if earlier is not None:  # still ours from an older message (our lease ran out and
                # another process released it): that message must not wait for it forever
                self._settle_one(earlier, done)
            self._holding[task.id] = first
            for carrier in others:
                self._settle_one(carrier, done)
        for carriers in taken.values():  # done already, or claimed elsewhere meanwhile
            for carrier in carriers:
                self._settle_one(carrier, done)
        await self._ack(done)
        return tasks

    async def _give_back(self, taken: dict[int, list[_Carrier]]) -> None:
        """The claim failed: nack every message it touched, so each is redelivered (to any
        consumer) and counted towards the dead-letter limit. Ids of those messages
        already in hand finish as usual; the redelivered copy finds them taken."""
        carriers = {id(c): c for cs in taken.values() for c in cs if not c.settled}
        if not carriers:
            return
        dropped = set(carriers)
        self._unclaimed = collections.deque(p for p in self._unclaimed if id(p[1]) not in dropped)
        for carrier in carriers.values():
            self._forget(carrier)
            await _settle(carrier.message.nack(requeue=True))

    def _settle_one(self, carrier: _Carrier, done: list[_Carrier]) -> None:
        """One task of `carrier` is finished, released, or found taken."""
        if carrier.settled:
            return
        carrier.open -= 1
        if carrier.open == 0:
            done.append(carrier)

    async def finish(self, outcomes: list[Outcome]) -> None:
        await self._store.finish(outcomes)
        retries = [o.retry_at for o in outcomes if o.retry_at is not None]
        if retries:  # scheduled in the database
            self._database_due_by(min(retries))
        await self._settle_tasks(o.task for o in outcomes)

    async def release(self, task: DeliveryTask, delay_ms: int) -> None:
        await self._store.release(task, delay_ms)
        self._database_due_by(now_ms() + delay_ms)
        await self._settle_tasks([task])

    async def defer(self, deferred: list[tuple[DeliveryTask, int]]) -> None:
        # Back in the database, due later: claimed from there (not from a message) when due.
        await self._store.defer(deferred)
        self._database_due_by(min(due for _, due in deferred))
        await self._settle_tasks(task for task, _ in deferred)

    async def _settle_tasks(self, tasks: Iterable[DeliveryTask]) -> None:
        done: list[_Carrier] = []
        for task in tasks:
            carrier = self._holding.pop(task.id, None)
            if carrier is not None:
                self._settle_one(carrier, done)
        await self._ack(done)

    async def _ack(self, done: list[_Carrier]) -> None:
        """Ack messages whose tasks are all settled, in as few frames as the channel allows:
        those older than every message still open go in one `multiple` ack, the rest alone."""
        if not done:
            return
        for carrier in done:
            carrier.settled = True
        by_channel: dict[object, list[_Carrier]] = {}
        for carrier in done:
            channel = self._channel_of(carrier)
            if channel is None:  # its channel is gone: the broker redelivers it anyway
                continue
            by_channel.setdefault(channel, []).append(carrier)
        for channel, carriers in by_channel.items():
            unacked = self._unacked[channel]
            oldest_open = min((t for t, c in unacked.items() if not c.settled), default=None)
            below = [c for c in carriers if oldest_open is None or c.tag < oldest_open]
            alone = [c for c in carriers if oldest_open is not None and c.tag > oldest_open]
            if below:
                newest = max(below, key=lambda c: c.tag)
                for tag in [t for t in unacked if t <= newest.tag]:
                    del unacked[tag]
                await _settle(newest.message.ack(multiple=len(below) > 1))
            for carrier in alone:
                del unacked[carrier.tag]
                await _settle(carrier.message.ack())
        self._drop_closed_channels()

    def _channel_of(self, carrier: _Carrier) -> object | None:
        try:
            channel: object = carrier.message.channel
        except Exception:  # aio_pika raises once the channel is closed
            return None
        unacked = self._unacked.get(channel)
        return channel if unacked is not None and carrier.tag in unacked else None

    def _forget(self, carrier: _Carrier) -> None:
        carrier.settled = True
        channel = self._channel_of(carrier)
        if channel is not None:
            del self._unacked[channel][carrier.tag]

    def _drop_closed_channels(self) -> None:
        for channel in [c for c in self._unacked if getattr(c, "is_closed", False)]:
            del self._unacked[channel]

    def _database_due_by(self, due: int) -> None:
        """This process made a task due in the database at `due`."""
        self._database_quiet_until = min(self._database_quiet_until, due)

    async def next_visible_at(self) -> int | None:
        if now_ms() < self._database_quiet_until:
            return self._database_quiet_until
        return await self._ask_when_due()

    async def _ask_when_due(self) -> int | None:
        """Ask the database when its earliest task is due; trust the answer until then, or for
        `DATABASE_RECHECK_MS` at most."""
        now = now_ms()
        due = await self._store.next_visible_at()
        self._database_quiet_until = now + DATABASE_RECHECK_MS
        if due is not None:
            self._database_due_by(due)
        return due

    def wake(self) -> None:
        self._arrived.set()
        self._database_quiet_until = 0
        self._store.wake()

    async def wait_for_work(self, timeout: float) -> None:
        if not self._unclaimed:
            arrived = asyncio.create_task(self._arrived.wait())
            queued = asyncio.create_task(self._store.wait_for_work(timeout))
            await asyncio.wait(
                {arrived, queued}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if queued.done():  # the database said a task is due (or the wait ended): ask it
                self._database_quiet_until = 0
            arrived.cancel()
            queued.cancel()
        self._arrived.clear()


async def _settle(answer: Awaitable[None]) -> None:
    """Ack, nack or reject, whatever state the channel is in.

    The database already holds the truth: a message whose answer is lost with its channel is
    delivered again, finds its tasks done or claimed, and is acked then.
    """
    try:
        await answer
    except Exception as exc:  # aiormq raises RuntimeError subclasses on a dead channel
        log.debug("could not answer a RabbitMQ message: %r", exc)
