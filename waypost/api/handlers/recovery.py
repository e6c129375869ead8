"""The recovery extension: undelivered events, recovery jobs, and test events.

Not Outpost operations: they are documented in waypost/api/openapi.yaml. A tenant's JWT
reaches its own tenant's paths only (api/app.py), so every read here is the path tenant's.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from waypost.api import params, schemas
from waypost.api.context import Context, read_object
from waypost.api.responses import JSON
from waypost.core import timefmt
from waypost.core.recovery import SELECTIONS, JobSpec, Selection
from waypost.core.timefmt import now_ms
from waypost.errors import InputError, ValidationError
from waypost.recovery import Filter, Recovery

MAX_KEY_LENGTH = 255


def _recovery(ctx: Context) -> Recovery:
    if ctx.services.recovery is None:
        raise InputError("recovery is not available on this server", status=404)
    return ctx.services.recovery


def _selection(value: Any, where: str) -> Selection:
    if value is None or value == "":
        return "all"
    if value not in SELECTIONS:
        raise ValidationError({where: "must be one of: failed, never, all"})
    selection: Selection = value
    return selection


async def undelivered(request: Request, ctx: Context) -> JSON:
    q = request.query_params
    page_request = params.log_page(q)
    if page_request.prev is not None:
        raise InputError("this listing pages forward only: use 'next'")
    wanted = Filter(
        destination_id=q.get("destination_id") or None,
        topics=params.array(q, "topic"),
        time=params.time_range(q),
        status=_selection(q.get("status"), "query.status"),
    )
    page = await _recovery(ctx).undelivered(ctx.path_tenant.id, wanted, page_request)
    return JSON(
        {
            "models": [schemas.undelivered(item) for item in page.items],
            "pagination": {
                "order_by": "time",
                "dir": page_request.dir,
                "limit": page_request.limit,
                "next": page.next,
                "prev": None,
            },
        }
    )


def _time(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError({name: "must be an RFC 3339 time"})
    try:
        return timefmt.parse(value, allow_date=True)
    except ValueError:
        raise ValidationError({name: "must be an RFC 3339 time"}) from None


def _spec(body: dict[str, Any], now: int) -> JobSpec:
    destination_id = body.get("destination_id")
    if destination_id is not None and (not isinstance(destination_id, str) or not destination_id):
        raise ValidationError({"destination_id": "must be a destination id"})
    topics = body.get("topics") or []
    if not isinstance(topics, list) or not all(isinstance(t, str) and t for t in topics):
        raise ValidationError({"topics": "must be a list of topics"})
    since, until = _time(body, "since"), _time(body, "until")
    # A job ends: it covers events up to its creation at the latest.
    until = now if until is None else min(until, now)
    if since is not None and since >= until:
        raise ValidationError({"since": "must be before until"})
    return JobSpec(
        destination_id, tuple(topics), since, until, _selection(body.get("status"), "status")
    )


async def create(request: Request, ctx: Context) -> JSON:
    config = ctx.services.config
    body = await read_object(
        request, config.max_request_body_bytes, optional=True, max_depth=config.max_json_depth
    )
    spec = _spec(body, now_ms())
    key = request.headers.get("idempotency-key") or body.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH):
        raise ValidationError({"idempotency_key": f"must be 1–{MAX_KEY_LENGTH} characters"})
    recovery = _recovery(ctx)
    tenant_id = ctx.path_tenant.id
    if body.get("dry_run") is True:
        matched = await recovery.count(tenant_id, spec)
        return JSON({"dry_run": True, "matched": matched})
    job, created = await recovery.create(tenant_id, spec, key)
    return JSON(schemas.recovery(job), status_code=201 if created else 200)


async def list_(request: Request, ctx: Context) -> JSON:
    page_request = params.tenant_page(request.query_params)
    page = await _recovery(ctx).list(ctx.path_tenant.id, page_request)
    return JSON(
        {
            "models": [schemas.recovery(job) for job in page.items],
            "pagination": schemas.pagination(page, page_request, "created_at"),
        }
    )


async def get(request: Request, ctx: Context) -> JSON:
    job = await _recovery(ctx).get(ctx.path_tenant.id, request.path_params["recovery_id"])
    return JSON(schemas.recovery(job))


async def cancel(request: Request, ctx: Context) -> JSON:
    job = await _recovery(ctx).cancel(ctx.path_tenant.id, request.path_params["recovery_id"])
    return JSON(schemas.recovery(job))


async def send_test(request: Request, ctx: Context) -> JSON:
    config = ctx.services.config
    body = await read_object(
        request, config.max_request_body_bytes, optional=True, max_depth=config.max_json_depth
    )
    topic = body.get("topic")
    if topic is not None and not isinstance(topic, str):
        raise ValidationError({"topic": "must be a string"})
    data = body.get("data")
    if data is not None and not isinstance(data, dict):
        raise ValidationError({"data": "must be a JSON object"})
    if topic:
        ctx.services.publisher.check_topic(topic)
    destination_id = request.path_params["destination_id"]
    event = await ctx.services.publisher.send_test(
        ctx.path_tenant.id, destination_id, topic or None, data
    )
    return JSON(
        {
            "event_id": event.id,
            "destination_id": destination_id,
            "topic": event.topic,
            "test": True,
        },
        status_code=202,
    )
