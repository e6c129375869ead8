"""Health, topics and destination types (contract.md §1.6.1, §1.6.20–21)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.requests import Request

from waypost import __version__
from waypost.api.context import Context, Services
from waypost.api.responses import JSON
from waypost.core.timefmt import format_ms, now_ms
from waypost.errors import NotFoundError, StoreError
from waypost.health import BEHIND_MS, DEGRADABLE, Status, overall

HEALTH_TIMEOUT_SECONDS = 1.0


async def health(services: Services) -> JSON:
    now = now_ms()
    workers = {"http-server": True, **services.health()}
    names = list(services.dependencies)
    reachable = await asyncio.gather(*(_reachable(services.dependencies[n]) for n in names))
    workers.update(zip(names, reachable, strict=True))
    statuses: dict[str, Status] = {}
    dated: dict[str, int] = {}
    for name, ok in workers.items():
        statuses[name] = "healthy" if ok else "degraded" if name in DEGRADABLE else "failed"
    if statuses.get("deliverymq-consumer") == "healthy" and services.earliest_due is not None:
        due = await _earliest_due(services.earliest_due)
        if due is not None and now - due > BEHIND_MS:
            statuses["deliverymq-consumer"] = "degraded"
            dated["deliverymq-consumer"] = due
    book = services.health_book
    status = overall(list(statuses.values()))
    body = {
        "status": status,
        "timestamp": format_ms(now),
        "workers": {
            name: book.entry(name, worker, now, dated.get(name))
            for name, worker in statuses.items()
        },
        # Ours, not Outpost's (waypost/api/openapi.yaml, Health.version): SDK 1.7.0's
        # model ignores fields it does not know, so its health check reads the answer unchanged.
        "version": __version__,
    }
    return JSON(body, status_code=503 if status == "failed" else 200)


async def _earliest_due(check: Callable[[], Awaitable[int | None]]) -> int | None:
    """Bounded like the reachability checks; unknown (None) when the store does not answer."""
    try:
        return await asyncio.wait_for(check(), HEALTH_TIMEOUT_SECONDS)
    except (StoreError, TimeoutError):
        return None


async def _reachable(check: Callable[[], Awaitable[None]]) -> bool:
    """Bounded, so that /healthz answers even while a dependency hangs."""
    try:
        await asyncio.wait_for(check(), HEALTH_TIMEOUT_SECONDS)
    except (StoreError, TimeoutError):
        return False
    return True


async def topics(request: Request, ctx: Context) -> JSON:
    return JSON(list(ctx.services.config.topics))


async def destination_types(request: Request, ctx: Context) -> JSON:
    return JSON(ctx.services.registry.describe())


async def destination_type(request: Request, ctx: Context) -> JSON:
    provider = ctx.services.registry.listed(request.path_params["type"])
    if provider is None:
        raise NotFoundError("destination type not found")
    return JSON(provider.describe())
