"""Everything a handler needs: the services it calls and who is calling."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from starlette.requests import Request

from waypost.api.auth import Authenticator, Caller
from waypost.api.limits import refuse_invalid_utf8, refuse_nul_in_body
from waypost.api.ratelimit import RateLimiter
from waypost.config import Config
from waypost.core.limits import DEFAULT_MAX_JSON_DEPTH, json_too_deep
from waypost.core.models import Tenant
from waypost.destinations.editing import Rules
from waypost.destinations.registry import Registry
from waypost.errors import ForbiddenError, InputError
from waypost.health import HealthBook
from waypost.publishing import Publisher
from waypost.recovery import Recovery
from waypost.storage.protocols import LogRetention, LogStore, MetricsStore, TenantStore


@dataclass
class Services:
    config: Config
    tenants: TenantStore
    log: LogStore
    publisher: Publisher
    registry: Registry
    auth: Authenticator
    rules: Rules
    health: Callable[[], dict[str, bool]] = field(default=lambda: {})
    # Dependencies /healthz checks with one cheap round trip each: name → check (raises if down).
    dependencies: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)
    metrics: MetricsStore | None = None  # the metrics API's aggregates (contract.md §1.6.17)
    retention: LogRetention | None = None  # erasing a deleted tenant's logs, when configured
    rate_limiter: RateLimiter | None = None  # API_RATE_LIMIT, when set
    # When the earliest queued task is (or was) due: /healthz reports delivery falling behind.
    earliest_due: Callable[[], Awaitable[int | None]] | None = None
    health_book: HealthBook = field(default_factory=HealthBook)
    recovery: Recovery | None = None  # the recovery extension (undelivered events, jobs)


@dataclass(frozen=True, slots=True)
class Context:
    services: Services
    caller: Caller
    tenant: Tenant | None = None  # the path's {tenant_id}, resolved

    @property
    def path_tenant(self) -> Tenant:
        assert self.tenant is not None, "route declared without a tenant"
        return self.tenant

    def tenant_filter(self, requested: tuple[str, ...]) -> tuple[str, ...]:
        """The tenants a list may show: a JWT sees its own only, whatever it asks for."""
        if self.caller.admin:
            return requested
        own = self.caller.tenant_id or ""
        if requested and (len(requested) > 1 or requested[0] != own):
            raise ForbiddenError("tenant_id query parameter does not match authenticated tenant")
        return (own,)

    def scope(self) -> str | None:
        """The tenant single-resource reads are confined to (None: the admin sees all)."""
        return None if self.caller.admin else self.caller.tenant_id


_JSON_TYPES = ("application/json", "application/merge-patch+json")


async def read_body(
    request: Request, limit: int, *, max_depth: int = DEFAULT_MAX_JSON_DEPTH
) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise InputError(f"request body exceeds {limit} bytes", status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InputError(f"request body exceeds {limit} bytes", status=413)
        chunks.append(chunk)
    body = b"".join(chunks)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if body and media and media not in _JSON_TYPES and not media.endswith("+json"):
        raise InputError("content type must be application/json", status=415)
    refuse_nul_in_body(body)
    refuse_invalid_utf8(body)
    if json_too_deep(body, max_depth):
        raise InputError(
            "invalid JSON", [f"JSON must not nest more than {max_depth} levels"], status=422
        )
    return body


async def read_object(
    request: Request,
    limit: int,
    *,
    optional: bool = False,
    max_depth: int = DEFAULT_MAX_JSON_DEPTH,
) -> dict[str, Any]:
    body = await read_body(request, limit, max_depth=max_depth)
    if optional and not body.strip():
        return {}
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise InputError("invalid JSON", status=422) from None
    if not isinstance(value, dict):
        raise InputError("invalid JSON", status=422)
    return value
