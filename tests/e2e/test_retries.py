"""Automatic and manual retries (contract.md §3.2 step 5, §3.3, §1.6.19, §10.3 Retries).

The module server runs with RETRY_INTERVAL_SECONDS=1 and MAX_RETRY_LIMIT=3 (the harness
defaults), so automatic retries come 1 s, 2 s, 4 s after each failure.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import httpx
import pytest
from outpost_sdk import Outpost, errors
from support.api import create_webhook, publish, unique_id, wait_attempts
from support.receiver import Receiver
from support.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SHOULD_ERR = {"should_err": "true"}


def test_failing_delivery_is_retried_with_increasing_attempt_numbers(
    admin: Outpost, api: httpx.Client, receiver: Receiver, tenant_id: str
) -> None:
    path = receiver.new_path("retry-fail")
    dest = create_webhook(admin, tenant_id, receiver.configure(path))

    res = publish(admin, tenant_id, {"retry": "me"}, eligible_for_retry=True, metadata=SHOULD_ERR)
    assert res.destination_ids == [dest.id]

    reqs = receiver.wait_for(3, path=path, timeout=15)
    assert all(r.status == 400 for r in reqs)  # the receiver refused each one
    assert {r.event_id for r in reqs} == {res.id}
    assert {r.body for r in reqs} == {b'{"retry":"me"}'}
    gaps = [b.arrived_at - a.arrived_at for a, b in itertools.pairwise(reqs)]
    # exponential backoff with a 1 s base: the 2nd attempt ~1 s after the 1st, the 3rd ~2 s later
    assert 0.9 <= gaps[0] <= 3.0, gaps
    assert 1.8 <= gaps[1] <= 4.5, gaps

    attempts = wait_attempts(api, 3, tenant_id=tenant_id, dir="asc")
    numbers = [a["attempt_number"] for a in attempts]
    assert numbers == list(range(1, len(numbers) + 1)), numbers
    assert all(a["status"] == "failed" for a in attempts)
    assert all(a["code"] == "400" for a in attempts)
    assert all(a["manual"] is False for a in attempts)
    assert all(a["event_id"] == res.id and a["destination_id"] == dest.id for a in attempts)


def test_event_not_eligible_for_retry_is_attempted_once(
    admin: Outpost, api: httpx.Client, receiver: Receiver, tenant_id: str
) -> None:
    path = receiver.new_path("no-retry")
    create_webhook(admin, tenant_id, receiver.configure(path))

    publish(admin, tenant_id, {"once": True}, eligible_for_retry=False, metadata=SHOULD_ERR)
    receiver.wait_for(1, path=path)
    # bounded observation window: 2.5 s, over twice the 1 s first retry delay
    receiver.assert_quiet(path, expected=1, window=2.5)
    [attempt] = wait_attempts(api, 1, tenant_id=tenant_id)
    assert attempt["status"] == "failed"


def test_delivery_succeeds_once_the_receiver_recovers(
    admin: Outpost, api: httpx.Client, receiver: Receiver, tenant_id: str
) -> None:
    path = receiver.new_path("recover")
    create_webhook(admin, tenant_id, receiver.configure(path, fail_first=2, fail_status=503))

    res = publish(admin, tenant_id, {"eventually": "ok"})
    reqs = receiver.wait_for(3, path=path, timeout=15)
    assert [r.status for r in reqs] == [503, 503, 200]

    attempts = wait_attempts(api, 3, tenant_id=tenant_id, event_id=res.id, dir="asc")
    assert [(a["attempt_number"], a["status"], a["code"]) for a in attempts] == [
        (1, "failed", "503"),
        (2, "failed", "503"),
        (3, "success", "200"),
    ]
    # bounded observation window: after the success no further attempt (next tier would be 4 s)
    receiver.assert_quiet(path, expected=3, window=1.5)


def test_retry_schedule_bounds_the_number_of_attempts(
    make_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    srv = make_server({"RETRY_SCHEDULE": "1,1", "RETRY_POLL_BACKOFF_MS": "50"})
    tenant = unique_id("schedule")
    path = receiver.new_path("schedule")
    with srv.admin_client() as admin, srv.http() as api:
        admin.tenants.upsert(tenant_id=tenant)
        create_webhook(admin, tenant, receiver.configure(path, status=500))
        publish(admin, tenant, {"schedule": [1, 1]})

        receiver.wait_for(3, path=path, timeout=10)
        # bounded observation window: 2.5 s, over twice the last 1 s schedule entry
        receiver.assert_quiet(path, expected=3, window=2.5)
        attempts = wait_attempts(api, 3, tenant_id=tenant, dir="asc", exact=True)
        assert [a["attempt_number"] for a in attempts] == [1, 2, 3]


def test_manual_retry_after_success(
    admin: Outpost, api: httpx.Client, receiver: Receiver, tenant_id: str
) -> None:
    path = receiver.new_path("manual-ok")
    dest = create_webhook(admin, tenant_id, receiver.configure(path))
    res = publish(admin, tenant_id, {"manual": 1})
    receiver.wait_for(1, path=path)
    wait_attempts(api, 1, tenant_id=tenant_id, event_id=res.id)

    ok = admin.retry(request={"event_id": res.id, "destination_id": dest.id})
    assert ok.success is True

    [first, second] = receiver.wait_for(2, path=path)
    assert second.event_id == first.event_id == res.id
    assert second.body == first.body
    attempts = wait_attempts(api, 2, tenant_id=tenant_id, event_id=res.id, dir="asc")
    assert [(a["attempt_number"], a["manual"]) for a in attempts] == [(1, False), (2, True)]
    assert all(a["status"] == "success" for a in attempts)
    receiver.assert_quiet(path, expected=2, window=0.5)


def test_two_manual_retries(
    admin: Outpost, api: httpx.Client, receiver: Receiver, tenant_id: str
) -> None:
    path = receiver.new_path("manual-twice")
    dest = create_webhook(admin, tenant_id, receiver.configure(path))
    res = publish(admin, tenant_id, {"manual": 2})
    wait_attempts(api, 1, tenant_id=tenant_id, event_id=res.id)

    admin.retry(request={"event_id": res.id, "destination_id": dest.id})
    wait_attempts(api, 2, tenant_id=tenant_id, event_id=res.id)
    admin.retry(request={"event_id": res.id, "destination_id": dest.id})

    receiver.wait_for(3, path=path)
    attempts = wait_attempts(api, 3, tenant_id=tenant_id, event_id=res.id, dir="asc")
    assert [a["attempt_number"] for a in attempts] == [1, 2, 3]
    assert sum(1 for a in attempts if a["manual"]) == 2
    assert attempts[0]["manual"] is False


def test_manual_retry_to_disabled_destination_is_rejected(
    admin: Outpost, api: httpx.Client, receiver: Receiver, tenant_id: str
) -> None:
    path = receiver.new_path("manual-disabled")
    dest = create_webhook(admin, tenant_id, receiver.configure(path))
    res = publish(admin, tenant_id, {"manual": "disabled"})
    wait_attempts(api, 1, tenant_id=tenant_id, event_id=res.id)
    admin.destinations.disable(tenant_id=tenant_id, destination_id=dest.id)

    with pytest.raises(errors.OutpostError) as info:
        admin.retry(request={"event_id": res.id, "destination_id": dest.id})
    assert info.value.status_code == 400
    body = info.value.raw_response.json()
    assert body["status"] == 400
    assert body["message"] == "Destination is disabled"
    receiver.assert_quiet(path, expected=1, window=0.5)


def test_manual_retry_of_unknown_event_is_404(
    admin: Outpost, receiver: Receiver, tenant_id: str
) -> None:
    dest = create_webhook(admin, tenant_id, receiver.configure(receiver.new_path("unknown")))
    with pytest.raises(errors.NotFoundError) as info:
        admin.retry(request={"event_id": unique_id("nope"), "destination_id": dest.id})
    assert info.value.status_code == 404
