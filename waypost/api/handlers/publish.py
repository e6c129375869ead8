"""`POST /publish` and `POST /retry` (contract.md §1.6.18–19, §2)."""

from __future__ import annotations

import msgspec
from starlette.requests import Request

from waypost.api.context import Context, read_body, read_object
from waypost.api.responses import JSON
from waypost.core import id_rule, timefmt
from waypost.core.models import Event
from waypost.errors import InputError, ValidationError


class PublishBody(msgspec.Struct):
    tenant_id: str = ""
    data: msgspec.Raw = msgspec.Raw()  # raw so that key order and number literals survive
    id: str | None = None
    topic: str | None = None
    destination_id: str | None = None
    eligible_for_retry: bool | None = None
    time: str | None = None
    metadata: dict[str, str] | None = None


_decoder = msgspec.json.Decoder(PublishBody)


def parse_event(body: bytes, now: int) -> Event:
    try:
        request = _decoder.decode(body)
    except msgspec.DecodeError:  # includes wrong types, e.g. non-string metadata values
        raise InputError("invalid JSON", status=422) from None
    missing = [
        f"{name} is required" for name in ("tenant_id", "data") if not getattr(request, name)
    ]
    if missing:
        raise ValidationError(missing)
    if request.id:
        id_rule.check("id", request.id)
    data = bytes(request.data)
    if not data.lstrip().startswith(b"{"):
        raise ValidationError(["data must be a valid JSON object"])
    try:
        time = timefmt.parse(request.time) if request.time else now
    except ValueError as exc:
        raise InputError(f"invalid JSON: {exc}", status=422) from None
    return Event(
        id=request.id or "",
        tenant_id=request.tenant_id,
        topic=request.topic or "",
        time=time,
        data=msgspec.json.format(data, indent=-1),
        eligible_for_retry=True
        if request.eligible_for_retry is None
        else request.eligible_for_retry,
        metadata=request.metadata or {},
        destination_id=request.destination_id or "",
    )


async def publish(request: Request, ctx: Context) -> JSON:
    config = ctx.services.config
    body = await read_body(request, config.max_request_body_bytes, max_depth=config.max_json_depth)
    event = parse_event(body, timefmt.now_ms())
    published = await ctx.services.publisher.publish(event)
    return JSON(
        {
            "id": published.id,
            "duplicate": published.duplicate,
            "destination_ids": published.destination_ids,
        },
        status_code=202,
    )


async def retry(request: Request, ctx: Context) -> JSON:
    config = ctx.services.config
    body = await read_object(
        request, config.max_request_body_bytes, max_depth=config.max_json_depth
    )
    missing = [f"{n} is required" for n in ("event_id", "destination_id") if not body.get(n)]
    if missing:
        raise ValidationError(missing)
    event_id, destination_id = body["event_id"], body["destination_id"]
    if not isinstance(event_id, str) or not isinstance(destination_id, str):
        raise InputError("invalid JSON", status=422)
    # Event ids are per tenant: the admin names the tenant as on GET /events/{id} (a query
    # parameter; the body is Outpost's RetryRequest), needed only when several tenants use the id.
    tenant = ctx.scope() if not ctx.caller.admin else request.query_params.get("tenant_id")
    await ctx.services.publisher.retry(event_id, destination_id, tenant)
    return JSON({"success": True}, status_code=202)
