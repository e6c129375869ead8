"""Filters and keyset paging over lists, as storage/keyset.py does them in SQL."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from waypost.core import cursor
from waypost.core.paging import Page, PageRequest, TimeRange
from waypost.errors import InputError

T = TypeVar("T")


def any_of(value: str, wanted: tuple[str, ...]) -> bool:
    """SQL's `value IN (...)` as keyset.Where.any_of builds it: no values, no condition."""
    return not wanted or value in wanted


def any_in(values: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    """Whether any of `values` is wanted (a JSON array's `EXISTS ... IN (...)`), as above."""
    return not wanted or any(value in wanted for value in values)


def within(value: int, span: TimeRange) -> bool:
    return (
        (span.gte is None or value >= span.gte)
        and (span.lte is None or value <= span.lte)
        and (span.gt is None or value > span.gt)
        and (span.lt is None or value < span.lt)
    )


def page(
    kind: str,
    found: Iterable[T],
    position: Callable[[T], tuple[int, str]],
    request: PageRequest,
) -> Page[T]:
    """keyset.plan and keyset.page over a list: the same order, cursors and page bounds."""
    if request.next and request.prev:
        raise InputError("cannot specify both 'next' and 'prev' cursors")
    backward = request.prev is not None
    token = request.prev if backward else request.next
    descending = (request.dir == "desc") != backward
    ordered = sorted(found, key=position, reverse=descending)  # (sort value, id) is unique
    if token is not None:
        mark = _decode(kind, token)
        ordered = [x for x in ordered if (position(x) < mark if descending else position(x) > mark)]
    fetched = ordered[: request.limit + 1]  # one more than a page: are there more?
    more = len(fetched) > request.limit
    items = fetched[: request.limit]
    if backward:
        items.reverse()
    first = cursor.encode(kind, position(items[0])) if items else None
    last = cursor.encode(kind, position(items[-1])) if items else None
    if backward:
        return Page(items, next=last, prev=first if more else None)
    came_from_a_page = request.next is not None
    return Page(items, next=last if more else None, prev=first if came_from_a_page else None)


def _decode(kind: str, token: str) -> tuple[int, str]:
    decoded = cursor.decode(kind, token)
    if len(decoded) != 2 or not isinstance(decoded[0], int) or not isinstance(decoded[1], str):
        raise InputError("invalid cursor")
    return decoded[0], decoded[1]
