"""Keyset pagination over (sort column, id), shared by tenants, events and attempts."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from outpost.core import cursor
from outpost.core.paging import Page, PageRequest
from outpost.errors import InputError

T = TypeVar("T")


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

    def sql(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "1"


def fetch_page(
    conn: sqlite3.Connection,
    *,
    kind: str,
    select: str,
    where: Where,
    sort: str,
    id_column: str,
    request: PageRequest,
    build: Callable[[sqlite3.Row | tuple[Any, ...]], T],
    position: Callable[[T], tuple[int, str]],
) -> Page[T]:
    """One page in `request.dir` order, fetching limit+1 rows to learn whether more exist."""
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
    rows = conn.execute(
        f"{select} WHERE {where.sql()} ORDER BY {sort} {order}, {id_column} {order} LIMIT ?",
        (*where.params, request.limit + 1),
    ).fetchall()
    more = len(rows) > request.limit
    items = [build(row) for row in rows[: request.limit]]
    if backward:
        items.reverse()
    first = cursor.encode(kind, position(items[0])) if items else None
    last = cursor.encode(kind, position(items[-1])) if items else None
    if backward:
        return Page(items, next=last, prev=first if more else None)
    return Page(items, next=last if more else None, prev=first if token is not None else None)


def _decode(kind: str, token: str) -> tuple[int, str]:
    decoded = cursor.decode(kind, token)
    if len(decoded) != 2 or not isinstance(decoded[0], int) or not isinstance(decoded[1], str):
        raise InputError("invalid cursor")
    return decoded[0], decoded[1]
