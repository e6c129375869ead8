"""Health, topics and destination types (§1.6.1, §1.6.20–21)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.requests import Request

from outpost.api.context import Context, Services
from outpost.api.responses import JSON
from outpost.core.timefmt import format_ms, now_ms
from outpost.errors import NotFoundError, StoreError

HEALTH_TIMEOUT_SECONDS = 1.0


async def health(services: Services) -> JSON:
    workers = {"http-server": True, **services.health()}
    names = list(services.dependencies)
    reachable = await asyncio.gather(*(_reachable(services.dependencies[n]) for n in names))
    workers.update(zip(names, reachable, strict=True))
    healthy = all(workers.values())
    body = {
        "status": "healthy" if healthy else "failed",
        "timestamp": format_ms(now_ms()),
        "workers": {
            name: {"status": "healthy" if ok else "failed"} for name, ok in workers.items()
        },
    }
    return JSON(body, status_code=200 if healthy else 503)


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
