"""What the API's `next_attempt_at` and `request_headers` read, on every store: the pending
automatic retry of a (tenant, event, destination), and the headers an attempt recorded.

The queue is shared by the whole store, so every test starts on an empty one.
"""

from __future__ import annotations

import dataclasses

import pytest

from waypost.core.models import DeliveryTask, Event, Outcome, PendingRetry
from waypost.core.timefmt import now_ms

from ._support import HOUR, Backend, attempt, event, uid

pytestmark = [pytest.mark.anyio, pytest.mark.clean_database]

LEASE = 60_000


async def _first_tasks(backend: Backend, e: Event) -> dict[str, DeliveryTask]:
    now = now_ms()
    assert not await backend.accept(e, now, now - HOUR)
    return {t.destination_id: t for t in await backend.claim(1000, LEASE)}


def _failed(task: DeliveryTask, retry_at: int | None) -> Outcome:
    made = attempt(
        uid("att"),
        task.event,
        task.destination_id,
        time=now_ms(),
        number=task.attempt_number,
        status="failed",
        code="503",
    )
    return Outcome(task, made, retry_at=retry_at)


async def test_a_scheduled_retry_is_read_back_with_its_number_and_time(backend: Backend) -> None:
    e = event(uid("evt"), uid("tnt"), matched=("d1", "d2"))
    first = await _first_tasks(backend, e)
    due = now_ms() + HOUR
    await backend.finish([_failed(first["d1"], retry_at=due), _failed(first["d2"], None)])

    found = await backend.pending_retries(
        [(e.tenant_id, e.id, "d1"), (e.tenant_id, e.id, "d2"), (e.tenant_id, e.id, "d3")]
    )

    assert found == {(e.tenant_id, e.id, "d1"): PendingRetry(attempt_number=2, due=due)}
    assert await backend.pending_retries([]) == {}


async def test_another_tenants_event_of_the_same_id_has_none(backend: Backend) -> None:
    shared_id = uid("evt")
    mine = event(shared_id, uid("tnt"), matched=("d1",))
    theirs = event(shared_id, uid("tnt"), matched=("d1",))
    first = await _first_tasks(backend, mine)
    await backend.finish([_failed(first["d1"], retry_at=now_ms() + HOUR)])
    assert not await backend.accept(theirs, now_ms(), now_ms() - HOUR)

    found = await backend.pending_retries([(theirs.tenant_id, shared_id, "d1")])

    assert found == {}
    assert list(await backend.pending_retries([(mine.tenant_id, shared_id, "d1")])) == [
        (mine.tenant_id, shared_id, "d1")
    ]


async def test_a_retry_being_delivered_or_cancelled_is_no_longer_pending(
    backend: Backend,
) -> None:
    e = event(uid("evt"), uid("tnt"), matched=("d1", "d2"))
    first = await _first_tasks(backend, e)
    now = now_ms()
    await backend.finish(
        [_failed(first["d1"], retry_at=now - 1), _failed(first["d2"], retry_at=now + HOUR)]
    )
    [claimed] = await backend.claim(1000, LEASE)  # d1's retry, due: now in flight
    assert (claimed.destination_id, claimed.attempt_number) == ("d1", 2)
    await backend.enqueue_manual(e, "d2", 2)
    [manual] = await backend.claim(1000, LEASE)
    succeeded = attempt(uid("att"), e, "d2", time=now_ms(), number=2, manual=True)
    await backend.finish([Outcome(manual, succeeded, cancel_retry=True)])

    assert (
        await backend.pending_retries([(e.tenant_id, e.id, "d1"), (e.tenant_id, e.id, "d2")]) == {}
    )


async def test_an_attempt_keeps_the_headers_it_recorded(backend: Backend) -> None:
    e = event(uid("evt"), uid("tnt"), matched=("d1", "d2"))
    first = await _first_tasks(backend, e)
    headers = {"Content-Type": "application/json", "X-Outpost-Event-Id": e.id, "Ünï": "çödé"}
    sent = dataclasses.replace(attempt(uid("att"), e, "d1", time=now_ms()), request_headers=headers)
    none = attempt(uid("att"), e, "d2", time=now_ms())
    await backend.finish([Outcome(first["d1"], sent), Outcome(first["d2"], none)])

    read = await backend.get_attempt(sent.id)
    assert read is not None and read.request_headers == headers
    assert list(read.request_headers) == list(headers), "in the order sent"
    plain = await backend.get_attempt(none.id)
    assert plain is not None and plain.request_headers is None
