"""What a list request asks for and what a page gives back (cursor pagination, contract.md §1.4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

T = TypeVar("T")
Direction = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int = 100
    dir: Direction = "desc"
    next: str | None = None
    prev: str | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next: str | None = None
    prev: str | None = None
    total: int | None = None


@dataclass(frozen=True, slots=True)
class TimeRange:
    gte: int | None = None
    lte: int | None = None
    gt: int | None = None
    lt: int | None = None


@dataclass(frozen=True, slots=True)
class EventQuery:
    tenant_ids: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    destination_ids: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    time: TimeRange = field(default_factory=TimeRange)


@dataclass(frozen=True, slots=True)
class AttemptQuery:
    tenant_ids: tuple[str, ...] = ()
    event_ids: tuple[str, ...] = ()
    destination_ids: tuple[str, ...] = ()
    destination_types: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    status: str | None = None
    time: TimeRange = field(default_factory=TimeRange)
