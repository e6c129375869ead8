"""Fair delivery and flow control per destination (delivery/flow.py), against a real receiver.

The module server has 16 delivery slots (so a destination may hold 2 and a tenant 8, beyond which
they may borrow only while more than 4 slots are free), a 2 s
delivery timeout, a circuit that opens after 2 consecutive timeouts, and a retry schedule of
30 s then 90 s, so no automatic retry lands inside a test unless Retry-After brings it forward.
"""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest
from outpost_sdk import Outpost
from support.api import (
    create_webhook,
    get_webhook,
    publish,
    unique_id,
    wait_attempts,
)
from support.receiver import Receiver
from support.waiting import poll_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

TIMEOUT_S = 2.0
SERVER_ENV = {
    "DELIVERY_MAX_CONCURRENCY": "16",
    "DELIVERY_TIMEOUT_SECONDS": str(TIMEOUT_S),
    "DELIVERY_CIRCUIT_FAILURE_THRESHOLD": "2",
    "RETRY_SCHEDULE": "30,90",
}
HANG_S = TIMEOUT_S + 3  # the receiver holds these requests past the server's timeout


def _tenant(admin: Outpost, label: str) -> str:
    tenant_id = unique_id(label)
    admin.tenants.upsert(tenant_id=tenant_id)
    return tenant_id


def test_a_tenants_hanging_endpoints_do_not_delay_another_tenant(
    admin: Outpost, api: httpx.Client, receiver: Receiver
) -> None:
    noisy = _tenant(admin, "noisy")
    hanging = receiver.new_path("hang")
    url = receiver.configure(hanging, delay=HANG_S)
    for _ in range(20):  # every one of them never answers in time
        create_webhook(admin, noisy, url)
    for n in range(3):  # 60 deliveries, far more than the 16 slots
        publish(admin, noisy, {"n": n})
    receiver.wait_for(8, path=hanging, timeout=10)  # they hold their slots now

    quiet = _tenant(admin, "quiet")
    healthy = receiver.new_path("healthy")
    create_webhook(admin, quiet, receiver.configure(healthy))
    sent = time.monotonic()
    publish(admin, quiet, {"quiet": True})
    [request] = receiver.wait_for(1, path=healthy, timeout=TIMEOUT_S * 0.75)
    assert request.arrived_at - sent < TIMEOUT_S * 0.75, "delivered while the noisy ones hang"
    # The noisy tenant never held the reserved quarter of the slots (16 - 4).
    starts = [r.arrived_at for r in receiver.requests_for(hanging)]
    overlap = max(sum(1 for b in starts if a <= b < a + TIMEOUT_S * 0.9) for a in starts)
    assert overlap <= 12, overlap


def test_an_open_circuit_lets_one_probe_through_and_nothing_is_lost(
    admin: Outpost, api: httpx.Client, receiver: Receiver
) -> None:
    tenant = _tenant(admin, "circuit")
    path = receiver.new_path("circuit")
    url = receiver.configure(path, delay=HANG_S)
    own_cap = {"outpost.max_concurrency": "2"}  # its own cap: never exceeded
    destination = create_webhook(admin, tenant, url, metadata=own_cap)
    events = [publish(admin, tenant, {"n": n}).id for n in range(6)]

    first_two = receiver.wait_for(2, path=path, timeout=10)  # the cap: 2 at once, both time out
    probe = receiver.wait_for(3, path=path, timeout=10)[2]
    assert probe.arrived_at - first_two[1].arrived_at >= TIMEOUT_S * 0.9, "after the timeouts"
    # Open: one probe in flight at a time, so no fourth request before the probe timed out.
    time.sleep(TIMEOUT_S * 0.8)
    assert len(receiver.requests_for(path)) == 3
    receiver.configure(path)  # the endpoint recovers: the next probe closes the circuit

    def all_delivered() -> bool | None:
        answered = {r.event_id for r in receiver.requests_for(path) if r.status == 200}
        return True if answered >= set(events) else None

    poll_until(all_delivered, timeout=90, what="every event delivered after recovery")
    # Waiting for the circuit is not an attempt: one attempt per request the endpoint saw.
    requests = receiver.requests_for(path)
    # An attempt is recorded just after its request is answered: wait for the last records.
    attempts = wait_attempts(
        api, len(requests), exact=True, tenant_id=tenant, destination_id=destination.id
    )
    assert {(a["event_id"], a["attempt_number"]) for a in attempts if a["status"] == "failed"} <= {
        (e, 1) for e in events
    }, "a timeout is attempt 1 of its event; no attempt was spent on waiting"


def test_rate_limited_deliveries_arrive_spaced_and_are_not_failed_attempts(
    admin: Outpost, api: httpx.Client, receiver: Receiver
) -> None:
    tenant = _tenant(admin, "rate")
    path = receiver.new_path("rate")
    limits = {"outpost.rate_limit_per_second": "4", "outpost.max_concurrency": "1"}
    destination = create_webhook(admin, tenant, receiver.configure(path), metadata=limits)
    assert get_webhook(admin, tenant, destination.id).metadata == limits  # the SDK keeps them

    for n in range(8):
        publish(admin, tenant, {"n": n})
    requests = receiver.wait_for(8, path=path, timeout=20)
    gaps = [b.arrived_at - a.arrived_at for a, b in itertools.pairwise(requests)]
    assert min(gaps) >= 0.2, gaps  # 4 per second: 250 ms apart (timer slack allowed)
    assert requests[-1].arrived_at - requests[0].arrived_at >= 7 * 0.2
    attempts = wait_attempts(api, 8, exact=True, tenant_id=tenant)
    assert {(a["status"], a["attempt_number"]) for a in attempts} == {("success", 1)}


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_retry_after_of_a_429_sets_the_next_automatic_retry(
    admin: Outpost, api: httpx.Client, receiver: Receiver, form: str
) -> None:
    tenant = _tenant(admin, "retry-after")
    path = receiver.new_path("429")
    if form == "seconds":
        value = "2"
    else:  # an HTTP-date 3 s ahead (whole seconds: between 2 and 3 s from now)
        value = format_datetime(datetime.fromtimestamp(time.time() + 3, tz=UTC), usegmt=True)
    url = receiver.configure(path, fail_first=1, fail_status=429, headers=(("Retry-After", value),))
    create_webhook(admin, tenant, url)
    publish(admin, tenant, {"limited": True}, eligible_for_retry=True)

    first, second = receiver.wait_for(2, path=path, timeout=15)  # the schedule says 30 s
    assert first.status == 429 and second.status == 200
    assert 1.0 <= second.arrived_at - first.arrived_at <= 8.0
    attempts = wait_attempts(api, 2, exact=True, tenant_id=tenant, dir="asc")
    assert [(a["attempt_number"], a["status"], a["code"]) for a in attempts] == [
        (1, "failed", "429"),
        (2, "success", "200"),
    ]


@pytest.mark.parametrize(
    "metadata",
    [
        {"outpost.max_concurrency": "0"},
        {"outpost.max_concurrency": "lots"},
        {"outpost.rate_limit_per_second": "-1"},
        {"outpost.rate_limit_per_second": "fast"},
    ],
)
def test_bad_flow_limits_are_refused_with_422(
    api: httpx.Client, admin: Outpost, metadata: dict[str, str], receiver: Receiver
) -> None:
    tenant = _tenant(admin, "bad-limits")
    body = {"type": "webhook", "topics": "*", "config": {"url": receiver.url("/x")}}
    res = api.post(f"/tenants/{tenant}/destinations", json={**body, "metadata": metadata})
    assert res.status_code == 422, res.text
    error = res.json()
    assert error["status"] == 422 and next(iter(metadata)) in str(error["data"])
    created = api.post(f"/tenants/{tenant}/destinations", json=body).json()
    patched = api.patch(
        f"/tenants/{tenant}/destinations/{created['id']}", json={"metadata": metadata}
    )
    assert patched.status_code == 422, patched.text
