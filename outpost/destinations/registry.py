"""Destination type → Provider. Adding a type is a folder and one line in `catalog.TYPES`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from outpost.destinations.provider import Provider
from outpost.errors import InputError


class Registry:
    def __init__(
        self, providers: Iterable[Provider], *, enabled: Iterable[str] | None = None
    ) -> None:
        """`enabled`: the types tenants may create and see listed (None: all). Every provider
        still delivers, so destinations stored before a type was disabled keep working."""
        self._providers = {p.type: p for p in providers}  # insertion order = listing order
        self._enabled = frozenset(self._providers if enabled is None else enabled)

    def find(self, type_: str) -> Provider | None:
        return self._providers.get(type_)

    def get(self, type_: str) -> Provider:
        provider = self._providers.get(type_)
        if provider is None:
            raise InputError(f"no provider registered for destination type: {type_}", status=422)
        return provider

    def creatable(self, type_: str) -> Provider:
        """The provider of a type tenants may create; 422 as for an unknown type otherwise."""
        if type_ not in self._enabled:
            raise InputError(f"no provider registered for destination type: {type_}", status=422)
        return self.get(type_)

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
