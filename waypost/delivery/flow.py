"""Which claimed task starts next, and which wait (pure: no I/O, times are passed in).

The worker claims due tasks in batches; this module decides the order they take the worker's
slots, so that one destination (or one tenant) cannot hold the slots every other one needs:

- **Round robin**: tasks start tenant by tenant, and within a tenant destination by
  destination, not in claim order; a burst for one destination does not queue the others.
- **Caps**: a destination holds at most its `concurrency` slots (DESTINATION_MAX_CONCURRENCY,
  or its `outpost.max_concurrency` metadata), a tenant at most `tenant_concurrency`. The
  server-wide caps may be exceeded while more than a quarter of all slots are free (so one busy
  destination alone still uses most of them); a destination's own cap never is.
- **Circuit**: after `circuit_failures` consecutive timeouts or connection failures a
  destination's circuit opens: one delivery (the probe) is in flight at a time, the others wait,
  until an attempt gets an answer (any HTTP response, even a 500, closes it).
- **Rate limit**: a token bucket per destination (`outpost.rate_limit_per_second`, or
  DESTINATION_RATE_LIMIT_PER_SECOND) spaces the starts.

A task that cannot start soon is handed back by `overflow()` with the time it is expected to be
able to start; the worker gives it back to the queue (a *deferral*: no attempt is recorded and
its claim is not counted, so attempt numbers and the retry schedule are untouched).

State is per process: with several delivery processes each applies the caps and rates on its
own.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from waypost.core.flow_limits import Overrides, lenient_overrides
from waypost.core.models import DeliveryTask

if TYPE_CHECKING:
    from waypost.config import Config

Key = tuple[str, str]  # (tenant id, destination id)

# Attempt codes that mean the destination did not answer: they hold a slot for up to the
# timeout (or say nothing about the receiver), unlike an HTTP error, which comes back at once.
CIRCUIT_CODES = frozenset(
    {
        "timeout",
        "connection_refused",
        "connection_reset",
        "network_unreachable",
        "network_error",
        "dns_error",
    }
)
HOLD_MS = 1_000  # a task expected to start within this long waits in memory, holding its lease
MIN_DEFER_MS = 50
MAX_CIRCUIT_WAIT_MS = 60_000  # the longest a task of an open circuit is put back for
SPREAD_MS = 5  # deferred tasks of one destination come back this far apart, not all at once


@dataclass(frozen=True, slots=True)
class Limits:
    concurrency: int
    rate_per_second: float = 0.0  # 0: no limit
    own: bool = False  # the destination's own cap (metadata): never exceeded


@dataclass(frozen=True, slots=True)
class FlowSettings:
    concurrency: int  # the worker's slots
    destination_concurrency: int  # a destination's cap unless its metadata says otherwise
    tenant_concurrency: int
    rate_per_second: float = 0.0  # a destination's rate unless its metadata says otherwise
    circuit_failures: int = 5  # 0: no circuit
    timeout_ms: int = 5_000  # one attempt's timeout: how long a probe may take

    def limits(self, metadata: Mapping[str, str] | None) -> Limits:
        overrides = lenient_overrides(metadata)
        concurrency = overrides.concurrency or self.destination_concurrency
        rate = (
            self.rate_per_second if overrides.rate_per_second is None else overrides.rate_per_second
        )
        return Limits(max(1, concurrency), rate, overrides.concurrency is not None)


def flow_settings(config: Config) -> FlowSettings:
    """The settings' flow control. A destination may hold an eighth of the slots by default:
    one answering in 5 ms still gets 8 / 0.005 = 1,600 deliveries/s, and five that hang hold 40
    of 64 slots before their circuits open, leaving the rest to everyone else (with a quarter,
    four would hold them all). A tenant may hold half, so no one tenant's destinations, however
    many, take every slot."""
    concurrency = config.delivery_max_concurrency
    return FlowSettings(
        concurrency=concurrency,
        destination_concurrency=config.destination_max_concurrency or max(1, concurrency // 8),
        tenant_concurrency=config.tenant_max_concurrency or max(1, concurrency // 2),
        rate_per_second=config.destination_rate_limit_per_second,
        circuit_failures=config.delivery_circuit_failure_threshold,
        timeout_ms=round(config.delivery_timeout_seconds * 1000),
    )


def flow_defaults(settings: FlowSettings) -> Overrides:
    """The server-wide per-destination limits, as overrides compare with them."""
    return Overrides(settings.destination_concurrency, settings.rate_per_second)


@dataclass(slots=True)
class _Destination:
    limits: Limits | None = None  # None until the destination was looked up
    metadata: Mapping[str, str] | None = None  # what `limits` was read from
    waiting: collections.deque[DeliveryTask] = field(default_factory=collections.deque)
    started: dict[int, int] = field(default_factory=dict)  # task id → start time (ms)
    failures: int = 0  # consecutive attempts that got no answer
    failed_probes: int = 0  # of those, made while the circuit was open
    tokens: float = 1.0
    refilled_at: int = 0
    average_ms: float = 0.0  # of the attempts that ended (exponentially weighted)


class Flow:
    def __init__(self, settings: FlowSettings) -> None:
        self._settings = settings
        self._destinations: dict[Key, _Destination] = {}
        self._tenants: dict[str, int] = {}  # tenant → deliveries in flight
        # Tenants with waiting tasks → their destinations with waiting tasks, both in turn order.
        self._ring: collections.OrderedDict[str, collections.OrderedDict[Key, None]] = (
            collections.OrderedDict()
        )
        self.waiting = 0
        self.running = 0
        # Slots no default cap may borrow: kept for whoever has not reached theirs.
        self._reserve = max(1, settings.concurrency // 4)

    # -- what the worker tells ----------------------------------------------------------------

    def learn(
        self, tenant_id: str, destination_id: str, metadata: Mapping[str, str] | None
    ) -> None:
        """The destination's limits, from its metadata (called on every look-up, so an edit
        applies from the next delivery on). The cached destination hands back the same metadata
        object until it changes, so the limits are parsed once per change, not per delivery."""
        state = self._state((tenant_id, destination_id))
        if state.limits is not None and state.metadata is metadata:
            return
        state.metadata = metadata
        state.limits = self._settings.limits(metadata)

    def unknown(self, tasks: list[DeliveryTask]) -> set[Key]:
        """Destinations among `tasks` whose limits have not been learnt yet."""
        found = set()
        for task in tasks:
            key = (task.event.tenant_id, task.destination_id)
            state = self._destinations.get(key)
            if state is None or state.limits is None:
                found.add(key)
        return found

    def add(self, task: DeliveryTask) -> None:
        key = (task.event.tenant_id, task.destination_id)
        self._state(key).waiting.append(task)
        self._ring.setdefault(key[0], collections.OrderedDict())[key] = None
        self.waiting += 1

    def take(self, now: int) -> DeliveryTask | None:
        """The next task to start, in turn, or None when no waiting task may start now."""
        for _ in range(len(self._ring)):
            tenant, keys = next(iter(self._ring.items()))
            self._ring.move_to_end(tenant)
            if not self._tenant_room(tenant):
                continue
            for _ in range(len(keys)):
                key = next(iter(keys))
                keys.move_to_end(key)
                state = self._destinations[key]
                if self._blocked(state, now):
                    continue
                task = state.waiting.popleft()
                self.waiting -= 1
                if not state.waiting:
                    del keys[key]
                    if not keys:
                        del self._ring[tenant]
                self._start(state, tenant, task, now)
                return task
        return None

    def finished(self, task: DeliveryTask, code: str | None, now: int) -> None:
        """A started task ended: `code` is its attempt's, None when no attempt was made."""
        key = (task.event.tenant_id, task.destination_id)
        state = self._destinations.get(key)
        if state is None:
            return
        began = state.started.pop(task.id, None)
        if began is None:
            return
        self._tenants[key[0]] -= 1
        self.running -= 1
        if not self._tenants[key[0]]:
            del self._tenants[key[0]]
        took = now - began
        state.average_ms = took if not state.average_ms else 0.8 * state.average_ms + 0.2 * took
        if code is None:
            pass
        elif code in CIRCUIT_CODES:
            if self._open(state):
                state.failed_probes += 1
            state.failures += 1
        else:
            state.failures = state.failed_probes = 0
        self._forget_if_idle(key, state)

    def next_start_at(self, now: int) -> int | None:
        """When a waiting task held back only by its rate limit may start (a slot freeing
        starts the others)."""
        soonest = None
        for keys in self._ring.values():
            for key in keys:
                state = self._destinations[key]
                if self._at_cap(state) or state.tokens >= 1:
                    continue
                rate = self._rate(state)
                at = state.refilled_at + math.ceil((1 - state.tokens) / rate * 1000)
                soonest = at if soonest is None else min(soonest, at)
        return soonest

    def overflow(self, now: int) -> list[tuple[DeliveryTask, int]]:
        """Waiting tasks that should go back to the queue, each with when to come back: those
        not expected to start within HOLD_MS, then, while more than `concurrency` tasks wait in
        memory (they would keep the worker from claiming for others), the blocked ones."""
        out: list[tuple[DeliveryTask, int]] = []
        blocked: list[Key] = []
        for tenant, keys in list(self._ring.items()):
            tenant_full = not self._tenant_room(tenant)
            for key in list(keys):
                state = self._destinations[key]
                if not (tenant_full or self._blocked(state, now)):
                    continue
                blocked.append(key)
                keep: collections.deque[DeliveryTask] = collections.deque()
                for position, task in enumerate(state.waiting):
                    at = self._expected_start(state, position, now)
                    if at - now <= HOLD_MS:
                        keep.append(task)
                    else:
                        out.append((task, max(at, now + MIN_DEFER_MS)))
                self._replace_waiting(key, state, keep)
        for key in blocked:
            if self.waiting <= self._settings.concurrency:
                break
            found = self._destinations.get(key)
            if found is None or not found.waiting:
                continue
            for position, task in enumerate(found.waiting):
                at = self._expected_start(found, position, now)
                out.append((task, max(at, now + MIN_DEFER_MS)))
            self._replace_waiting(key, found, collections.deque())
        return out

    def drain(self) -> list[DeliveryTask]:
        """Every waiting task (the worker is stopping: they go back to the queue)."""
        tasks: list[DeliveryTask] = []
        for keys in self._ring.values():
            for key in keys:
                tasks.extend(self._destinations[key].waiting)
                self._destinations[key].waiting.clear()
        self._ring.clear()
        self.waiting = 0
        return tasks

    def circuit_open(self, tenant_id: str, destination_id: str) -> bool:
        state = self._destinations.get((tenant_id, destination_id))
        return state is not None and self._open(state)

    # -- rules ---------------------------------------------------------------------------------

    def _state(self, key: Key) -> _Destination:
        state = self._destinations.get(key)
        if state is None:
            state = self._destinations[key] = _Destination()
        return state

    def _open(self, state: _Destination) -> bool:
        threshold = self._settings.circuit_failures
        return threshold > 0 and state.failures >= threshold

    def _cap(self, state: _Destination) -> int:
        if self._open(state):
            return 1
        limits = state.limits
        return limits.concurrency if limits is not None else self._settings.destination_concurrency

    def _rate(self, state: _Destination) -> float:
        limits = state.limits
        return limits.rate_per_second if limits is not None else self._settings.rate_per_second

    def _borrowing(self) -> bool:
        """Whether a default cap may be exceeded now: while more than the reserve is free, so a
        single busy destination can use most slots, and hanging ones never take the last ones."""
        return self.running < self._settings.concurrency - self._reserve

    def _tenant_room(self, tenant: str) -> bool:
        return self._tenants.get(tenant, 0) < self._settings.tenant_concurrency or self._borrowing()

    def _at_cap(self, state: _Destination) -> bool:
        if len(state.started) < self._cap(state):
            return False
        own = state.limits is not None and state.limits.own
        return own or self._open(state) or not self._borrowing()

    def _blocked(self, state: _Destination, now: int) -> bool:
        if self._at_cap(state):
            return True
        rate = self._rate(state)
        if rate <= 0:
            return False
        self._refill(state, rate, now)
        return state.tokens < 1

    def _refill(self, state: _Destination, rate: float, now: int) -> None:
        # A bucket of one token: starts are spaced 1/rate apart, never bunched.
        if state.refilled_at:
            state.tokens = min(1.0, state.tokens + (now - state.refilled_at) * rate / 1000)
        state.refilled_at = now

    def _start(self, state: _Destination, tenant: str, task: DeliveryTask, now: int) -> None:
        state.started[task.id] = now
        self._tenants[tenant] = self._tenants.get(tenant, 0) + 1
        self.running += 1
        if self._rate(state) > 0:
            state.tokens -= 1

    def _expected_start(self, state: _Destination, position: int, now: int) -> int:
        """When the waiting task at `position` of its destination may start, roughly."""
        if self._open(state):
            # After the probe's outcome at the earliest; longer while probes keep failing.
            wait = min(
                MAX_CIRCUIT_WAIT_MS, self._settings.timeout_ms * 2 ** min(state.failed_probes, 8)
            )
            return int(now + wait + position * SPREAD_MS)
        at = now
        if self._at_cap(state):
            # A slot frees after about an attempt's time; one in flight for longer than the
            # average says the destination is slower now.
            oldest = now - min(state.started.values()) if state.started else 0
            turn = max(state.average_ms, oldest)
            at = now + round((position // max(1, len(state.started)) + 1) * turn)
        rate = self._rate(state)
        if rate > 0:
            at = max(at, now + math.ceil((position + 1 - state.tokens) / rate * 1000))
        return at

    def _replace_waiting(
        self, key: Key, state: _Destination, keep: collections.deque[DeliveryTask]
    ) -> None:
        self.waiting -= len(state.waiting) - len(keep)
        state.waiting = keep
        if not keep:
            keys = self._ring[key[0]]
            del keys[key]
            if not keys:
                del self._ring[key[0]]
            self._forget_if_idle(key, state)

    def _forget_if_idle(self, key: Key, state: _Destination) -> None:
        # Nothing to remember once nothing waits or runs and the circuit is closed: the limits
        # are looked up again on the next claim; a rate limit's bucket would be full again.
        if state.waiting or state.started or state.failures:
            return
        rate = self._rate(state)
        if rate > 0 and state.tokens < 1:
            return
        del self._destinations[key]
