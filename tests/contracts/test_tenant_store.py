"""TenantStore contract (contract.md §1.6.2-1.6.12, §1.4): tenants, their destinations, and tenant
paging."""

from __future__ import annotations

from dataclasses import replace

import pytest

from waypost.core.models import Destination, Tenant
from waypost.core.paging import Direction, Page, PageRequest
from waypost.errors import ConflictError, InputError

from ._support import BASE, Backend, destination, uid, walk_pages

pytestmark = pytest.mark.anyio


async def _tenant(backend: Backend, now: int = BASE) -> str:
    tenant_id = uid("tnt")
    await backend.upsert_tenant(tenant_id, None, now)
    return tenant_id


async def _ids(backend: Backend, tenant_id: str) -> list[str]:
    return [d.id for d in await backend.list_destinations(tenant_id)]


# Tenants


async def test_upsert_creates_then_replaces_metadata_keeping_created_at(backend: Backend) -> None:
    tenant_id = uid("tnt")
    created, is_new = await backend.upsert_tenant(tenant_id, {"plan": "pro", "region": "eu"}, BASE)
    assert is_new
    assert created == Tenant(tenant_id, BASE, BASE, {"plan": "pro", "region": "eu"})
    assert await backend.get_tenant(tenant_id) == created

    updated, is_new = await backend.upsert_tenant(tenant_id, {"plan": "free"}, BASE + 5)
    assert not is_new
    # replaced, not merged: "region" is gone
    assert updated == Tenant(tenant_id, BASE, BASE + 5, {"plan": "free"})
    assert await backend.get_tenant(tenant_id) == updated

    cleared, is_new = await backend.upsert_tenant(tenant_id, None, BASE + 9)
    stored = await backend.get_tenant(tenant_id)
    assert not is_new
    assert stored is not None
    for t in (cleared, stored):
        assert (t.created_at, t.updated_at, t.metadata or None) == (BASE, BASE + 9, None)


async def test_an_unknown_tenant_is_absent(backend: Backend) -> None:
    assert await backend.get_tenant(uid("tnt")) is None


async def test_delete_soft_deletes_the_tenant_and_its_destinations(backend: Backend) -> None:
    tenant_id, other = await _tenant(backend), await _tenant(backend)
    for d in ("d1", "d2"):
        await backend.create_destination(destination(tenant_id, d), limit=20)
    await backend.create_destination(destination(other, "d1"), limit=20)

    assert await backend.delete_tenant(tenant_id, BASE + 10)

    assert await backend.get_tenant(tenant_id) is None
    assert await backend.list_destinations(tenant_id) == []
    assert await backend.get_destination(tenant_id, "d1") is None
    listed = await backend.list_tenants((tenant_id, other), PageRequest(limit=10))
    assert ([t.id for t in listed.items], listed.total) == ([other], 1)
    assert not await backend.delete_tenant(tenant_id, BASE + 11), "already deleted"
    assert not await backend.delete_tenant(uid("tnt"), BASE), "never existed"
    assert await _ids(backend, other) == ["d1"], "another tenant's destinations are untouched"


async def test_recreating_a_deleted_tenant_does_not_resurrect_destinations(
    backend: Backend,
) -> None:
    tenant_id = uid("tnt")
    await backend.upsert_tenant(tenant_id, {"v": "1"}, BASE)
    for d in ("d1", "d2"):
        await backend.create_destination(destination(tenant_id, d), limit=20)
    await backend.delete_tenant(tenant_id, BASE + 10)

    tenant, is_new = await backend.upsert_tenant(tenant_id, {"v": "2"}, BASE + 20)

    assert is_new
    assert tenant == Tenant(tenant_id, BASE + 20, BASE + 20, {"v": "2"})
    assert await backend.get_tenant(tenant_id) == tenant
    assert await backend.list_destinations(tenant_id) == []
    assert await backend.get_destination(tenant_id, "d1") is None
    # the old ids are free and the old destinations do not count toward the limit
    await backend.create_destination(destination(tenant_id, "d1", created_at=BASE + 21), limit=1)
    assert await _ids(backend, tenant_id) == ["d1"]


# created_at offsets with ties, and ids whose order differs from the order of creation
_TENANTS = [(0, "c"), (0, "a"), (0, "b"), (1, "e"), (2, "g"), (2, "d"), (3, "f")]


@pytest.mark.parametrize("dir", ["asc", "desc"])
async def test_list_tenants_pages_both_ways_through_created_at_ties(
    backend: Backend, dir: Direction
) -> None:
    prefix = uid("tnt")
    for offset, name in _TENANTS:
        await backend.upsert_tenant(f"{prefix}-{name}", None, BASE + offset)
    ids = tuple(f"{prefix}-{name}" for _, name in _TENANTS)
    expected = [f"{prefix}-{name}" for _, name in sorted(_TENANTS)]
    if dir == "desc":
        expected.reverse()

    async def fetch(request: PageRequest) -> Page[Tenant]:
        page = await backend.list_tenants(ids, request)
        assert page.total == len(_TENANTS), "total counts every match, not the page"
        return page

    for limit in (1, 2, 3, 7, 10):
        found = await walk_pages(fetch, lambda t: t.id, limit=limit, dir=dir)
        assert found == expected, f"limit {limit}"


async def test_list_tenants_is_newest_first_by_default(backend: Backend) -> None:
    older, newer = await _tenant(backend, BASE), await _tenant(backend, BASE + 1)
    page = await backend.list_tenants((older, newer), PageRequest())
    assert [t.id for t in page.items] == [newer, older]


async def test_list_tenants_filters_by_id_and_counts_all_matches(backend: Backend) -> None:
    tenants = [await _tenant(backend, BASE + i) for i in range(5)]
    wanted = (tenants[0], tenants[2], tenants[4], uid("unknown"))

    page = await backend.list_tenants(wanted, PageRequest(limit=2, dir="asc"))

    assert [t.id for t in page.items] == [tenants[0], tenants[2]]
    assert page.total == 3
    assert page.next is not None and page.prev is None
    rest = await backend.list_tenants(wanted, PageRequest(limit=2, dir="asc", next=page.next))
    assert ([t.id for t in rest.items], rest.total, rest.next) == ([tenants[4]], 3, None)
    assert rest.items[0] == Tenant(tenants[4], BASE + 4, BASE + 4, None)

    none = await backend.list_tenants((uid("unknown"),), PageRequest(limit=2))
    assert (none.items, none.total, none.next, none.prev) == ([], 0, None, None)


async def test_list_tenants_rejects_foreign_and_conflicting_cursors(backend: Backend) -> None:
    tenants = tuple([await _tenant(backend, BASE + i) for i in range(3)])
    page = await backend.list_tenants(tenants, PageRequest(limit=1))
    assert page.next is not None
    with pytest.raises(InputError):
        await backend.list_tenants(tenants, PageRequest(limit=1, next="not-a-cursor"))
    with pytest.raises(InputError):
        await backend.list_tenants(tenants, PageRequest(limit=1, next=page.next, prev=page.next))


# Destinations


async def test_a_destination_round_trips_every_field(backend: Backend) -> None:
    tenant_id = await _tenant(backend)
    full = Destination(
        id="des_full",
        tenant_id=tenant_id,
        type="webhook",
        topics=("user.created", "order.*"),
        config={"url": "https://example.com/hook", "custom_headers": '{"x-a":"1"}'},
        credentials={"secret": "whsec_abc", "previous_secret": "whsec_old"},
        created_at=BASE,
        updated_at=BASE + 1,
        disabled_at=BASE + 2,
        filter={"data": {"amount": {"$gte": 10}, "tags": ["a", "b"]}, "topic": "user.created"},
        delivery_metadata={"x-source": "outpost"},
        metadata={"team": "core", "ünïcode": "✓"},
    )
    bare = destination(tenant_id, "des_bare", created_at=BASE + 1)

    await backend.create_destination(full, limit=20)
    await backend.create_destination(bare, limit=20)

    assert await backend.get_destination(tenant_id, "des_full") == full
    assert await backend.get_destination(tenant_id, "des_bare") == bare
    assert await backend.list_destinations(tenant_id) == [full, bare]
    assert await backend.get_destination(tenant_id, "des_unknown") is None
    assert await backend.get_destination(uid("tnt"), "des_full") is None


async def test_destinations_are_listed_by_created_at_then_id(backend: Backend) -> None:
    tenant_id = await _tenant(backend)
    for name, created in (("d-b", 5), ("d-c", 0), ("d-a", 5), ("d-d", 1)):
        await backend.create_destination(
            destination(tenant_id, name, created_at=BASE + created), 20
        )
    assert await _ids(backend, tenant_id) == ["d-c", "d-d", "d-a", "d-b"]
    assert await backend.list_destinations(uid("tnt")) == []


async def test_a_live_duplicate_id_is_a_conflict(backend: Backend) -> None:
    tenant_id = await _tenant(backend)
    first = destination(tenant_id, "d1", url="https://example.com/first")
    await backend.create_destination(first, limit=20)

    with pytest.raises(ConflictError) as raised:
        await backend.create_destination(
            destination(tenant_id, "d1", url="https://example.com/second", created_at=BASE + 1), 20
        )

    assert raised.value.message == "destination already exists"
    assert await backend.list_destinations(tenant_id) == [first], "the first one is unchanged"


async def test_the_limit_counts_live_destinations_of_the_tenant(backend: Backend) -> None:
    tenant_id, other = await _tenant(backend), await _tenant(backend)
    await backend.create_destination(destination(other, "x1"), limit=2)
    await backend.create_destination(destination(other, "x2"), limit=2)
    for i, name in enumerate(("d1", "d2")):
        await backend.create_destination(destination(tenant_id, name, created_at=BASE + i), 2)

    with pytest.raises(ConflictError) as raised:
        await backend.create_destination(destination(tenant_id, "d3", created_at=BASE + 2), 2)
    assert raised.value.message == "maximum number of destinations per tenant reached"
    assert await _ids(backend, tenant_id) == ["d1", "d2"]

    with pytest.raises(ConflictError) as raised:  # at the limit, a duplicate is reported first
        await backend.create_destination(destination(tenant_id, "d2", created_at=BASE + 2), 2)
    assert raised.value.message == "destination already exists"

    assert await backend.delete_destination(tenant_id, "d1", BASE + 3)
    await backend.create_destination(destination(tenant_id, "d3", created_at=BASE + 4), 2)
    assert await _ids(backend, tenant_id) == ["d2", "d3"]


async def test_a_deleted_destination_id_can_be_reused(backend: Backend) -> None:
    tenant_id = await _tenant(backend)
    await backend.create_destination(destination(tenant_id, "d1", url="https://a.test/"), 20)

    assert await backend.delete_destination(tenant_id, "d1", BASE + 1)
    assert await backend.get_destination(tenant_id, "d1") is None
    assert await backend.list_destinations(tenant_id) == []
    assert not await backend.delete_destination(tenant_id, "d1", BASE + 2), "already deleted"

    again = destination(
        tenant_id, "d1", url="https://b.test/", type="hookdeck", created_at=BASE + 3
    )
    await backend.create_destination(again, limit=1)
    assert await backend.get_destination(tenant_id, "d1") == again
    assert await backend.list_destinations(tenant_id) == [again]


async def test_update_changes_a_live_destination_and_nothing_else(backend: Backend) -> None:
    tenant_id = await _tenant(backend)
    original = destination(tenant_id, "d1", filter={"data": {"a": 1}}, metadata={"k": "v"})
    neighbour = destination(tenant_id, "d2", created_at=BASE + 1)
    await backend.create_destination(original, 20)
    await backend.create_destination(neighbour, 20)
    changed = replace(
        original,
        topics=("order.created",),
        config={"url": "https://example.com/new"},
        credentials={"secret": "whsec_new"},
        filter=None,
        metadata=None,
        delivery_metadata={"x": "y"},
        updated_at=BASE + 5,
        disabled_at=BASE + 5,
    )

    assert await backend.update_destination(changed)

    assert await backend.get_destination(tenant_id, "d1") == changed
    assert await backend.list_destinations(tenant_id) == [changed, neighbour]
    enabled = replace(changed, disabled_at=None, updated_at=BASE + 6)
    assert await backend.update_destination(enabled)
    assert await backend.get_destination(tenant_id, "d1") == enabled


async def test_update_of_an_unknown_or_deleted_destination_is_refused(backend: Backend) -> None:
    tenant_id = await _tenant(backend)
    d = destination(tenant_id, "d1")
    await backend.create_destination(d, 20)

    assert not await backend.update_destination(replace(d, id="d-unknown"))
    assert not await backend.update_destination(replace(d, tenant_id=uid("tnt")))
    assert await backend.get_destination(tenant_id, "d-unknown") is None

    await backend.delete_destination(tenant_id, "d1", BASE + 1)
    assert not await backend.update_destination(replace(d, config={"url": "https://x.test/"}))
    assert await backend.get_destination(tenant_id, "d1") is None, "update must not revive it"
    assert await backend.list_destinations(tenant_id) == []


async def test_the_same_destination_id_under_two_tenants_is_two_destinations(
    backend: Backend,
) -> None:
    a, b = await _tenant(backend), await _tenant(backend)
    at_a = destination(a, "shared", url="https://a.test/")
    at_b = destination(b, "shared", url="https://b.test/", type="hookdeck")
    await backend.create_destination(at_a, limit=1)
    await backend.create_destination(at_b, limit=1)

    assert await backend.get_destination(a, "shared") == at_a
    assert await backend.get_destination(b, "shared") == at_b

    moved = replace(at_a, config={"url": "https://a2.test/"})
    assert await backend.update_destination(moved)
    assert await backend.get_destination(b, "shared") == at_b

    assert not await backend.delete_destination(uid("tnt"), "shared", BASE + 1)
    assert await backend.delete_destination(a, "shared", BASE + 1)
    assert await backend.get_destination(a, "shared") is None
    assert await backend.list_destinations(b) == [at_b]


async def test_delete_removes_only_the_named_destination(backend: Backend) -> None:
    tenant_id = await _tenant(backend)
    for i, name in enumerate(("d1", "d2", "d3")):
        await backend.create_destination(destination(tenant_id, name, created_at=BASE + i), 20)

    assert await backend.delete_destination(tenant_id, "d2", BASE + 5)
    assert not await backend.delete_destination(tenant_id, "d-unknown", BASE + 5)

    assert await _ids(backend, tenant_id) == ["d1", "d3"]
    assert await backend.get_destination(tenant_id, "d2") is None
