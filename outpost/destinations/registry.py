"""Destination type → Provider. Adding a type is a folder and one line in `bootstrap`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from outpost.destinations.provider import Provider
from outpost.errors import InputError


class Registry:
    def __init__(self, providers: Iterable[Provider]) -> None:
        self._providers = {p.type: p for p in providers}  # insertion order = listing order

    def find(self, type_: str) -> Provider | None:
        return self._providers.get(type_)

    def get(self, type_: str) -> Provider:
        provider = self._providers.get(type_)
        if provider is None:
            raise InputError(f"no provider registered for destination type: {type_}", status=422)
        return provider

    def describe(self) -> list[dict[str, Any]]:
        return [p.describe() for p in self._providers.values()]

    async def close(self) -> None:
        await asyncio.gather(*(p.close() for p in self._providers.values()))
