"""The recovery extension over HTTP: undelivered events, recovery jobs, test events.

No worker runs in these tests: deliveries are recorded by hand (`Api.deliver_queued`, or the
failed ones below), and the job runner is stepped by the test.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from waypost.recovery import RecoveryRunner

from ._support import Api, assert_error, ok, unique
from .conftest import MakeApi

pytestmark = pytest.mark.anyio


async def fail_queued(api: Api) -> int:
    """Record a failed attempt for every queued delivery (no retry is scheduled)."""
    return await api.deliver_queued(failed=True)


async def scenario(api: Api) -> tuple[str, str, list[str]]:
    """A tenant whose destination got e0, failed e1, and was disabled while e2 was published."""
    tenant = await api.tenant()
    d1 = (await api.destination(tenant))["id"]
    ids = [unique(f"e{n}") for n in range(3)]
    await api.publish(tenant, id=ids[0], topic="user.created")
    await api.deliver_queued()
    await api.publish(tenant, id=ids[1], topic="user.created")
    await fail_queued(api)
    ok(await api.call("PUT", f"/tenants/{tenant}/destinations/{d1}/disable"))
    await api.publish(tenant, id=ids[2], topic="user.created")
    ok(await api.call("PUT", f"/tenants/{tenant}/destinations/{d1}/enable"))
    return tenant, d1, ids


def listed(body: Any) -> list[tuple[str, list[tuple[str, str, int]]]]:
    return [
        (
            item["event"]["id"],
            [(d["destination_id"], d["status"], d["attempts"]) for d in item["destinations"]],
        )
        for item in body["models"]
    ]


async def test_undelivered_lists_failed_and_never_attempted_events(api: Api) -> None:
    tenant, d1, ids = await scenario(api)
    path = f"/tenants/{tenant}/undelivered"
    body = await api.get(path, params={"destination_id": d1})
    assert listed(body) == [(ids[2], [(d1, "never_attempted", 0)]), (ids[1], [(d1, "failed", 1)])]
    failed = await api.get(path, params={"destination_id": d1, "status": "failed"})
    assert listed(failed) == [(ids[1], [(d1, "failed", 1)])]
    never = await api.get(path, params={"status": "never", "dir": "asc"})
    assert listed(never) == [(ids[2], [(d1, "never_attempted", 0)])]
    # Its own tenant's token sees the same; paging forward one at a time walks them all.
    jwt = await api.jwt(tenant)
    first = await api.get(path, auth=jwt, params={"limit": "1"})
    second = await api.get(
        path, auth=jwt, params={"limit": "1", "next": first["pagination"]["next"]}
    )
    assert [listed(first)[0][0], listed(second)[0][0]] == [ids[2], ids[1]]
    assert (
        second["pagination"]["next"] is None
        or listed(
            await api.get(
                path, auth=jwt, params={"limit": "1", "next": second["pagination"]["next"]}
            )
        )
        == []
    )


async def test_undelivered_refuses_bad_input(api: Api) -> None:
    tenant = await api.tenant()
    path = f"/tenants/{tenant}/undelivered"
    assert_error(await api.call("GET", path, params={"status": "lost"}), 422)
    assert_error(await api.call("GET", path, params={"destination_id": "nope"}), 404)
    assert_error(await api.call("GET", path, params={"next": "garbage"}), 400)


async def run_to_end(api: Api, runner: RecoveryRunner) -> dict[str, Any]:
    job = await runner.claim()
    assert job is not None
    while job is not None and job.state == "running":
        job = await runner.step(job)
        await api.deliver_queued()
    assert job is not None
    return {"id": job.id}


async def test_a_recovery_job_sends_each_undelivered_event_once(api: Api) -> None:
    tenant, d1, ids = await scenario(api)
    path = f"/tenants/{tenant}/recoveries"
    dry = ok(await api.call("POST", path, json={"destination_id": d1, "dry_run": True}))
    assert dry == {"dry_run": True, "matched": 2}
    created = ok(
        await api.call("POST", path, json={"destination_id": d1}, headers={"Idempotency-Key": "k"}),
        201,
    )
    assert (created["state"], created["status"], created["destination_id"]) == (
        "running",
        "all",
        d1,
    )
    again = ok(await api.call("POST", path, json={}, headers={"Idempotency-Key": "k"}), 200)
    assert again["id"] == created["id"]
    runner = api.system.recovery_runner
    assert runner is not None
    await run_to_end(api, runner)
    job = await api.get(f"{path}/{created['id']}")
    assert (job["state"], job["matched"], job["enqueued"], job["delivered"], job["failed"]) == (
        "completed",
        2,
        2,
        2,
        0,
    )
    attempts = await api.get("/attempts", params={"tenant_id": tenant, "dir": "asc"})
    sent = sorted((a["event_id"], a["attempt_number"], a["manual"]) for a in attempts["models"])
    assert sent == sorted(
        [(ids[0], 1, False), (ids[1], 1, False), (ids[1], 2, True), (ids[2], 1, True)]
    )
    assert await api.get(f"/tenants/{tenant}/undelivered") == {
        "models": [],
        "pagination": {"order_by": "time", "dir": "desc", "limit": 100, "next": None, "prev": None},
    }
    listing = await api.get(path, auth=await api.jwt(tenant))
    assert [j["id"] for j in listing["models"]] == [created["id"]]


async def test_cancel_stops_a_job_and_drops_what_it_queued(api: Api) -> None:
    tenant, _, _ = await scenario(api)
    path = f"/tenants/{tenant}/recoveries"
    created = ok(await api.call("POST", path, json={"status": "failed"}), 201)
    runner = api.system.recovery_runner
    assert runner is not None
    job = await runner.claim()
    assert job is not None
    job = await runner.step(job)  # counts
    assert job is not None
    job = await runner.step(job)  # queues the failed event's delivery
    assert job is not None and job.enqueued == 1
    cancelled = ok(await api.call("DELETE", f"{path}/{created['id']}"))
    assert (cancelled["state"], cancelled["pending"]) == ("cancelled", 0)
    assert await api.deliver_queued() == 0
    assert await runner.step(job) is None  # the runner's next step finds it cancelled
    assert_error(await api.call("DELETE", f"{path}/rcv_unknown"), 404)
    other = await api.tenant()
    assert_error(await api.call("GET", f"/tenants/{other}/recoveries/{created['id']}"), 404)


async def test_recovery_body_is_validated(api: Api) -> None:
    tenant = await api.tenant()
    path = f"/tenants/{tenant}/recoveries"
    for body in (
        {"status": "lost"},
        {"since": "yesterday"},
        {"topics": "a"},
        {"since": "2030-01-01T00:00:00Z", "until": "2029-01-01T00:00:00Z"},
        {"idempotency_key": ""},
    ):
        assert_error(await api.call("POST", path, json=body), 422)
    assert_error(await api.call("POST", path, json={"destination_id": "nope"}), 404)


async def test_a_test_event_reaches_the_destination_marked_as_a_test(api: Api) -> None:
    tenant = await api.tenant()
    d1 = (await api.destination(tenant, topics=["user.created", "user.deleted"]))["id"]
    path = f"/tenants/{tenant}/destinations/{d1}/test"
    sent = ok(await api.call("POST", path, auth=await api.jwt(tenant)), 202)
    assert (sent["topic"], sent["destination_id"], sent["test"]) == ("user.created", d1, True)
    assert await api.deliver_queued() == 1
    attempts = await api.get(
        "/attempts", params={"tenant_id": tenant, "event_id": sent["event_id"], "include": "event"}
    )
    [attempt] = attempts["models"]
    assert attempt["status"] == "success"
    assert attempt["event"]["metadata"] == {"outpost-test": "true"}
    # Test events are never among the undelivered, nor sent again by a recovery.
    assert (await api.get(f"/tenants/{tenant}/undelivered"))["models"] == []
    chosen = ok(await api.call("POST", path, json={"topic": "user.deleted", "data": {"a": 1}}), 202)
    assert chosen["topic"] == "user.deleted"
    assert_error(await api.call("POST", path, json={"topic": "order.paid"}), 422)
    ok(await api.call("PUT", f"/tenants/{tenant}/destinations/{d1}/disable"))
    assert_error(await api.call("POST", path), 400)
    assert_error(await api.call("POST", f"/tenants/{tenant}/destinations/nope/test"), 404)


async def test_a_job_whose_destination_is_deleted_completes_sending_nothing(api: Api) -> None:
    tenant, d1, _ = await scenario(api)
    created = ok(
        await api.call("POST", f"/tenants/{tenant}/recoveries", json={"destination_id": d1}), 201
    )
    ok(await api.call("DELETE", f"/tenants/{tenant}/destinations/{d1}"))
    runner = api.system.recovery_runner
    assert runner is not None
    await run_to_end(api, runner)
    job = await api.get(f"/tenants/{tenant}/recoveries/{created['id']}")
    assert (job["state"], job["matched"], job["enqueued"]) == ("completed", 0, 0)


async def test_jobs_appear_as_operator_events(make_api: MakeApi) -> None:
    api = await make_api(
        OPERATOR_EVENTS_TOPICS="recovery.job.created,recovery.job.completed,recovery.job.cancelled",
        OPERATOR_EVENTS_HTTP_URL="http://127.0.0.1:9/operator",
        OPERATOR_EVENTS_HTTP_SIGNING_SECRET="operator-secret",
    )
    tenant, d1, _ = await scenario(api)
    path = f"/tenants/{tenant}/recoveries"
    done = ok(await api.call("POST", path, json={"destination_id": d1}), 201)
    runner = api.system.recovery_runner
    assert runner is not None
    await run_to_end(api, runner)
    cancelled = ok(await api.call("POST", path, json={"status": "failed"}), 201)
    ok(await api.call("DELETE", f"{path}/{cancelled['id']}"))
    records = await api.system.backend.claim_operator_events(100, 60_000)
    told = [(r.topic, json.loads(r.body)) for r in records]
    assert [(topic, body["data"]["id"], body["tenant_id"]) for topic, body in told] == [
        ("recovery.job.created", done["id"], tenant),
        ("recovery.job.completed", done["id"], tenant),
        ("recovery.job.created", cancelled["id"], tenant),
        ("recovery.job.cancelled", cancelled["id"], tenant),
    ]
    assert told[1][1]["data"]["enqueued"] == 2
