"""Tenants: upsert, get, delete, list, and the JWT and portal URL that act for one (contract.md
§1.6.2–7)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from waypost.api import params, schemas
from waypost.api.context import Context, read_object
from waypost.api.responses import JSON
from waypost.core import coerce, id_rule
from waypost.core.models import Tenant
from waypost.core.paging import Page, PageRequest
from waypost.core.timefmt import now_ms
from waypost.errors import NotFoundError


async def _tenant_body(ctx: Context, tenant: Tenant) -> dict[str, Any]:
    destinations = await ctx.services.tenants.list_destinations(tenant.id)
    return schemas.tenant(tenant, destinations)


async def upsert(request: Request, ctx: Context) -> JSON:
    config = ctx.services.config
    body = await read_object(
        request, config.max_request_body_bytes, optional=True, max_depth=config.max_json_depth
    )
    metadata = coerce.to_str_map(body.get("metadata"), "metadata")
    ctx.services.rules.metadata_limits.check("metadata", metadata)
    tenant_id = request.path_params["tenant_id"]
    if (
        not id_rule.addressable(tenant_id)
        and await ctx.services.tenants.get_tenant(tenant_id) is None
    ):
        id_rule.check("tenant_id", tenant_id)  # new tenants only: stored ones stay reachable
    tenant, created = await ctx.services.tenants.upsert_tenant(tenant_id, metadata, now_ms())
    return JSON(await _tenant_body(ctx, tenant), status_code=201 if created else 200)


async def get(request: Request, ctx: Context) -> JSON:
    return JSON(await _tenant_body(ctx, ctx.path_tenant))


async def delete(request: Request, ctx: Context) -> JSON:
    if not await ctx.services.tenants.delete_tenant(ctx.path_tenant.id, now_ms()):
        raise NotFoundError("tenant not found")
    return JSON({"success": True})


async def list_(request: Request, ctx: Context) -> JSON:
    if not ctx.caller.admin:
        # A tenant sees itself, whatever it asks for.
        own = await ctx.services.tenants.get_tenant(ctx.caller.tenant_id or "")
        models = [await _tenant_body(ctx, own)] if own else []
        request_ = PageRequest(limit=20, dir="desc")
        return JSON(
            {
                "models": models,
                "pagination": schemas.pagination(Page(models), request_, "created_at"),
                "count": len(models),
            }
        )
    page_request = params.tenant_page(request.query_params)
    page = await ctx.services.tenants.list_tenants(
        params.array(request.query_params, "id"), page_request
    )
    return JSON(
        {
            "models": [await _tenant_body(ctx, t) for t in page.items],
            "pagination": schemas.pagination(page, page_request, "created_at"),
            "count": page.total or 0,
        }
    )


async def token(request: Request, ctx: Context) -> JSON:
    tenant_id = ctx.path_tenant.id
    return JSON({"token": ctx.services.auth.issue(tenant_id), "tenant_id": tenant_id})


async def portal(request: Request, ctx: Context) -> JSON:
    tenant_id = ctx.path_tenant.id
    # A configured public address wins: the admin call may come through a private hostname
    # that the tenant's browser cannot reach.
    base = ctx.services.config.portal_public_url.rstrip("/")
    if not base:
        host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
        base = f"{request.url.scheme}://{host}"
    url = f"{base}?token={ctx.services.auth.issue(tenant_id)}"
    theme = request.query_params.get("theme")
    if theme in ("light", "dark"):
        url += f"&theme={theme}"
    return JSON({"redirect_url": url, "tenant_id": tenant_id})
