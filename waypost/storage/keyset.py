"""Keyset pagination over (sort column, id), shared by every SQL backend.

A page is built in two halves around the driver call: `plan()` turns a `PageRequest` into SQL and
parameters (fetching limit+1 rows to learn whether more exist), and `page()` turns the rows into a
`Page` with its cursors. SQL is written with `?` placeholders; `numbered()` rewrites them as
`$1, $2, …` for PostgreSQL.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from waypost.core import cursor
from waypost.core.paging import Page, PageRequest, TimeRange
from waypost.errors import InputError

T = TypeVar("T")
_MARK = re.compile(r"\?")


def numbered(sql: str) -> str:
    counter = itertools.count(1)
    return _MARK.sub(lambda _: f"${next(counter)}", sql)


@dataclass(frozen=True, slots=True)
class Where:
    """A conjunction of SQL conditions and their parameters, built up filter by filter."""

    clauses: tuple[str, ...] = ()
    params: tuple[Any, ...] = ()

    def add(self, clause: str, *params: Any) -> Where:
        return Where((*self.clauses, clause), (*self.params, *params))

    def any_of(self, column: str, values: Sequence[Any]) -> Where:
        if not values:
            return self
        marks = ",".join("?" * len(values))
        return self.add(f"{column} IN ({marks})", *values)

    def within(self, column: str, span: TimeRange) -> Where:
        where = self
        for op, value in ((">=", span.gte), ("<=", span.lte), (">", span.gt), ("<", span.lt)):
            if value is not None:
                where = where.add(f"{column} {op} ?", value)
        return where

    def sql(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "TRUE"


@dataclass(frozen=True, slots=True)
class Plan:
    kind: str
    sql: str
    params: tuple[Any, ...]
    request: PageRequest

    @property
    def backward(self) -> bool:
        return self.request.prev is not None


def plan(
    *, kind: str, select: str, where: Where, sort: str, id_column: str, request: PageRequest
) -> Plan:
    if request.next and request.prev:
        raise InputError("cannot specify both 'next' and 'prev' cursors")
    backward = request.prev is not None
    token = request.prev if backward else request.next
    descending = (request.dir == "desc") != backward
    if token is not None:
        sort_value, row_id = _decode(kind, token)
        op = "<" if descending else ">"
        where = where.add(f"({sort}, {id_column}) {op} (?, ?)", sort_value, row_id)
    order = "DESC" if descending else "ASC"
    sql = f"{select} WHERE {where.sql()} ORDER BY {sort} {order}, {id_column} {order} LIMIT ?"
    return Plan(kind, sql, (*where.params, request.limit + 1), request)


def page(
    plan: Plan,
    rows: Sequence[Any],
    build: Callable[[Any], T],
    position: Callable[[T], tuple[int, str]],
) -> Page[T]:
    limit = plan.request.limit
    more = len(rows) > limit
    items = [build(row) for row in rows[:limit]]
    if plan.backward:
        items.reverse()
    first = cursor.encode(plan.kind, position(items[0])) if items else None
    last = cursor.encode(plan.kind, position(items[-1])) if items else None
    if plan.backward:
        return Page(items, next=last, prev=first if more else None)
    came_from_a_page = plan.request.next is not None
    return Page(items, next=last if more else None, prev=first if came_from_a_page else None)


def _decode(kind: str, token: str) -> tuple[int, str]:
    decoded = cursor.decode(kind, token)
    if len(decoded) != 2 or not isinstance(decoded[0], int) or not isinstance(decoded[1], str):
        raise InputError("invalid cursor")
    return decoded[0], decoded[1]
