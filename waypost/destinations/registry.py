"""Destination type → Provider. Adding a type is a folder and one line in `catalog.TYPES`.

A type whose optional dependencies are not installed (waypost/extras.py) is `unavailable`: it is
still known (its stored destinations are listed and shown as ever), listed by
`/destination-types` with `"available": false` and the reason, refused at create and update with
a 422 naming the extra, and its deliveries fail with that reason (its provider is never asked to
publish, so its SDK is never imported).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from waypost import extras
from waypost.core.models import DeliveryResult, Destination, Event
from waypost.destinations.provider import Display, Provider
from waypost.errors import InputError

log = logging.getLogger(__name__)


class Registry:
    def __init__(
        self,
        providers: Iterable[Provider],
        *,
        enabled: Iterable[str] | None = None,
        unavailable: Mapping[str, str] | None = None,
    ) -> None:
        """`enabled`: the types tenants may create and see listed (None: all). Every provider
        still delivers, so destinations stored before a type was disabled keep working.
        `unavailable`: type → the extra it needs that is not installed."""
        self._unavailable = {
            type_: extras.refusal(f"destination type '{type_}'", extra)
            for type_, extra in (unavailable or {}).items()
        }
        # insertion order = listing order
        self._providers: dict[str, Provider] = {
            p.type: Unavailable(p, self._unavailable[p.type]) if p.type in self._unavailable else p
            for p in providers
        }
        self._enabled = frozenset(self._providers if enabled is None else enabled)

    def find(self, type_: str) -> Provider | None:
        return self._providers.get(type_)

    def get(self, type_: str) -> Provider:
        provider = self._providers.get(type_)
        if provider is None:
            raise InputError(f"no provider registered for destination type: {type_}", status=422)
        return provider

    def creatable(self, type_: str) -> Provider:
        """The provider of a type tenants may create; 422 as for an unknown type otherwise, and
        422 naming the extra for an unavailable type."""
        if type_ not in self._enabled:
            raise InputError(f"no provider registered for destination type: {type_}", status=422)
        return self.editable(type_)

    def editable(self, type_: str) -> Provider:
        """The provider that checks an update of a destination of `type_`: 422 naming the extra
        when the type is unavailable (nothing could check, or deliver, what is sent)."""
        reason = self._unavailable.get(type_)
        if reason is not None:
            raise InputError(reason, status=422)
        return self.get(type_)

    def unavailable(self, type_: str) -> str | None:
        """Why a type cannot deliver here (its extra is missing); None when it can."""
        return self._unavailable.get(type_)

    def listed(self, type_: str) -> Provider | None:
        """The provider `/destination-types/{type}` shows: an enabled type's."""
        return self._providers.get(type_) if type_ in self._enabled else None

    def types(self) -> list[str]:
        """Every type this server delivers to (enabled for creation or not)."""
        return list(self._providers)

    def describe(self) -> list[dict[str, Any]]:
        return [p.describe() for t, p in self._providers.items() if t in self._enabled]

    async def close(self) -> None:
        await asyncio.gather(*(p.close() for p in self._providers.values()))


class Unavailable:
    """A type whose extra is missing: its schema and display as ever (they need no SDK), its
    deliveries failed attempts that say which extra to install."""

    def __init__(self, inner: Provider, reason: str) -> None:
        self.type = inner.type
        self._inner = inner
        self.reason = reason
        self._warned = False

    def describe(self) -> dict[str, Any]:
        """The type's entry, with `"available": false` and the reason (waypost/api/openapi.yaml)."""
        return {**self._inner.describe(), "available": False, "unavailable_reason": self.reason}

    def validate(self, destination: Destination) -> list[str]:
        return self._inner.validate(destination)

    def preprocess(
        self, destination: Destination, original: Destination | None, *, admin: bool, now: int
    ) -> Destination:
        return self._inner.preprocess(destination, original, admin=admin, now=now)

    def display(self, destination: Destination, now: int) -> Display:
        return self._inner.display(destination, now)

    async def publish(self, event: Event, destination: Destination) -> DeliveryResult:
        if not self._warned:  # once per process: the operator's cue, not a line per attempt
            self._warned = True
            log.warning("%s; deliveries to its destinations fail until then", self.reason)
        return DeliveryResult("failed", "ERR", {"error": self.reason})

    async def close(self) -> None:
        await self._inner.close()
