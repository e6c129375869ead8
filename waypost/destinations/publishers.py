"""Open connections to tenants' services, kept for reuse: the one cache every type delivers through.

A type names what it connects with as a key (a broker login, an AWS account and region, a
connection string) and says how to open and close what that key connects to: an AMQP
connection, a Kafka producer, an SDK client. Destinations with the same key share one entry.

- Opening is once per key: concurrent first uses wait for the same attempt and share its
  answer, a failure included (rather than each paying another connect timeout); the next use
  after a failure tries again.
- A destination (`holder`) whose key changes (new credentials, another broker) moves to the new
  key's entry, and the old entry is closed as soon as no other destination holds it and no
  delivery is using it.
- At most `max_entries` are kept: past that, the least recently used that no delivery is using
  is closed. With `idle_seconds`, entries unused that long are closed too.
- An entry whose publisher is no longer `usable` (its connection dropped) is closed and opened
  again by the next use.
- `close()` refuses new uses, waits up to `drain_seconds` for those in flight, then closes every
  entry; opening that finishes after it is closed straight away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from waypost.errors import DeliveryInfrastructureError

K = TypeVar("K", bound=Hashable)
P = TypeVar("P")

MAX_ENTRIES = 100  # per type: tenants come and go, credentials rotate


@dataclass(eq=False, slots=True)
class _Entry(Generic[P]):
    opening: asyncio.Future[P]
    holders: set[str] = field(default_factory=set)
    in_use: int = 0
    last_used: float = 0.0
    closing: bool = False


class PublisherCache(Generic[K, P]):
    def __init__(
        self,
        open_: Callable[[K], Awaitable[P]],
        close: Callable[[P], Awaitable[object]],
        *,
        closed_message: str,
        max_entries: int = MAX_ENTRIES,
        idle_seconds: float | None = None,
        drain_seconds: float = 0.0,
        usable: Callable[[P], bool] | None = None,
    ) -> None:
        self._open = open_
        self._close = close
        self._closed_message = closed_message
        self._max = max(1, max_entries)
        self._idle = idle_seconds
        self._drain = drain_seconds
        self._usable = usable
        self._entries: OrderedDict[K, _Entry[P]] = OrderedDict()  # least recently used first
        self._held: dict[str, K] = {}  # holder → the key it used last
        self._retired: set[_Entry[P]] = set()  # out of the cache, still in use
        self._closing: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        self._drained = asyncio.Event()
        self._last_sweep = 0.0
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        """How many publishers are open or opening."""
        return len(self._entries)

    def peek(self, key: K) -> P | None:
        """The open publisher of `key`, without using it; None when there is none (yet)."""
        entry = self._entries.get(key)
        if entry is None or self._stale(entry) or not entry.opening.done():
            return None
        return entry.opening.result()

    @contextlib.asynccontextmanager
    async def use(self, key: K, holder: str = "") -> AsyncIterator[P]:
        """The publisher of `key`, opened on first use; raises what opening raised, and
        `DeliveryInfrastructureError` once closed. `holder`: the destination using it."""
        if self._closed:
            raise DeliveryInfrastructureError(self._closed_message)
        entry = self._entry(key, holder)
        entry.in_use += 1  # from here on, nothing closes it under us
        self._in_flight += 1
        try:
            try:
                publisher = await asyncio.shield(entry.opening)
            except Exception:
                if self._entries.get(key) is entry:
                    del self._entries[key]  # the next use tries again
                    self._release(entry)
                raise
            if self._closed:  # closed while we waited: the publisher is being closed
                raise DeliveryInfrastructureError(self._closed_message)
            yield publisher
        finally:
            entry.in_use -= 1
            entry.last_used = asyncio.get_running_loop().time()
            self._in_flight -= 1
            if self._closed and not self._in_flight:
                self._drained.set()
            if not entry.in_use and entry in self._retired:  # replaced while in use
                self._retired.discard(entry)
                self._schedule_close(entry)
            self._trim()

    def _entry(self, key: K, holder: str) -> _Entry[P]:
        entry = self._entries.get(key)
        if entry is not None and self._stale(entry):
            del self._entries[key]
            self._release(entry)
            entry = None
        if entry is None:
            entry = self._entries[key] = _Entry(asyncio.ensure_future(self._opened(key)))
        else:
            self._entries.move_to_end(key)
        if holder:
            self._hold(holder, key, entry)
        return entry

    def _stale(self, entry: _Entry[P]) -> bool:
        """Whether an entry's publisher failed to open or has since stopped being usable."""
        opening = entry.opening
        if not opening.done():
            return False
        if opening.cancelled() or opening.exception() is not None:
            return True
        return self._usable is not None and not self._usable(opening.result())

    def _hold(self, holder: str, key: K, entry: _Entry[P]) -> None:
        """Note that `holder` now uses `key`; its previous key's entry, if now held by no one,
        is closed (the destination's configuration changed)."""
        previous = self._held.get(holder)
        self._held[holder] = key
        entry.holders.add(holder)
        if previous is None or previous == key:
            return
        left = self._entries.get(previous)
        if left is None:
            return
        left.holders.discard(holder)
        if not left.holders:
            del self._entries[previous]
            self._release(left)

    async def _opened(self, key: K) -> P:
        publisher = await self._open(key)
        if self._closed:  # close() ran while this one was opening: it would leak
            await self._close(publisher)
            raise DeliveryInfrastructureError(self._closed_message)
        return publisher

    def _trim(self) -> None:
        """Close entries past the bound, and with `idle_seconds` the long unused, that no
        delivery is using (least recently used first)."""
        if self._closed:
            return
        now = asyncio.get_running_loop().time()
        excess = max(len(self._entries) - self._max, 0)
        sweep = self._idle is not None and now - self._last_sweep >= self._idle / 4
        if not excess and not sweep:
            return  # the common case: nothing to look at
        idle = [(k, e) for k, e in self._entries.items() if e.opening.done() and not e.in_use]
        stale: list[tuple[K, _Entry[P]]] = idle[:excess]
        if sweep and self._idle is not None:
            self._last_sweep = now
            stale += [(k, e) for k, e in idle[excess:] if now - e.last_used > self._idle]
        for key, entry in stale:
            del self._entries[key]
            self._release(entry)

    def _release(self, entry: _Entry[P]) -> None:
        """Forget `entry`'s holders and close it once no delivery is using it."""
        for holder in entry.holders:
            if self._held.get(holder) is not None and self._entries.get(self._held[holder]) is None:
                del self._held[holder]
        entry.holders.clear()
        if entry.in_use:
            self._retired.add(entry)  # the last use closes it (see `use`)
        else:
            self._schedule_close(entry)

    def _schedule_close(self, entry: _Entry[P]) -> None:
        if entry.closing:
            return
        entry.closing = True
        closing = asyncio.ensure_future(self._close_entry(entry))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def _close_entry(self, entry: _Entry[P]) -> None:
        try:
            publisher = await entry.opening
        except Exception:
            return  # one that never opened has nothing to close
        with contextlib.suppress(Exception):
            await self._close(publisher)

    async def close(self) -> None:
        self._closed = True
        if self._in_flight and self._drain > 0:
            # Uses still running after the wait fail once their publisher is closed below.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), self._drain)
        entries = [*self._entries.values(), *self._retired]
        self._entries, self._retired = OrderedDict(), set()
        self._held.clear()
        for entry in entries:
            self._schedule_close(entry)
        await asyncio.gather(*self._closing)
