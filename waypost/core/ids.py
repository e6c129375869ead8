"""Generated ids, as `IDGEN_TYPE` and the `IDGEN_*_PREFIX` settings ask."""

from __future__ import annotations

import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class _RandomPool:
    """Bytes from the OS's CSPRNG, fetched 4 KiB at a time.

    One `getrandom` per 256 ids instead of one per id: each call releases the GIL, and under
    load the event loop then waits for another thread (the store's writer) to give it back, which
    cost more than the system call itself. Reset in a forked child so that no two processes ever
    hand out the same bytes.
    """

    SIZE = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self._lock = threading.Lock()
        self._buffer, self._offset = b"", 0

    def take(self, n: int) -> bytes:
        with self._lock:
            if self._offset + n > len(self._buffer):
                self._buffer, self._offset = os.urandom(self.SIZE), 0
            start = self._offset
            self._offset = start + n
            return self._buffer[start : start + n]


_POOL = _RandomPool()


def _uuid7() -> str:
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(_POOL.take(10), "big")
    value = (
        (ms << 80)
        | (0x7 << 76)
        | ((rand >> 62) & 0xFFF) << 64
        | (0b10 << 62)
        | (rand & ((1 << 62) - 1))
    )
    return str(uuid.UUID(int=value))


def _uuid4() -> str:
    # Same bits as uuid.uuid4(), formatted directly: uuid4() builds a UUID object per call, which
    # showed up at ~4 % of the server's CPU under load (an id per event and per attempt).
    h = _POOL.take(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


_VARIANT = "89ab"


def _nanoid() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(26))


_KINDS: dict[str, Callable[[], str]] = {
    "uuidv4": _uuid4,
    "uuidv7": _uuid7,
    "nanoid": _nanoid,
}


@dataclass(frozen=True, slots=True)
class IdGenerator:
    kind: str = "uuidv4"
    event_prefix: str = ""
    destination_prefix: str = ""
    attempt_prefix: str = ""

    def _new(self) -> str:
        return _KINDS[self.kind]()

    def event(self) -> str:
        return self.event_prefix + self._new()

    def destination(self) -> str:
        return self.destination_prefix + self._new()

    def attempt(self) -> str:
        return self.attempt_prefix + self._new()
