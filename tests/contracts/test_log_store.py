"""LogStore contract (contract.md §1.6.16, §1.4): stored events and attempts, their filters and
paging.

Events get into the log through `accept` and attempts through `finish` (see `record_attempts`):
the seams have no other way in, so these tests go through the queue too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from waypost.core.models import Attempt, Event
from waypost.core.paging import (
    AttemptQuery,
    Direction,
    EventQuery,
    Page,
    PageRequest,
    TimeRange,
)
from waypost.core.timefmt import now_ms
from waypost.errors import InputError

from ._support import BASE, HOUR, Backend, attempt, event, record_attempts, uid, walk_pages

pytestmark = pytest.mark.anyio


async def _accept(backend: Backend, *events: Event) -> None:
    for e in events:
        now = now_ms()
        assert not await backend.accept(e, now, now - HOUR)


@dataclass
class Mismatches:
    """Collects every failing case of a table-driven test, so one run reports them all."""

    found: list[str] = field(default_factory=list)

    def check(self, case: str, actual: Sequence[str], expected: Sequence[str]) -> None:
        if list(actual) != list(expected):
            self.found.append(f"{case}: expected {list(expected)}, got {list(actual)}")

    def assert_none(self) -> None:
        assert not self.found, "\n".join(self.found)


# Events


async def test_get_event_returns_the_accepted_event_exactly(backend: Backend) -> None:
    tenant_id = uid("tnt")
    stored = event(
        uid("evt"),
        tenant_id,
        topic="order.paid",
        time=BASE + 123,
        data=b'{"z":1,"a":[1.50,1e3,"\\u00e9",null],"n":{"k":true}}',  # order and literals kept
        matched=("d2", "d1"),
        metadata={"source": "billing", "trace": "abc"},
        eligible_for_retry=False,
        destination_id="d2",
    )
    await _accept(backend, stored)

    assert await backend.get_event(stored.id) == stored
    assert await backend.get_event(stored.id, tenant_id) == stored
    assert await backend.get_event(stored.id, uid("tnt")) is None, "another tenant's event"
    assert await backend.get_event(uid("evt")) is None
    assert await backend.get_event(uid("evt"), tenant_id) is None


async def test_get_events_returns_the_found_ones_by_tenant_and_id(backend: Backend) -> None:
    tenant_id = uid("tnt")
    one = event(uid("evt"), tenant_id, matched=("d1",))
    two = event(uid("evt"), uid("tnt"), topic="b", data=b'{"two":2}')  # matched nothing
    await _accept(backend, one, two)

    found = await backend.get_events(
        [
            (one.tenant_id, one.id),
            (two.tenant_id, two.id),
            (tenant_id, uid("evt")),
            (two.tenant_id, one.id),  # an id of another tenant: not this one's event
        ]
    )

    assert found == {(one.tenant_id, one.id): one, (two.tenant_id, two.id): two}


async def test_get_events_of_no_ids_is_empty(backend: Backend) -> None:
    """Asked for no ids (e.g. expanding an empty attempts page), it loads nothing at all."""
    await _accept(backend, event(uid("evt"), uid("tnt"), matched=("d1",)))

    assert await backend.get_events([]) == {}


@dataclass
class EventWorld:
    a: str
    b: str
    ids: dict[str, str]  # short name -> event id

    def names(self, events: Sequence[Event]) -> list[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return [by_id.get(e.id, e.id) for e in events]


async def _event_world(backend: Backend) -> EventWorld:
    """Two tenants; destination "d1" exists under both (ids are per tenant)."""
    a, b = uid("tnt"), uid("tnt")
    prefix = uid("evt")  # e2 and e4 share a time: ordered by id, so the ids sort by name
    ids = {name: f"{prefix}-{name}" for name in ("e1", "e2", "e3", "e4", "e5")}
    await _accept(
        backend,
        event(ids["e1"], a, topic="user.created", time=BASE, matched=("d1",)),
        event(ids["e2"], a, topic="user.updated", time=BASE + 10, matched=("d1", "d2")),
        event(ids["e3"], a, topic="order.created", time=BASE + 20, matched=("d2",)),
        event(ids["e4"], b, topic="user.created", time=BASE + 10, matched=("d1",)),
        event(ids["e5"], b, topic="order.created", time=BASE + 30, matched=("d3",)),
    )
    return EventWorld(a, b, ids)


async def test_list_events_filters(backend: Backend) -> None:
    w = await _event_world(backend)
    both = (w.a, w.b)
    cases: list[tuple[str, EventQuery, list[str]]] = [
        ("tenant a", EventQuery(tenant_ids=(w.a,)), ["e1", "e2", "e3"]),
        ("tenant b", EventQuery(tenant_ids=(w.b,)), ["e4", "e5"]),
        ("both tenants", EventQuery(tenant_ids=both), ["e1", "e2", "e4", "e3", "e5"]),
        ("unknown tenant", EventQuery(tenant_ids=(uid("tnt"),)), []),
        (
            "ids",
            EventQuery(tenant_ids=both, ids=(w.ids["e1"], w.ids["e4"], uid("evt"))),
            ["e1", "e4"],
        ),
        ("ids without tenant", EventQuery(ids=(w.ids["e3"], w.ids["e5"])), ["e3", "e5"]),
        ("ids in another tenant", EventQuery(tenant_ids=(w.a,), ids=(w.ids["e4"],)), []),
        ("matched d2", EventQuery(tenant_ids=both, destination_ids=("d2",)), ["e2", "e3"]),
        ("matched d1", EventQuery(tenant_ids=both, destination_ids=("d1",)), ["e1", "e2", "e4"]),
        (
            "matched d1 or d3",
            EventQuery(tenant_ids=both, destination_ids=("d3", "d1")),
            ["e1", "e2", "e4", "e5"],
        ),
        ("matched d1 in a", EventQuery(tenant_ids=(w.a,), destination_ids=("d1",)), ["e1", "e2"]),
        ("matched unknown", EventQuery(tenant_ids=both, destination_ids=("d9",)), []),
        ("topic", EventQuery(tenant_ids=both, topics=("user.created",)), ["e1", "e4"]),
        (
            "topics",
            EventQuery(tenant_ids=both, topics=("user.updated", "order.created")),
            ["e2", "e3", "e5"],
        ),
        ("time gte", EventQuery(both, time=TimeRange(gte=BASE + 10)), ["e2", "e4", "e3", "e5"]),
        ("time gt", EventQuery(both, time=TimeRange(gt=BASE + 10)), ["e3", "e5"]),
        ("time lte", EventQuery(both, time=TimeRange(lte=BASE + 10)), ["e1", "e2", "e4"]),
        ("time lt", EventQuery(both, time=TimeRange(lt=BASE + 10)), ["e1"]),
        (
            "time gte+lt",
            EventQuery(both, time=TimeRange(gte=BASE + 10, lt=BASE + 20)),
            ["e2", "e4"],
        ),
        (
            "time gt+lte",
            EventQuery(both, time=TimeRange(gt=BASE, lte=BASE + 20)),
            ["e2", "e4", "e3"],
        ),
        ("time empty range", EventQuery(both, time=TimeRange(gt=BASE + 30)), []),
        (
            "all together",
            EventQuery(
                tenant_ids=(w.a,),
                destination_ids=("d1",),
                topics=("user.updated", "user.created"),
                time=TimeRange(gt=BASE),
            ),
            ["e2"],
        ),
    ]
    mismatches = Mismatches()
    for name, query, expected in cases:
        page = await backend.list_events(query, PageRequest(limit=100, dir="asc"))
        mismatches.check(name, w.names(page.items), expected)
        mismatches.check(f"{name} (next, prev)", [str(page.next), str(page.prev)], ["None"] * 2)
        desc = await backend.list_events(query, PageRequest(limit=100))
        mismatches.check(f"{name} (default: desc)", w.names(desc.items), expected[::-1])
    mismatches.assert_none()


async def test_list_events_orders_by_time_then_id_newest_first_by_default(
    backend: Backend,
) -> None:
    tenant_id = uid("tnt")
    prefix = uid("evt")
    plan = [("c", 5), ("a", 0), ("d", 5), ("b", 9)]
    await _accept(
        backend,
        *(event(f"{prefix}-{n}", tenant_id, time=BASE + t, matched=("d1",)) for n, t in plan),
    )
    query = EventQuery(tenant_ids=(tenant_id,))

    default = await backend.list_events(query, PageRequest())
    asc = await backend.list_events(query, PageRequest(dir="asc"))

    assert [e.id[-1] for e in default.items] == ["b", "d", "c", "a"]
    assert [e.id[-1] for e in asc.items] == ["a", "c", "d", "b"]
    assert (default.next, default.prev, asc.next, asc.prev) == (None, None, None, None)


# times with ties (same millisecond), and ids whose order differs from the order of acceptance
_TIED = [("f", 0), ("b", 0), ("d", 0), ("a", 1), ("g", 1), ("c", 2), ("e", 3), ("h", 3)]


@pytest.mark.parametrize("dir", ["asc", "desc"])
async def test_list_events_pages_both_ways_through_ties(backend: Backend, dir: Direction) -> None:
    tenant_id = uid("tnt")
    prefix = uid("evt")
    await _accept(
        backend,
        *(event(f"{prefix}-{n}", tenant_id, time=BASE + t, matched=("d1",)) for n, t in _TIED),
    )
    # a neighbour tenant's events at the same times must not leak into the pages
    await _accept(backend, *(event(uid("evt"), uid("tnt"), time=BASE + t) for _, t in _TIED))
    expected = [f"{prefix}-{n}" for n, _ in sorted(_TIED, key=lambda nt: (nt[1], nt[0]))]
    if dir == "desc":
        expected.reverse()

    async def fetch(request: PageRequest) -> Page[Event]:
        return await backend.list_events(EventQuery(tenant_ids=(tenant_id,)), request)

    for limit in (1, 2, 3, 8, 20):
        assert await walk_pages(fetch, lambda e: e.id, limit=limit, dir=dir) == expected, limit


async def test_event_listing_rejects_bad_and_foreign_cursors(backend: Backend) -> None:
    tenant_id = uid("tnt")
    await _accept(backend, *(event(uid("evt"), tenant_id, matched=("d1",)) for _ in range(3)))
    query = EventQuery(tenant_ids=(tenant_id,))
    page = await backend.list_events(query, PageRequest(limit=1))
    assert page.next is not None

    for bad in ("garbage", page.next + "x"):
        with pytest.raises(InputError):
            await backend.list_events(query, PageRequest(limit=1, next=bad))
    with pytest.raises(InputError):  # an event cursor is not an attempt cursor
        await backend.list_attempts(AttemptQuery(), PageRequest(limit=1, next=page.next))
    with pytest.raises(InputError):
        await backend.list_events(query, PageRequest(limit=1, next=page.next, prev=page.next))


# Attempts


@dataclass
class AttemptWorld:
    a: str
    b: str
    events: dict[str, Event]
    attempts: dict[str, Attempt]

    def names(self, attempts: Sequence[Attempt]) -> list[str]:
        by_id = {v.id: k for k, v in self.attempts.items()}
        return [by_id.get(a.id, a.id) for a in attempts]


async def _attempt_world(backend: Backend) -> AttemptWorld:
    a, b = uid("tnt"), uid("tnt")
    e1 = event(uid("evt"), a, topic="user.created", time=BASE, matched=("d1",))
    e2 = event(uid("evt"), a, topic="user.updated", time=BASE, matched=("d1", "d2"))
    e3 = event(uid("evt"), b, topic="user.created", time=BASE, matched=("d1",))
    await _accept(backend, e1, e2, e3)
    t = BASE + 1000
    plan = {
        "a1": attempt(uid("att"), e1, "d1", time=t),
        "a2": attempt(uid("att"), e2, "d1", time=t + 10, status="failed", code="500"),
        "a3": attempt(
            uid("att"), e2, "d2", time=t + 20, status="failed", destination_type="hookdeck"
        ),
        "a4": attempt(
            uid("att"), e2, "d2", time=t + 30, number=2, manual=True, destination_type="hookdeck"
        ),
        "a5": attempt(uid("att"), e3, "d1", time=t + 5, status="failed", code="ECONNREFUSED"),
    }
    await record_attempts(backend, list(plan.values()))
    return AttemptWorld(a, b, {"e1": e1, "e2": e2, "e3": e3}, plan)


async def test_list_attempts_filters(backend: Backend) -> None:
    w = await _attempt_world(backend)
    both = (w.a, w.b)
    t = BASE + 1000
    e = {k: v.id for k, v in w.events.items()}
    cases: list[tuple[str, AttemptQuery, list[str]]] = [
        ("tenant a", AttemptQuery(tenant_ids=(w.a,)), ["a1", "a2", "a3", "a4"]),
        ("tenant b", AttemptQuery(tenant_ids=(w.b,)), ["a5"]),
        ("both", AttemptQuery(tenant_ids=both), ["a1", "a5", "a2", "a3", "a4"]),
        ("unknown tenant", AttemptQuery(tenant_ids=(uid("tnt"),)), []),
        ("event e2", AttemptQuery(tenant_ids=both, event_ids=(e["e2"],)), ["a2", "a3", "a4"]),
        ("events e1 e3", AttemptQuery(event_ids=(e["e1"], e["e3"])), ["a1", "a5"]),
        ("event in other tenant", AttemptQuery(tenant_ids=(w.a,), event_ids=(e["e3"],)), []),
        ("destination d2", AttemptQuery(tenant_ids=both, destination_ids=("d2",)), ["a3", "a4"]),
        (
            "destination d1",
            AttemptQuery(tenant_ids=both, destination_ids=("d1",)),
            ["a1", "a5", "a2"],
        ),
        ("d1 in tenant b", AttemptQuery(tenant_ids=(w.b,), destination_ids=("d1",)), ["a5"]),
        (
            "type hookdeck",
            AttemptQuery(tenant_ids=both, destination_types=("hookdeck",)),
            ["a3", "a4"],
        ),
        (
            "types",
            AttemptQuery(tenant_ids=both, destination_types=("webhook", "hookdeck")),
            ["a1", "a5", "a2", "a3", "a4"],
        ),
        ("topic", AttemptQuery(tenant_ids=both, topics=("user.created",)), ["a1", "a5"]),
        ("status failed", AttemptQuery(tenant_ids=both, status="failed"), ["a5", "a2", "a3"]),
        ("status success", AttemptQuery(tenant_ids=both, status="success"), ["a1", "a4"]),
        ("time gte", AttemptQuery(both, time=TimeRange(gte=t + 10)), ["a2", "a3", "a4"]),
        ("time gt", AttemptQuery(both, time=TimeRange(gt=t + 10)), ["a3", "a4"]),
        ("time lte", AttemptQuery(both, time=TimeRange(lte=t + 10)), ["a1", "a5", "a2"]),
        ("time lt", AttemptQuery(both, time=TimeRange(lt=t + 10)), ["a1", "a5"]),
        (
            "time gte+lt",
            AttemptQuery(both, time=TimeRange(gte=t + 5, lt=t + 30)),
            ["a5", "a2", "a3"],
        ),
        (
            "all together",
            AttemptQuery(
                tenant_ids=(w.a,),
                event_ids=(e["e2"],),
                destination_ids=("d2",),
                destination_types=("hookdeck",),
                topics=("user.updated",),
                status="success",
                time=TimeRange(gte=t),
            ),
            ["a4"],
        ),
    ]
    mismatches = Mismatches()
    for name, query, expected in cases:
        page = await backend.list_attempts(query, PageRequest(limit=100, dir="asc"))
        mismatches.check(name, w.names(page.items), expected)
        desc = await backend.list_attempts(query, PageRequest(limit=100))
        mismatches.check(f"{name} (default: desc)", w.names(desc.items), expected[::-1])
    mismatches.assert_none()


async def test_an_attempt_round_trips_and_is_scoped_to_its_tenant(backend: Backend) -> None:
    tenant_id = uid("tnt")
    e = event(uid("evt"), tenant_id, topic="order.paid", matched=("d1",))
    await _accept(backend, e)
    made = attempt(
        uid("att"),
        e,
        "d1",
        time=BASE + 77,
        number=4,
        status="failed",
        manual=True,
        code="503",
        response_data={"status": 503, "body": {"error": "busy", "retry": [1, 2.5]}},
    )
    bare = attempt(uid("att"), e, "d1", time=BASE + 78, number=5, code="")
    await record_attempts(backend, [made, bare])

    assert await backend.get_attempt(made.id) == made
    assert await backend.get_attempt(made.id, tenant_id) == made
    assert await backend.get_attempt(bare.id) == bare
    assert await backend.get_attempt(made.id, uid("tnt")) is None
    assert await backend.get_attempt(uid("att")) is None


async def test_latest_attempt_is_the_highest_attempt_number(backend: Backend) -> None:
    tenant_id = uid("tnt")
    e = event(uid("evt"), tenant_id, matched=("d1", "d2"))
    other = event(uid("evt"), tenant_id, matched=("d1",))
    await _accept(backend, e, other)
    third = attempt(uid("att"), e, "d1", time=BASE + 20, number=3, manual=True)
    await record_attempts(
        backend,
        [
            attempt(uid("att"), e, "d1", time=BASE + 10, number=1, status="failed"),
            third,
            # the latest by time, but not by number: a slow attempt that finished late
            attempt(uid("att"), e, "d1", time=BASE + 30, number=2, status="failed"),
            attempt(uid("att"), e, "d2", time=BASE + 40, number=7),
            attempt(uid("att"), other, "d1", time=BASE + 50, number=9),
        ],
    )

    assert await backend.latest_attempt(e.id, "d1") == third
    assert await backend.latest_attempt(e.id, "d1", tenant_id) == third
    assert await backend.latest_attempt(e.id, "d1", uid("tnt")) is None
    latest_d2 = await backend.latest_attempt(e.id, "d2")
    assert latest_d2 is not None and latest_d2.attempt_number == 7
    assert await backend.latest_attempt(e.id, "d3") is None
    assert await backend.latest_attempt(uid("evt"), "d1") is None


_TIED_ATTEMPTS = [("f", 0), ("b", 0), ("d", 0), ("a", 2), ("g", 2), ("c", 5), ("e", 7), ("h", 7)]


@pytest.mark.parametrize("dir", ["asc", "desc"])
async def test_list_attempts_pages_both_ways_through_ties(backend: Backend, dir: Direction) -> None:
    tenant_id = uid("tnt")
    e = event(uid("evt"), tenant_id, matched=("d1",))
    await _accept(backend, e)
    prefix = uid("att")
    await record_attempts(
        backend,
        [
            attempt(f"{prefix}-{n}", e, "d1", time=BASE + t, number=i + 1)
            for i, (n, t) in enumerate(_TIED_ATTEMPTS)
        ],
    )
    expected = [f"{prefix}-{n}" for n, _ in sorted(_TIED_ATTEMPTS, key=lambda nt: (nt[1], nt[0]))]
    if dir == "desc":
        expected.reverse()

    async def fetch(request: PageRequest) -> Page[Attempt]:
        return await backend.list_attempts(AttemptQuery(tenant_ids=(tenant_id,)), request)

    for limit in (1, 3, 8, 20):
        assert await walk_pages(fetch, lambda a: a.id, limit=limit, dir=dir) == expected, limit
