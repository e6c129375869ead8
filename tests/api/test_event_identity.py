"""Events belong to their tenant, through the HTTP API (issue 13 item 1).

Two tenants may publish the same event id: each keeps its own event, a tenant's JWT reads only
its own (also through `include=event.data`), and an admin read that names no tenant is answered
only while one tenant has the id. Attempts are recorded as the worker records them (no worker
runs here): claim the queued tasks, `finish` each with an attempt.
"""

from __future__ import annotations

from typing import Any

import pytest

from ._support import Api, assert_error, ok, unique
from .conftest import MakeApi

pytestmark = pytest.mark.anyio


async def _deliver_all(api: Api) -> None:
    """Every queued task finished with a successful attempt of its own event."""
    while await api.deliver_queued():
        pass


async def _two_tenants(api: Api) -> tuple[str, str, str, str]:
    a, b = await api.tenant(), await api.tenant()
    dest_a = (await api.destination(a))["id"]
    dest_b = (await api.destination(b))["id"]
    return a, b, dest_a, dest_b


async def test_a_tenant_reads_its_own_event_after_another_publishes_its_id(
    make_api: MakeApi,
) -> None:
    api = await make_api(PUBLISH_IDEMPOTENCY_KEY_TTL="0")  # B publishes after the window
    a, b, _, dest_b = await _two_tenants(api)
    event_id = unique("evt")
    await api.publish(a, {"secret": "a"}, id=event_id)
    await _deliver_all(api)

    published = await api.publish(b, {"secret": "b"}, id=event_id)
    assert (published["duplicate"], published["destination_ids"]) == (False, [dest_b])

    jwt_a = await api.jwt(a)
    listed = await api.get("/attempts", auth=jwt_a, params={"include": "event.data"})
    assert [m["event"]["data"] for m in listed["models"]] == [{"secret": "a"}]
    own = await api.get(f"/events/{event_id}", auth=jwt_a)
    assert (own["tenant_id"], own["data"]) == (a, {"secret": "a"})


async def test_another_tenant_within_the_window_is_no_duplicate(api: Api) -> None:
    a, b, _, dest_b = await _two_tenants(api)
    event_id = unique("evt")
    await api.publish(a, {"secret": "a"}, id=event_id)

    published = await api.publish(b, {"secret": "b"}, id=event_id)

    assert (published["duplicate"], published["destination_ids"]) == (False, [dest_b])
    again = await api.publish(b, {"secret": "b"}, id=event_id)
    assert again["duplicate"] is True, "within one tenant, idempotency is as before"
    await _deliver_all(api)
    for tenant, secret in ((a, "a"), (b, "b")):
        listed = await api.get(
            "/attempts", auth=await api.jwt(tenant), params={"include": "event.data"}
        )
        assert [m["event"]["data"] for m in listed["models"]] == [{"secret": secret}]


async def test_an_admin_read_of_an_id_several_tenants_use_must_name_one(api: Api) -> None:
    a, b, dest_a, dest_b = await _two_tenants(api)
    event_id = unique("evt")
    await api.publish(a, {"secret": "a"}, id=event_id)
    single = await api.get(f"/events/{event_id}")
    assert single["tenant_id"] == a, "one tenant has the id: the admin needs no tenant_id"
    await api.publish(b, {"secret": "b"}, id=event_id)
    await _deliver_all(api)

    assert_error(await api.call("GET", f"/events/{event_id}"), 400, _ambiguous(event_id))
    found = await api.get(f"/events/{event_id}", params={"tenant_id": b})
    assert (found["tenant_id"], found["data"]) == (b, {"secret": "b"})

    # The admin's retry body (the SDK's) names no tenant: the destination's attempts settle it.
    retry: dict[str, Any] = {"event_id": event_id, "destination_id": dest_b}
    ok(await api.call("POST", "/retry", json=retry), 202)
    retry_a = {"event_id": event_id, "destination_id": dest_a}
    ok(await api.call("POST", "/retry", json=retry_a, auth=await api.jwt(a)), 202)
    queued = await api.system.backend.claim(100, 60_000)
    assert sorted((t.event.tenant_id, t.destination_id, t.manual) for t in queued) == sorted(
        [(a, dest_a, True), (b, dest_b, True)]
    )

    # a list is a filter, not a lookup: every tenant's attempts, each with its own event
    listed = await api.get("/attempts", params={"event_id": event_id, "include": "event.data"})
    seen = sorted((m["tenant_id"], m["event"]["data"]["secret"]) for m in listed["models"])
    assert seen == sorted([(a, "a"), (b, "b")])


def _ambiguous(event_id: str) -> str:
    return f"event {event_id!r} exists for several tenants: pass tenant_id"


async def test_an_admin_retry_is_settled_by_the_destination_or_names_the_tenant(api: Api) -> None:
    a, b = await api.tenant(), await api.tenant()
    shared = unique("des")  # both tenants chose the same destination id
    await api.destination(a, id=shared)
    await api.destination(b, id=shared)
    event_id = unique("evt")
    await api.publish(a, {"secret": "a"}, id=event_id)
    await api.publish(b, {"secret": "b"}, id=event_id)
    await _deliver_all(api)

    retry: dict[str, Any] = {"event_id": event_id, "destination_id": shared}
    assert_error(await api.call("POST", "/retry", json=retry), 400, _ambiguous(event_id))
    ok(await api.call("POST", "/retry", json=retry, params={"tenant_id": b}), 202)
    queued = await api.system.backend.claim(100, 60_000)
    assert [(t.event.tenant_id, t.destination_id, t.manual) for t in queued] == [(b, shared, True)]
