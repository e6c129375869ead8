"""Query-string conventions (contract.md §1.4): array parameters, time ranges, cursor paging."""

from __future__ import annotations

import re

from starlette.datastructures import QueryParams

from waypost.core import timefmt
from waypost.core.paging import Direction, PageRequest, TimeRange
from waypost.errors import InputError, ValidationError

_INDEXED = re.compile(r"^(?P<name>[^\[\]]+)\[(?P<index>\d+)\]$")
_TIME_KEY = re.compile(r"^time\[(?P<op>[^\]]*)\]$")
_TIME_OPS = ("gte", "lte", "gt", "lt")


def array(params: QueryParams, name: str) -> tuple[str, ...]:
    """`k[0]=a&k[1]=b` (by index) wins over `k[]=a&k[]=b`, which wins over `k=a&k=b`."""
    indexed: list[tuple[int, str]] = []
    for key, value in params.multi_items():
        match = _INDEXED.match(key)
        if match and match["name"] == name:
            indexed.append((int(match["index"]), value))
    if indexed:
        return tuple(v for _, v in sorted(indexed))
    bracketed = params.getlist(name + "[]")
    return tuple(bracketed or params.getlist(name))


def direction(params: QueryParams) -> Direction:
    value = params.get("dir") or "desc"
    if value not in ("asc", "desc"):
        raise ValidationError({"query.dir": "must be 'asc' or 'desc'"})
    return "asc" if value == "asc" else "desc"


def order_by(params: QueryParams, allowed: str) -> None:
    value = params.get("order_by")
    if value and value != allowed:
        raise ValidationError({"query.order_by": f"must be one of: [{allowed}]"})


def log_page(params: QueryParams) -> PageRequest:
    """Events and attempts: limit 1–1000, default 100; anything else is a 400 (SDK 1.7.0)."""
    limit = _limit(params, default=100, most=1000)
    order_by(params, "time")
    return _page(params, limit)


def tenant_page(params: QueryParams) -> PageRequest:
    return _page(params, _limit(params, default=20, most=100))


def _limit(params: QueryParams, *, default: int, most: int) -> int:
    raw = params.get("limit")
    if not raw:
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise InputError("invalid limit: must be an integer") from None
    if not 1 <= limit <= most:
        raise InputError(f"invalid limit: must be between 1 and {most}")
    return limit


def _page(params: QueryParams, limit: int) -> PageRequest:
    next_, prev = params.get("next") or None, params.get("prev") or None
    if next_ and prev:
        raise InputError("cannot specify both 'next' and 'prev' cursors")
    return PageRequest(limit=limit, dir=direction(params), next=next_, prev=prev)


def time_range(params: QueryParams) -> TimeRange:
    bounds: dict[str, int] = {}
    for key, value in params.multi_items():
        match = _TIME_KEY.match(key)
        if not match:
            continue
        op = match["op"]
        if op not in _TIME_OPS:
            raise InputError(f"operator '{op}' is not supported, use 'gte', 'lte', 'gt', or 'lt'")
        bounds[op] = _parse_time(key, value)
    return TimeRange(**bounds)


def _parse_time(key: str, value: str) -> int:
    try:
        return timefmt.parse(value, allow_date=True)
    except ValueError:
        expected = "invalid format, expected RFC3339 (e.g. 2024-01-01T00:00:00Z) or YYYY-MM-DD"
        raise ValidationError({f"query.{key}": expected}) from None


def includes(params: QueryParams) -> frozenset[str]:
    return frozenset(array(params, "include"))
