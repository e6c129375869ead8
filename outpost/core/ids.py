"""Generated ids, as `IDGEN_TYPE` and the `IDGEN_*_PREFIX` settings ask."""

from __future__ import annotations

import os
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _uuid7() -> str:
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
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
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


_VARIANT = "89ab"


def _nanoid() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(26))


_KINDS: dict[str, Callable[[], str]] = {
    "uuidv4": _uuid4,
    "uuidv7": _uuid7,
    "nanoid": _nanoid,
}

ID_TYPES = tuple(_KINDS)


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
