"""A tenant's destinations (contract.md §1.6.8–15)."""

from __future__ import annotations

from dataclasses import replace

from starlette.requests import Request

from waypost.api import params, schemas
from waypost.api.context import Context, read_object
from waypost.api.handlers import logs
from waypost.api.responses import JSON
from waypost.config import Config
from waypost.core import topics
from waypost.core.models import Destination
from waypost.core.timefmt import now_ms
from waypost.destinations import editing
from waypost.errors import NotFoundError


def _json(ctx: Context, destination: Destination) -> JSON:
    return JSON(schemas.destination(destination, ctx.services.registry, now_ms()))


async def _current(request: Request, ctx: Context) -> Destination:
    found = await ctx.services.tenants.get_destination(
        ctx.path_tenant.id, request.path_params["destination_id"]
    )
    if found is None:
        raise NotFoundError("destination not found")
    return found


async def list_(request: Request, ctx: Context) -> JSON:
    types = params.array(request.query_params, "type")
    wanted = params.array(request.query_params, "topics")
    found = await ctx.services.tenants.list_destinations(ctx.path_tenant.id)
    shown = [
        d
        for d in found
        if (not types or d.type in types)
        and (not wanted or topics.filter_destinations_by_topics(d.topics, wanted))
    ]
    now = now_ms()
    return JSON([schemas.destination(d, ctx.services.registry, now) for d in shown])


async def create(request: Request, ctx: Context) -> JSON:
    services = ctx.services
    body = await read_object(
        request, _body_limit(services.config), max_depth=services.config.max_json_depth
    )
    destination = editing.create(
        body, ctx.path_tenant.id, services.rules, admin=ctx.caller.admin, now=now_ms()
    )
    destination = await editing.verified(destination, None, services.rules)
    await services.tenants.create_destination(
        destination, services.config.max_destinations_per_tenant
    )
    response = _json(ctx, destination)
    response.status_code = 201
    return response


async def get(request: Request, ctx: Context) -> JSON:
    return _json(ctx, await _current(request, ctx))


async def update(request: Request, ctx: Context) -> JSON:
    config = ctx.services.config
    body = await read_object(request, _body_limit(config), max_depth=config.max_json_depth)
    current = await _current(request, ctx)
    updated = editing.update(
        body, current, ctx.services.rules, admin=ctx.caller.admin, now=now_ms()
    )
    updated = await editing.verified(updated, current, ctx.services.rules)
    if not await ctx.services.tenants.update_destination(updated):
        raise NotFoundError("destination not found")
    return _json(ctx, updated)


async def delete(request: Request, ctx: Context) -> JSON:
    destination_id = request.path_params["destination_id"]
    if not await ctx.services.tenants.delete_destination(
        ctx.path_tenant.id, destination_id, now_ms()
    ):
        raise NotFoundError("destination not found")
    return JSON({"success": True})


async def _set_disabled(request: Request, ctx: Context, disabled: bool) -> JSON:
    current = await _current(request, ctx)
    if current.enabled == disabled:  # Outpost leaves updated_at alone here
        current = replace(current, disabled_at=now_ms() if disabled else None)
        await ctx.services.tenants.update_destination(current)
    return _json(ctx, current)


async def enable(request: Request, ctx: Context) -> JSON:
    return await _set_disabled(request, ctx, disabled=False)


async def disable(request: Request, ctx: Context) -> JSON:
    return await _set_disabled(request, ctx, disabled=True)


async def list_attempts(request: Request, ctx: Context) -> JSON:
    # An unknown or deleted destination is a 404 (SDK 1.7.0); a deleted one's attempts stay
    # listed by GET /attempts?destination_id=.
    await _current(request, ctx)
    return await logs.attempts_page(
        request,
        ctx,
        tenant_ids=(ctx.path_tenant.id,),
        destination_ids=(request.path_params["destination_id"],),
    )


async def get_attempt(request: Request, ctx: Context) -> JSON:
    await _current(request, ctx)
    return await logs.one_attempt(
        request,
        ctx,
        tenant_id=ctx.path_tenant.id,
        destination_id=request.path_params["destination_id"],
    )


def _body_limit(config: Config) -> int:
    # A destination is small (its topics, filter and metadata are bounded), so a body past this
    # is refused before it is read: decoding a megabyte holds the loop for tens of milliseconds.
    return min(config.max_request_body_bytes, config.max_destination_body_bytes)
