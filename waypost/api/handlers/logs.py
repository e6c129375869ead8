"""Events and attempts (contract.md §1.6.14–16): filtered, cursor-paged, with `include=`
expansions."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from waypost.api import params, schemas
from waypost.api.context import Context
from waypost.api.responses import JSON
from waypost.core.models import Attempt
from waypost.core.paging import AttemptQuery, EventQuery
from waypost.core.timefmt import now_ms
from waypost.errors import NotFoundError


async def list_events(request: Request, ctx: Context) -> JSON:
    q = request.query_params
    page_request = params.log_page(q)
    query = EventQuery(
        tenant_ids=ctx.tenant_filter(params.array(q, "tenant_id")),
        ids=params.array(q, "id"),
        destination_ids=params.array(q, "destination_id"),
        topics=params.array(q, "topic"),
        time=params.time_range(q),
    )
    page = await ctx.services.log.list_events(query, page_request)
    return JSON(
        {
            "models": [schemas.event(e) for e in page.items],
            "pagination": schemas.pagination(page, page_request, "time"),
        }
    )


async def get_event(request: Request, ctx: Context) -> JSON:
    tenant = ctx.scope() if not ctx.caller.admin else request.query_params.get("tenant_id")
    found = await ctx.services.log.get_event(request.path_params["event_id"], tenant)
    if found is None:
        raise NotFoundError("event not found")
    return JSON(schemas.event(found))


async def list_attempts(request: Request, ctx: Context) -> JSON:
    return await attempts_page(
        request, ctx, tenant_ids=ctx.tenant_filter(params.array(request.query_params, "tenant_id"))
    )


async def attempts_page(
    request: Request,
    ctx: Context,
    *,
    tenant_ids: tuple[str, ...],
    destination_ids: tuple[str, ...] | None = None,
) -> JSON:
    q = request.query_params
    page_request = params.log_page(q)
    query = AttemptQuery(
        tenant_ids=tenant_ids,
        event_ids=params.array(q, "event_id"),
        destination_ids=destination_ids
        if destination_ids is not None
        else params.array(q, "destination_id"),
        destination_types=params.array(q, "destination_type"),
        topics=params.array(q, "topic"),
        status=q.get("status") or None,
        time=params.time_range(q),
    )
    page = await ctx.services.log.list_attempts(query, page_request)
    models = await _expand(ctx, page.items, params.includes(q))
    return JSON({"models": models, "pagination": schemas.pagination(page, page_request, "time")})


async def get_attempt(request: Request, ctx: Context) -> JSON:
    tenant = ctx.scope() if not ctx.caller.admin else request.query_params.get("tenant_id")
    return await one_attempt(request, ctx, tenant_id=tenant)


async def one_attempt(
    request: Request, ctx: Context, *, tenant_id: str | None, destination_id: str | None = None
) -> JSON:
    found = await ctx.services.log.get_attempt(request.path_params["attempt_id"], tenant_id)
    if found is None or (destination_id is not None and found.destination_id != destination_id):
        raise NotFoundError("attempt not found")
    models = await _expand(ctx, [found], params.includes(request.query_params))
    return JSON(models[0])


async def _expand(
    ctx: Context, attempts: list[Attempt], include: frozenset[str]
) -> list[dict[str, Any]]:
    with_data = "event.data" in include
    events = (  # an attempt's event is its tenant's event of that id, never another tenant's
        await ctx.services.log.get_events(list({(a.tenant_id, a.event_id) for a in attempts}))
        if with_data or "event" in include
        else {}
    )
    destinations: dict[tuple[str, str], dict[str, Any]] = {}
    if "destination" in include:
        now = now_ms()
        for tenant_id in {a.tenant_id for a in attempts}:
            for d in await ctx.services.tenants.list_destinations(tenant_id):
                destinations[(tenant_id, d.id)] = schemas.attempt_destination(
                    d, ctx.services.registry, now
                )
    pending = await _pending_retries(ctx, attempts)
    models = []
    for a in attempts:
        event = events.get((a.tenant_id, a.event_id))
        models.append(
            schemas.attempt(
                a,
                response_data="response_data" in include,
                event_body=schemas.event(event, data=with_data, summary=True) if event else None,
                destination_body=destinations.get((a.tenant_id, a.destination_id)),
                next_attempt_at=pending.get(a.id),
            )
        )
    return models


async def _pending_retries(ctx: Context, attempts: list[Attempt]) -> dict[str, int]:
    """When the automatic retry that each failed attempt scheduled is due, by attempt id, while
    it waits in the queue: the pending retry of its (tenant, event, destination) that makes the
    attempt after it. Read by triples of the attempts' own tenants, never another's."""
    failed = [a for a in attempts if a.status != "success"]
    if not failed:
        return {}
    found = await ctx.services.log.pending_retries(
        list({(a.tenant_id, a.event_id, a.destination_id) for a in failed})
    )
    due: dict[str, int] = {}
    for a in failed:
        retry = found.get((a.tenant_id, a.event_id, a.destination_id))
        if retry is not None and retry.attempt_number == a.attempt_number + 1:
            due[a.id] = retry.due
    return due
