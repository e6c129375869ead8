"""Events belong to their tenant: a stored event is (tenant_id, id), on every backend.

Outpost keys idempotency on the id alone (contract.md §2.4); here two tenants publishing the same id
keep two events, each deduplicated, delivered, read, retried and erased within its own tenant.
"""

from __future__ import annotations

import pytest

from waypost.core.models import DeliveryTask, Outcome
from waypost.core.paging import AttemptQuery, PageRequest
from waypost.core.timefmt import now_ms
from waypost.errors import InputError

from ._support import HOUR, Backend, attempt, event, record_attempts, uid

pytestmark = [pytest.mark.anyio, pytest.mark.clean_database]


def _delivered(tasks: list[DeliveryTask]) -> list[tuple[str, str, bytes]]:
    """(tenant, destination, data) of each claimed task: whose event goes where."""
    return sorted((t.event.tenant_id, t.destination_id, t.event.data) for t in tasks)


def _failed(task: DeliveryTask, retry_at: int | None = None) -> Outcome:
    made = attempt(
        uid("att"), task.event, task.destination_id, time=now_ms(), status="failed", code="500"
    )
    return Outcome(task, made, retry_at=retry_at)


async def test_another_tenant_after_the_window_does_not_overwrite_the_event(
    backend: Backend,
) -> None:
    a = event(uid("evt"), uid("tnt"), data=b'{"of":"a"}', matched=("d1",))
    now = now_ms() - 1000
    assert await backend.accept(a, now, now - HOUR) is False
    b = event(a.id, uid("tnt"), data=b'{"of":"b"}', matched=("d1",))
    assert await backend.accept(b, now + 10, now + 1) is False  # A's acceptance is past the window

    assert await backend.get_event(a.id, a.tenant_id) == a
    assert await backend.get_event(a.id, b.tenant_id) == b
    assert _delivered(await backend.claim(100, 60_000)) == sorted(
        [(a.tenant_id, "d1", b'{"of":"a"}'), (b.tenant_id, "d1", b'{"of":"b"}')]
    )


async def test_another_tenant_within_the_window_is_stored_and_delivered_not_a_duplicate(
    backend: Backend,
) -> None:
    a = event(uid("evt"), uid("tnt"), data=b'{"of":"a"}', matched=("d1",))
    now = now_ms() - 1000
    assert await backend.accept(a, now, now - HOUR) is False
    b = event(a.id, uid("tnt"), data=b'{"of":"b"}', matched=("d2",))

    assert await backend.accept(b, now + 10, now + 10 - HOUR) is False

    assert await backend.get_event(a.id, b.tenant_id) == b
    assert await backend.get_event(a.id, a.tenant_id) == a
    assert _delivered(await backend.claim(100, 60_000)) == sorted(
        [(a.tenant_id, "d1", b'{"of":"a"}'), (b.tenant_id, "d2", b'{"of":"b"}')]
    )
    # and each tenant's own republish within the window is still its duplicate
    assert await backend.accept(b, now + 20, now + 20 - HOUR) is True
    assert await backend.accept(a, now + 30, now + 30 - HOUR) is True


async def test_an_unmatched_event_of_a_third_tenant_replaces_nothing_and_is_not_replaced(
    backend: Backend,
) -> None:
    now = now_ms() - 1000
    c = event(uid("evt"), uid("tnt"), data=b'{"of":"c"}')  # matched nothing: stored, no task
    assert await backend.accept(c, now, now - HOUR) is False
    a = event(c.id, uid("tnt"), data=b'{"of":"a"}', matched=("d1",))
    assert await backend.accept(a, now + 10, now + 10 - HOUR) is False
    late = event(c.id, uid("tnt"), data=b'{"of":"late"}')  # a third tenant, matching nothing
    assert await backend.accept(late, now + 20, now + 20 - HOUR) is False

    assert await backend.get_event(c.id, c.tenant_id) == c
    assert await backend.get_event(c.id, a.tenant_id) == a
    assert await backend.get_event(c.id, late.tenant_id) == late
    assert _delivered(await backend.claim(100, 60_000)) == [(a.tenant_id, "d1", b'{"of":"a"}')]


async def test_a_read_naming_no_tenant_needs_the_id_to_be_one_tenants(backend: Backend) -> None:
    a = event(uid("evt"), uid("tnt"), matched=("d1",))
    await backend.accept(a, now_ms(), now_ms() - HOUR)
    assert await backend.get_event(a.id) == a, "one tenant has this id: no tenant needed"

    b = event(a.id, uid("tnt"), matched=("d1",))
    await backend.accept(b, now_ms(), now_ms() - HOUR)

    with pytest.raises(InputError, match="tenant_id") as raised:
        await backend.get_event(a.id)
    assert raised.value.status == 400
    assert await backend.get_event(a.id, b.tenant_id) == b


async def test_pending_retries_of_the_same_event_id_and_destination_are_per_tenant(
    backend: Backend,
) -> None:
    """The retry key names the tenant: B's retry neither replaces nor cancels A's."""
    now = now_ms()
    a = event(uid("evt"), uid("tnt"), matched=("d1",))
    b = event(a.id, uid("tnt"), matched=("d1",))
    await backend.accept(a, now, now - HOUR)
    await backend.accept(b, now, now - HOUR)
    first = {t.event.tenant_id: t for t in await backend.claim(100, 60_000)}
    later = now_ms() + HOUR
    await backend.finish(
        [_failed(first[a.tenant_id], retry_at=later), _failed(first[b.tenant_id], later + 1)]
    )
    assert await backend.next_visible_at() == later, "two retries pending, A's first"

    await backend.enqueue_manual(b, "d1", 2)
    [manual] = await backend.claim(100, 60_000)
    succeeded = attempt(uid("att"), b, "d1", time=now_ms(), number=2, manual=True)
    await backend.finish([Outcome(manual, succeeded, cancel_retry=True)])  # cancels B's only

    assert await backend.next_visible_at() == later, "A's retry is still pending"


async def test_attempts_and_latest_attempt_resolve_within_the_tenant(backend: Backend) -> None:
    a = event(uid("evt"), uid("tnt"))
    b = event(a.id, uid("tnt"))
    await backend.accept(a, now_ms(), now_ms() - HOUR)
    await backend.accept(b, now_ms(), now_ms() - HOUR)
    made_a = attempt(uid("att"), a, "d1", time=now_ms(), number=3)
    made_b = attempt(uid("att"), b, "d1", time=now_ms(), number=1)
    await record_attempts(backend, [made_a, made_b])

    assert await backend.latest_attempt(a.id, "d1", b.tenant_id) == made_b
    assert await backend.latest_attempt(a.id, "d1", a.tenant_id) == made_a
    listed = await backend.list_attempts(
        AttemptQuery(tenant_ids=(b.tenant_id,), event_ids=(a.id,)), PageRequest()
    )
    assert [x.id for x in listed.items] == [made_b.id]


async def test_erasing_a_tenant_leaves_another_tenants_event_of_the_same_id(
    backend: Backend,
) -> None:
    a = event(uid("evt"), uid("tnt"))
    b = event(a.id, uid("tnt"))
    await backend.accept(a, now_ms(), now_ms() - HOUR)
    await backend.accept(b, now_ms(), now_ms() - HOUR)

    deleted = await backend.erase_tenant_logs(a.tenant_id, 100)

    assert deleted.events == 1
    assert await backend.get_event(a.id, a.tenant_id) is None
    assert await backend.get_event(b.id, b.tenant_id) == b


async def test_an_event_is_kept_by_its_own_tasks_not_by_another_tenants(backend: Backend) -> None:
    """Retention keeps an event while a task of it is queued: its own, not one of another
    tenant's event of the same id."""
    a = event(uid("evt"), uid("tnt"), time=1000)
    b = event(a.id, uid("tnt"), time=1000, matched=("d1",))  # queued, not delivered yet
    await backend.accept(a, now_ms(), now_ms() - HOUR)
    await backend.accept(b, now_ms(), now_ms() - HOUR)

    await backend.delete_logs_before(2000, 100)

    assert await backend.get_event(a.id, a.tenant_id) is None
    assert await backend.get_event(b.id, b.tenant_id) == b
