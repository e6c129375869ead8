"""Publishes that arrive together (DeliveryQueue contract.md §2.4): each keeps its own answer.

Backends may write the publishes waiting for one commit together (PostgreSQL: one statement for
all of them). These pin what that must not change: the same id twice at once is accepted once;
each event gets exactly its own tasks; a write that fails among them fails alone.
"""

from __future__ import annotations

from collections import Counter

import anyio
import pytest

from waypost.core.models import DeliveryTask, Event
from waypost.core.timefmt import now_ms
from waypost.errors import ConflictError

from ._support import HOUR, Backend, destination, event, uid

pytestmark = [pytest.mark.anyio, pytest.mark.clean_database]

LEASE = 60_000


async def _accept_together(backend: Backend, events: list[Event]) -> list[bool]:
    """Accept all at once (started in one go, so they wait for the same commit where batched);
    the duplicate flags, in the order of `events`."""
    answers: dict[int, bool] = {}

    async def accept(index: int, e: Event) -> None:
        now = now_ms()
        answers[index] = await backend.accept(e, now, now - HOUR)

    async with anyio.create_task_group() as group:
        for index, e in enumerate(events):
            group.start_soon(accept, index, e)
    return [answers[i] for i in range(len(events))]


async def _claim_all(backend: Backend) -> list[DeliveryTask]:
    return await backend.claim(1000, LEASE)


async def test_the_same_id_published_twice_at_once_is_accepted_once(backend: Backend) -> None:
    tenant_id = uid("tnt")
    twice = event(uid("evt"), tenant_id, matched=("d1", "d2"))
    others = [event(uid("evt"), tenant_id, matched=("d1",)) for _ in range(20)]

    answers = await _accept_together(backend, [*others[:10], twice, *others[10:], twice])

    assert sorted(answers) == [False] * 21 + [True], "one of the two is the duplicate"
    assert answers[:10] + answers[11:-1] == [False] * 20
    tasks = Counter(t.event.id for t in await _claim_all(backend))
    assert tasks == {twice.id: 2, **{e.id: 1 for e in others}}, "one task per match, once"


async def test_the_same_id_of_two_tenants_at_once_is_two_events(backend: Backend) -> None:
    """Events are their tenant's: in one commit (one statement, where batched) too."""
    e = uid("evt")
    a = event(e, uid("tnt"), data=b'{"of":"a"}', matched=("d1",))
    b = event(e, uid("tnt"), data=b'{"of":"b"}', matched=("d1", "d2"))
    others = [event(uid("evt"), a.tenant_id, matched=("d1",)) for _ in range(5)]

    assert await _accept_together(backend, [*others, a, b]) == [False] * 7

    assert (await backend.get_event(e, a.tenant_id), await backend.get_event(e, b.tenant_id)) == (
        a,
        b,
    )
    mine = [t for t in await _claim_all(backend) if t.event.id == e]
    assert sorted((t.event.tenant_id, t.destination_id, t.event.data) for t in mine) == sorted(
        [(a.tenant_id, "d1", a.data), (b.tenant_id, "d1", b.data), (b.tenant_id, "d2", b.data)]
    )


async def test_a_repeat_at_once_of_an_unmatched_event_replaces_it(backend: Backend) -> None:
    """An event that matched nothing does not count as accepted: a publish of its id that
    matches is accepted in its place, even in the same commit."""
    tenant_id = uid("tnt")
    e = uid("evt")
    unmatched, matched = event(e, tenant_id, matched=()), event(e, tenant_id, matched=("d1",))

    assert await _accept_together(backend, [unmatched, matched]) == [False, False]

    assert await backend.get_event(e) == matched
    assert [(t.event, t.destination_id) for t in await _claim_all(backend)] == [(matched, "d1")]


async def test_an_id_accepted_before_is_a_duplicate_among_new_ones(backend: Backend) -> None:
    tenant_id = uid("tnt")
    earlier = event(uid("evt"), tenant_id, matched=("d1",))
    now = now_ms()
    assert await backend.accept(earlier, now, now - HOUR) is False
    assert [t.event.id for t in await _claim_all(backend)] == [earlier.id]
    fresh = [event(uid("evt"), tenant_id, matched=("d1", "d2", "d3")) for _ in range(10)]
    again = event(earlier.id, tenant_id, data=b'{"again":1}', matched=("d1",))

    answers = await _accept_together(backend, [*fresh[:5], again, *fresh[5:]])

    assert answers == [False] * 5 + [True] + [False] * 5
    assert await backend.get_event(earlier.id) == earlier, "the duplicate replaced nothing"
    tasks = await _claim_all(backend)
    assert sorted((t.event.id, t.destination_id) for t in tasks) == sorted(
        (e.id, d) for e in fresh for d in ("d1", "d2", "d3")
    )
    assert all(t.event == {e.id: e for e in fresh}[t.event.id] for t in tasks)


async def test_a_write_that_fails_among_publishes_fails_alone(backend: Backend) -> None:
    tenant_id = uid("tnt")
    await backend.create_destination(destination(tenant_id, "d1"), limit=20)
    events = [event(uid("evt"), tenant_id, matched=("d1", "d2")) for _ in range(20)]
    failures: list[BaseException] = []
    answers: dict[str, bool] = {}

    async def accept(e: Event) -> None:
        now = now_ms()
        answers[e.id] = await backend.accept(e, now, now - HOUR)

    async def create_again() -> None:
        try:
            await backend.create_destination(destination(tenant_id, "d1"), limit=20)
        except ConflictError as exc:
            failures.append(exc)

    async with anyio.create_task_group() as group:
        for e in events[:10]:
            group.start_soon(accept, e)
        group.start_soon(create_again)
        for e in events[10:]:
            group.start_soon(accept, e)

    assert len(failures) == 1, "the second creation of d1 is refused"
    assert answers == {e.id: False for e in events}
    tasks = await _claim_all(backend)
    assert sorted((t.event.id, t.destination_id) for t in tasks) == sorted(
        (e.id, d) for e in events for d in ("d1", "d2")
    )
