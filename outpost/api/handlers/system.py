"""Health, topics and destination types (§1.6.1, §1.6.20–21)."""

from __future__ import annotations

import asyncio
import inspect

from starlette.requests import Request

from outpost.api.context import Context, Services
from outpost.api.responses import JSON
from outpost.core.timefmt import format_ms, now_ms
from outpost.errors import NotFoundError, StoreError

HEALTH_TIMEOUT_SECONDS = 1.0


async def health(services: Services) -> JSON:
    workers = {"http-server": True, **services.health()}
    if services.ping is not None:
        workers["database"] = await _reachable(services)
    healthy = all(workers.values())
    body = {
        "status": "healthy" if healthy else "failed",
        "timestamp": format_ms(now_ms()),
        "workers": {
            name: {"status": "healthy" if ok else "failed"} for name, ok in workers.items()
        },
    }
    return JSON(body, status_code=200 if healthy else 503)


async def _reachable(services: Services) -> bool:
    """A cheap round trip, bounded so that /healthz answers even while the database hangs."""
    assert services.ping is not None
    try:
        result = services.ping()
        if inspect.isawaitable(result):
            await asyncio.wait_for(result, HEALTH_TIMEOUT_SECONDS)
    except (StoreError, TimeoutError):
        return False
    return True


async def topics(request: Request, ctx: Context) -> JSON:
    return JSON(list(ctx.services.config.topics))


async def destination_types(request: Request, ctx: Context) -> JSON:
    return JSON(ctx.services.registry.describe())


async def destination_type(request: Request, ctx: Context) -> JSON:
    provider = ctx.services.registry.find(request.path_params["type"])
    if provider is None:
        raise NotFoundError("destination type not found")
    return JSON(provider.describe())
