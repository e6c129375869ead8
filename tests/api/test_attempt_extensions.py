"""The attempt's read-only extensions (waypost/api/openapi.yaml): `next_attempt_at`, when
the automatic retry a failed attempt scheduled is due, and `request_headers`, what it sent."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from waypost.core.models import Attempt, DeliveryTask, Outcome
from waypost.core.timefmt import format_ms

from ._support import Api, unique

pytestmark = pytest.mark.anyio

HOUR = 3_600_000
SENT = {"Content-Type": "application/json", "X-Outpost-Signature": "v0=abc", "Authorization": "*"}


async def _claim(api: Api) -> list[DeliveryTask]:
    return await api.system.backend.claim(1000, 60_000)


def _failed(task: DeliveryTask, **fields: Any) -> Attempt:
    return Attempt(
        id=unique("atm"),
        tenant_id=task.event.tenant_id,
        event_id=task.event.id,
        destination_id=task.destination_id,
        destination_type="webhook",
        topic=task.event.topic,
        status="failed",
        time=int(time.time() * 1000),
        attempt_number=task.attempt_number,
        manual=task.manual,
        code="503",
        **fields,
    )


async def test_a_failed_attempt_says_when_its_retry_is_due_until_that_retry_runs(api: Api) -> None:
    tenant = await api.tenant()
    destination = (await api.destination(tenant))["id"]
    event_id = (await api.publish(tenant))["id"]
    [first] = await _claim(api)
    due = int(time.time() * 1000) + HOUR
    failed = _failed(first, request_headers=SENT)
    await api.system.backend.finish([Outcome(first, failed, retry_at=due)])
    auth = await api.jwt(tenant)

    listed = await api.get("/attempts", auth=auth)
    [shown] = listed["models"]
    assert (shown["id"], shown["next_attempt_at"]) == (failed.id, format_ms(due))
    assert shown["request_headers"] == SENT
    one = await api.get(f"/tenants/{tenant}/destinations/{destination}/attempts/{failed.id}")
    assert one["next_attempt_at"] == format_ms(due)
    assert one["request_headers"] == SENT

    # A manual retry that fails again schedules attempt 3: the earlier attempt's retry became
    # this one's, and only this one says when.
    await api.system.backend.enqueue_manual(first.event, destination, 2)
    [manual] = await _claim(api)
    again = dataclasses.replace(_failed(manual), attempt_number=2)
    await api.system.backend.finish([Outcome(manual, again, retry_at=due + 1)])
    shown_by_id = {
        a["id"]: a for a in (await api.get("/attempts", params={"event_id": event_id}))["models"]
    }
    assert shown_by_id[failed.id]["next_attempt_at"] is None
    assert shown_by_id[again.id]["next_attempt_at"] == format_ms(due + 1)
    assert shown_by_id[again.id]["request_headers"] is None


async def test_an_attempt_with_no_retry_pending_says_null(api: Api) -> None:
    tenant = await api.tenant()
    await api.destination(tenant)
    await api.publish(tenant)
    assert await api.deliver_queued(failed=True) == 1  # no retry scheduled
    [shown] = (await api.get("/attempts", params={"tenant_id": tenant}))["models"]
    assert shown["status"] == "failed"
    assert (shown["next_attempt_at"], shown["request_headers"]) == (None, None)
