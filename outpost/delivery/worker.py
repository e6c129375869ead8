"""The delivery worker: claims due tasks in batches and runs up to `concurrency` at once.

Each task ends in exactly one of three ways: an attempt is recorded (with its retry decision, in
the same commit that removes the task); the task is dropped with no attempt (its destination was
deleted or disabled); or it is released back to the queue because no attempt could be made.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from outpost.core.backoff import RetryPolicy
from outpost.core.ids import IdGenerator
from outpost.core.models import Attempt, DeliveryResult, DeliveryTask, Destination, Outcome
from outpost.core.timefmt import now_ms
from outpost.delivery.recorder import Recorder
from outpost.delivery.retry import next_step
from outpost.destinations.registry import Registry
from outpost.errors import DeliveryInfrastructureError, OutpostError
from outpost.observability import context
from outpost.storage.protocols import DeliveryQueue
from outpost.telemetry.hooks import DeliveryObserver

log = logging.getLogger(__name__)

CLAIM_BATCH = 100
ERROR_PAUSE_SECONDS = 1.0
MAX_CLAIMS_WITHOUT_ATTEMPT = 10  # then an infrastructure fault is recorded as a failed attempt


class DestinationLookup(Protocol):
    async def get_destination(self, tenant_id: str, destination_id: str) -> Destination | None: ...


class Scheduler(Protocol):
    async def next_visible_at(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    concurrency: int
    lease_ms: int
    idle_poll_ms: int  # longest sleep while nothing is due
    release_delay_ms: int = 5_000  # a task that could not be attempted waits this long


CLAIM_AHEAD = 1  # concurrencies' worth of tasks claimed beyond the busy slots
RECORD_BACKLOG = 4  # concurrencies' worth of outcomes waiting for their write before claims pause


class DeliveryWorker:
    observer: DeliveryObserver | None = None  # set when telemetry is on

    @staticmethod
    def messages_in_hand(concurrency: int) -> int:
        """Most tasks between claim and record at once: in slots, claimed ahead, unrecorded."""
        return concurrency * (1 + CLAIM_AHEAD + RECORD_BACKLOG)

    def __init__(
        self,
        queue: DeliveryQueue,
        scheduler: Scheduler,
        destinations: DestinationLookup,
        registry: Registry,
        policy: RetryPolicy,
        ids: IdGenerator,
        settings: WorkerSettings,
    ) -> None:
        self._queue = queue
        self._scheduler = scheduler
        self._destinations = destinations
        self._registry = registry
        self._policy = policy
        self._ids = ids
        self._settings = settings
        self._recorder = Recorder(queue.finish)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._waiting: collections.deque[DeliveryTask] = collections.deque()  # claimed, no slot
        self._stopping = asyncio.Event()
        self.healthy = True

    async def run(self) -> None:
        """Deliver until `stop()`; then wait for the deliveries in flight to be recorded."""
        try:
            while not self._stopping.is_set():
                await self._fill()
        finally:
            while self._in_flight:  # each ending delivery starts a waiting one
                await asyncio.wait(self._in_flight)
            await self._recorder.drained()

    def stop(self) -> None:
        self._stopping.set()
        self._queue.wake()

    async def _fill(self) -> None:
        # A slot is free once its attempt has ended: recording is the Recorder's, which writes
        # the outcomes of many deliveries at once. Its backlog is bounded too, so claims cannot
        # outrun a slow store.
        if self._recorder.backlog >= RECORD_BACKLOG * self._settings.concurrency:
            await self._recorder.written()
            return
        # Claims run ahead of the slots by up to one more `concurrency` of tasks: a claim is a
        # commit, slower than a delivery to a fast destination, and slots must not idle while
        # it is on its way. Waiting tasks hold their lease; a slot takes one as it frees.
        ahead = (1 + CLAIM_AHEAD) * self._settings.concurrency
        room = ahead - len(self._in_flight) - len(self._waiting)
        if room <= 0:
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            return
        want = min(room, CLAIM_BATCH)
        try:
            tasks = await self._queue.claim(want, self._settings.lease_ms)
            self._waiting.extend(tasks)
            self._start_waiting()
            if len(tasks) < want:
                await self._queue.wait_for_work(await self._idle_seconds())
            self.healthy = True
        except Exception as exc:
            # The store is down (or a bug): report unhealthy, keep the process, try again soon.
            # Claimed tasks keep their leases and come back if this process never finishes them.
            self.healthy = False
            log.error("delivery loop: %r; retrying in %.0f s", exc, ERROR_PAUSE_SECONDS)
            await asyncio.sleep(ERROR_PAUSE_SECONDS)

    def _start_waiting(self) -> None:
        while self._waiting and len(self._in_flight) < self._settings.concurrency:
            running = asyncio.create_task(self._deliver(self._waiting.popleft()))
            self._in_flight.add(running)
            running.add_done_callback(self._slot_freed)

    def _slot_freed(self, running: asyncio.Task[None]) -> None:
        self._in_flight.discard(running)
        self._start_waiting()

    async def _idle_seconds(self) -> float:
        due = await self._scheduler.next_visible_at()
        longest = self._settings.idle_poll_ms / 1000
        if due is None:
            return longest
        return max(0.0, min(longest, (due - now_ms()) / 1000))

    async def _deliver(self, task: DeliveryTask) -> None:
        # Each delivery runs in a task of its own: these fields stay on its log lines only.
        context.bind(
            event_id=task.event.id,
            tenant_id=task.event.tenant_id,
            destination_id=task.destination_id,
            attempt=task.attempt_number,
        )
        try:
            outcome = await self._attempt(task)
        except DeliveryInfrastructureError as exc:
            log.warning("no attempt for event %s (claim %d): %s", task.event.id, task.claims, exc)
            await self._settle(lambda: self._queue.release(task, self._settings.release_delay_ms))
            return
        except OutpostError as exc:  # e.g. the store was unreachable to look the destination up
            log.error("delivery of event %s not attempted: %s", task.event.id, exc)
            return  # the task keeps its lease and is claimed again when it ends
        self._recorder.submit(outcome).add_done_callback(_report_unrecorded)

    async def _settle(self, write: Callable[[], Awaitable[None]]) -> None:
        try:
            await write()
        except Exception as exc:
            # The task keeps its lease and is delivered again once it expires: at least once.
            log.error("could not record a delivery: %r", exc)

    async def _attempt(self, task: DeliveryTask) -> Outcome:
        event = task.event
        destination = await self._destinations.get_destination(event.tenant_id, task.destination_id)
        if destination is None or not destination.enabled:
            return Outcome(task)  # deleted or disabled since publish: dropped, no attempt
        observer = self.observer
        if observer is None:
            result = await self._publish(task, destination)
        else:
            result = await observer.delivering(task, destination, self._publish(task, destination))
        log.debug("attempt %s %s", result.status, result.code)
        now = now_ms()
        attempt = Attempt(
            id=self._ids.attempt(),
            tenant_id=event.tenant_id,
            event_id=event.id,
            destination_id=destination.id,
            destination_type=destination.type,
            topic=event.topic,
            status=result.status,
            time=now,
            attempt_number=task.attempt_number,
            manual=task.manual,
            code=result.code,
            response_data=result.response_data,
            latency_ms=result.latency_ms,
        )
        return next_step(task, result, attempt, self._policy, now)

    async def _publish(self, task: DeliveryTask, destination: Destination) -> DeliveryResult:
        """Deliver once. A bug or a persistent infrastructure fault becomes a failed attempt
        (code `ERR`) rather than a task that is released and claimed again forever.

        The result carries the milliseconds the provider's publish call took (the attempt's
        `latency_ms`), also when it raised; none when no provider was called."""
        provider = self._registry.find(destination.type)
        if provider is None:
            return DeliveryResult("failed", "ERR", {"error": f"unknown type {destination.type}"})
        started = time.perf_counter_ns()
        try:
            result = await provider.publish(task.event, destination)
        except DeliveryInfrastructureError as exc:
            if task.claims < MAX_CLAIMS_WITHOUT_ATTEMPT:
                raise
            result = DeliveryResult("failed", "ERR", {"error": str(exc)})
        except Exception:
            log.exception("delivering event %s failed unexpectedly", task.event.id)
            result = DeliveryResult("failed", "ERR", {"error": "internal error"})
        latency_ms = (time.perf_counter_ns() - started) // 1_000_000
        return dataclasses.replace(result, latency_ms=latency_ms)


def _report_unrecorded(recorded: asyncio.Future[None]) -> None:
    if not recorded.cancelled() and (exc := recorded.exception()) is not None:
        # The task keeps its lease and is delivered again once it expires: at least once.
        log.error("could not record a delivery: %r", exc)
