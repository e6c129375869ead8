"""The delivery worker: claims due tasks in batches and runs up to `concurrency` at once.

Each task ends in exactly one of three ways: an attempt is recorded (with its retry decision, in
the same commit that removes the task); the task is dropped with no attempt (its destination was
deleted or disabled); or it is released back to the queue because no attempt could be made.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from waypost.core.backoff import RetryPolicy
from waypost.core.ids import IdGenerator
from waypost.core.models import Attempt, DeliveryResult, DeliveryTask, Destination, Outcome
from waypost.core.timefmt import now_ms
from waypost.delivery.flow import Flow, FlowSettings
from waypost.delivery.recorder import Recorder
from waypost.delivery.retry import exhausted, next_step
from waypost.destinations.registry import Registry
from waypost.errors import DeliveryInfrastructureError, OutpostError
from waypost.storage.protocols import DeliveryQueue
from waypost.telemetry import context
from waypost.telemetry.hooks import DeliveryObserver, OutcomeObserver

log = logging.getLogger(__name__)

CLAIM_BATCH = 100
ERROR_PAUSE_SECONDS = 1.0
MAX_CLAIMS_WITHOUT_ATTEMPT = 10  # then an infrastructure fault is recorded as a failed attempt


class DestinationLookup(Protocol):
    async def get_destination(self, tenant_id: str, destination_id: str) -> Destination | None: ...


# Under light load each wake-up would claim one or two tasks, and each outcome would be written
# alone: a commit (an fsync in PostgreSQL) per task, twice. Gathering for this long first makes
# those commits carry several tasks each (at 1,000 events/s: CPU per event −29 % embedded, −16 %
# with PostgreSQL's own included; bench/README.md). Under load nothing waits: claims come back
# full and the recorder always has a write in flight.
LINGER_MS = 5


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    concurrency: int
    lease_ms: int
    idle_poll_ms: int  # longest sleep while nothing is due
    release_delay_ms: int = 5_000  # a task that could not be attempted waits this long
    flow: FlowSettings | None = None  # None: no caps, no circuit, no rate limit (tests)
    # After a claim that found less than it asked for, the next waits this long for work to
    # gather; and an outcome recorded from idle waits as long for others to share its write.
    linger_ms: int = LINGER_MS

    def flow_settings(self) -> FlowSettings:
        if self.flow is not None:
            return self.flow
        return FlowSettings(self.concurrency, self.concurrency, self.concurrency, 0.0, 0)


CLAIM_AHEAD = 1  # concurrencies' worth of tasks claimed beyond the busy slots
RECORD_BACKLOG = 4  # concurrencies' worth of outcomes waiting for their write before claims pause


class DeliveryWorker:
    @staticmethod
    def messages_in_hand(concurrency: int) -> int:
        """Most tasks between claim and record at once: in slots, claimed ahead, unrecorded."""
        return concurrency * (1 + CLAIM_AHEAD + RECORD_BACKLOG)

    def __init__(
        self,
        *,
        queue: DeliveryQueue,
        destinations: DestinationLookup,
        registry: Registry,
        policy: RetryPolicy,
        ids: IdGenerator,
        settings: WorkerSettings,
        observer: DeliveryObserver | None = None,
        outcomes: OutcomeObserver | None = None,
    ) -> None:
        """`queue`: where tasks are claimed and finished; `destinations`: where a task's
        destination is looked up. `observer`: telemetry, when on; `outcomes`: Prometheus."""
        self._observer = observer
        self._outcomes = outcomes
        self._queue = queue
        self._flow = Flow(settings.flow_settings())
        # Every look-up of a destination (each delivery makes one) refreshes its flow limits.
        self._destinations = _Learning(destinations, self._flow)
        self._registry = registry
        self._policy = policy
        self._ids = ids
        self._settings = settings
        self._recorder = Recorder(queue.finish, linger_seconds=settings.linger_ms / 1000)
        self._short = False  # the last claim found less than it asked for
        self._in_flight: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None  # starts a rate-limited task when due
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
            if self._timer is not None:
                self._timer.cancel()
            left = self._flow.drain()  # held back by their destination's limits: not attempted
            if left:
                await self._defer([(task, now_ms()) for task in left])
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
        room = ahead - len(self._in_flight) - self._flow.waiting
        if room <= 0:
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            return
        want = min(room, CLAIM_BATCH)
        if self._short and self._settings.linger_ms > 0:
            await asyncio.sleep(self._settings.linger_ms / 1000)
        try:
            tasks = await self._queue.claim(want, self._settings.lease_ms)
            self._short = len(tasks) < want
            await self._learn(tasks)
            for task in tasks:
                self._flow.add(task)
            self._start_waiting()
            deferred = self._flow.overflow(now_ms())
            if deferred:
                await self._defer(deferred)
            if len(tasks) < want:
                await self._queue.wait_for_work(await self._idle_seconds())
            self.healthy = True
        except Exception as exc:
            # The store is down (or a bug): report unhealthy, keep the process, try again soon.
            # Claimed tasks keep their leases and come back if this process never finishes them.
            self.healthy = False
            log.error("delivery loop: %r; retrying in %.0f s", exc, ERROR_PAUSE_SECONDS)
            await asyncio.sleep(ERROR_PAUSE_SECONDS)

    async def _learn(self, tasks: list[DeliveryTask]) -> None:
        """Look up the destinations whose flow limits are not known yet (cached reads)."""
        for tenant_id, destination_id in self._flow.unknown(tasks):
            try:
                found = await self._destinations.get_destination(tenant_id, destination_id)
            except OutpostError:
                found = None  # the delivery finds out; meanwhile the defaults apply
            if found is None:
                self._flow.learn(tenant_id, destination_id, None)

    async def _defer(self, deferred: list[tuple[DeliveryTask, int]]) -> None:
        try:
            await self._queue.defer(deferred)
        except Exception as exc:
            # They keep their leases and are claimed again once those expire: at least once.
            log.error("could not give back %d waiting deliveries: %r", len(deferred), exc)

    def _start_waiting(self) -> None:
        now = now_ms()
        while len(self._in_flight) < self._settings.concurrency:
            task = self._flow.take(now)
            if task is None:
                break
            running = asyncio.create_task(self._run(task))
            self._in_flight.add(running)
            running.add_done_callback(self._slot_freed)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if len(self._in_flight) < self._settings.concurrency:
            due = self._flow.next_start_at(now)
            if due is not None:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(max(0, due - now) / 1000, self._start_waiting)

    async def _run(self, task: DeliveryTask) -> None:
        code = None
        try:
            outcome = await self._deliver(task)
            if outcome is not None and outcome.attempt is not None:
                code = outcome.attempt.code
        finally:
            self._flow.finished(task, code, now_ms())

    def _slot_freed(self, running: asyncio.Task[None]) -> None:
        self._in_flight.discard(running)
        self._start_waiting()

    async def _idle_seconds(self) -> float:
        due = await self._queue.next_visible_at()
        longest = self._settings.idle_poll_ms / 1000
        if due is None:
            return longest
        return max(0.0, min(longest, (due - now_ms()) / 1000))

    async def _deliver(self, task: DeliveryTask) -> Outcome | None:
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
            return None
        except OutpostError as exc:  # e.g. the store was unreachable to look the destination up
            log.error("delivery of event %s not attempted: %s", task.event.id, exc)
            return None  # the task keeps its lease and is claimed again when it ends
        self._recorder.submit(outcome).add_done_callback(_report_unrecorded)
        return outcome

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
        observer = self._observer
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
            request_headers=result.request_headers,
        )
        outcome = next_step(task, result, attempt, self._policy, now)
        if not result.ok and exhausted(outcome):
            log.info(
                "retries exhausted: event %s to destination %s failed attempt %d (%s)",
                event.id,
                destination.id,
                task.attempt_number,
                result.code or result.status,
            )
        if self._outcomes is not None:
            self._outcomes.attempted(outcome)
        return outcome

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


class _Learning:
    """A destination look-up that tells the flow each destination's limits as it reads them."""

    def __init__(self, inner: DestinationLookup, flow: Flow) -> None:
        self._inner = inner
        self._flow = flow

    async def get_destination(self, tenant_id: str, destination_id: str) -> Destination | None:
        found = await self._inner.get_destination(tenant_id, destination_id)
        if found is not None:
            self._flow.learn(tenant_id, destination_id, found.metadata)
        return found


def _report_unrecorded(recorded: asyncio.Future[None]) -> None:
    if not recorded.cancelled() and (exc := recorded.exception()) is not None:
        # The task keeps its lease and is delivered again once it expires: at least once.
        log.error("could not record a delivery: %r", exc)
