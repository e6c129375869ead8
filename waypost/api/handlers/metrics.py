"""`GET /metrics/events` and `GET /metrics/attempts` (contract.md §1.6.17): aggregates over the
log."""

from __future__ import annotations

import re
import time
from dataclasses import replace

from starlette.datastructures import QueryParams
from starlette.requests import Request

from waypost.api import params
from waypost.api.context import Context
from waypost.api.responses import JSON
from waypost.core.metrics import Kind, MetricsQuery, answer, build_query
from waypost.errors import ForbiddenError, StoreError

# filters[<key>], filters[<key>][] and filters[<key>][<index>]
_FILTER = re.compile(r"^filters\[(?P<key>[^\[\]]+)\](?:\[(?P<index>\d*)\])?$")


async def events(request: Request, ctx: Context) -> JSON:
    return await _metrics(request, ctx, "events")


async def attempts(request: Request, ctx: Context) -> JSON:
    return await _metrics(request, ctx, "attempts")


async def _metrics(request: Request, ctx: Context, kind: Kind) -> JSON:
    q = request.query_params
    query = build_query(
        kind,
        start=q.get("time[start]"),
        end=q.get("time[end]"),
        measures=params.array(q, "measures"),
        granularity=q.get("granularity"),
        dimensions=params.array(q, "dimensions"),
        filters=filters(q),
    )
    query = _scoped(query, ctx)
    store = ctx.services.metrics
    if store is None:
        raise StoreError("no metrics store configured")
    started = time.perf_counter()
    tallies = await store.metrics_tallies(query)
    elapsed_ms = round((time.perf_counter() - started) * 1000)
    return JSON(answer(query, tallies, elapsed_ms))


def filters(q: QueryParams) -> dict[str, tuple[str, ...]]:
    """Each `filters[key]` as an array, in the three encodings of contract.md §1.4 (indexed wins
    over `[]`, which wins over plain repetition)."""
    indexed: dict[str, list[tuple[int, str]]] = {}
    bracketed: dict[str, list[str]] = {}
    plain: dict[str, list[str]] = {}
    for name, value in q.multi_items():
        match = _FILTER.match(name)
        if match is None:
            continue
        key, index = match["key"], match["index"]
        if index:
            indexed.setdefault(key, []).append((int(index), value))
        elif index == "":
            bracketed.setdefault(key, []).append(value)
        else:
            plain.setdefault(key, []).append(value)
    found: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in plain.items()}
    found.update({k: tuple(v) for k, v in bracketed.items()})
    found.update({k: tuple(v for _, v in sorted(pairs)) for k, pairs in indexed.items()})
    return found


def _scoped(query: MetricsQuery, ctx: Context) -> MetricsQuery:
    """A tenant's JWT sees its own tenant only, and may not group by tenant."""
    if ctx.caller.admin:
        return query
    if "tenant_id" in query.dimensions:
        raise ForbiddenError("tenant_id dimension is not allowed for tenant-scoped requests")
    own = ctx.caller.tenant_id or ""
    asked = query.filters.get("tenant_id")
    if asked is not None and tuple(asked) != (own,):
        raise ForbiddenError("filters[tenant_id] does not match authenticated tenant")
    return _with_filter(query, "tenant_id", own)


def _with_filter(query: MetricsQuery, key: str, value: str) -> MetricsQuery:
    return replace(query, filters={**query.filters, key: (value,)})
