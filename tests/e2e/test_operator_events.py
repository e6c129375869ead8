"""Operator events and alerts (contract.md §7.4, §10.3 "Operator events" and the auto-disable
regression), against real `waypost serve` processes and a real HTTP sink (the loopback receiver)
that checks every `X-Outpost-Signature`.

One server, shared by the module, sends every topic to the sink with N=20 and auto-disable on;
tests tell their events apart by tenant. The auto-disable regression (no sink at all) and the
kill -9 test start servers of their own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from outpost_sdk import Outpost
from support.api import create_webhook, publish, unique_id, wait_attempts
from support.receiver import Receiver
from support.server import ServerProcess
from support.waiting import poll_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SINK_SECRET = "operator-sink-secret-0123456789"
FAILURES = 20
ALERTING_ENV = {
    "OPERATOR_EVENTS_TOPICS": "*",
    "OPERATOR_EVENTS_HTTP_SIGNING_SECRET": SINK_SECRET,
    "ALERT_CONSECUTIVE_FAILURE_COUNT": str(FAILURES),
    "ALERT_AUTO_DISABLE_DESTINATION": "true",
    "MAX_RETRY_LIMIT": "3",
    "RETRY_INTERVAL_SECONDS": "1",
    "RETRY_POLL_BACKOFF_MS": "100",
}


@pytest.fixture(scope="module")
def sink_path(receiver: Receiver) -> str:
    path = receiver.new_path("operator-sink")
    receiver.configure(path, secret=SINK_SECRET)
    return path


@pytest.fixture(scope="module")
def opserver(
    receiver: Receiver, sink_path: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {**ALERTING_ENV, "OPERATOR_EVENTS_HTTP_URL": receiver.url(sink_path)}
    srv = ServerProcess(env, workdir=tmp_path_factory.mktemp("operator"))
    try:
        yield srv.start()
    finally:
        srv.close()


@pytest.fixture(scope="module")
def admin(opserver: ServerProcess) -> Iterator[Outpost]:
    with opserver.admin_client() as client:
        yield client


@pytest.fixture(scope="module")
def api(opserver: ServerProcess) -> Iterator[httpx.Client]:
    with opserver.http() as client:
        yield client


@pytest.fixture
def tenant(request: pytest.FixtureRequest, admin: Outpost) -> str:
    tenant_id = unique_id(request.node.name)
    admin.tenants.upsert(tenant_id=tenant_id)
    return tenant_id


def operator_events(
    receiver: Receiver, sink: str, tenant_id: str, topic: str | None = None
) -> list[dict[str, Any]]:
    """The envelopes the sink got for this tenant (and topic), each signature checked."""
    found = []
    for request in receiver.requests_for(sink):
        envelope = json.loads(request.body)
        if envelope.get("tenant_id") != tenant_id or topic not in (None, envelope["topic"]):
            continue
        assert request.verified, f"bad X-Outpost-Signature on {envelope['topic']}"
        assert request.header("content-type") == "application/json"
        assert {"id", "topic", "time", "data"} <= set(envelope)
        found.append(envelope)
    return found


def wait_operator_events(
    receiver: Receiver,
    sink: str,
    tenant_id: str,
    topic: str,
    count: int = 1,
    timeout: float = 20.0,
) -> list[dict[str, Any]]:
    def probe() -> list[dict[str, Any]] | None:
        found = operator_events(receiver, sink, tenant_id, topic)
        return found if len(found) >= count else None

    return poll_until(probe, timeout=timeout, what=f"{count} × {topic} for {tenant_id}")


def wait_disabled(api: httpx.Client, tenant_id: str, destination_id: str, timeout: float) -> str:
    def probe() -> str | None:
        res = api.get(f"/tenants/{tenant_id}/destinations/{destination_id}")
        assert res.status_code == 200, res.text
        disabled_at: str | None = res.json().get("disabled_at")
        return disabled_at

    return poll_until(probe, timeout=timeout, what=f"destination {destination_id} disabled")


def failing_publishes(admin: Outpost, tenant_id: str, count: int) -> None:
    for n in range(count):
        publish(admin, tenant_id, {"failure": n}, eligible_for_retry=False)


def test_consecutive_failures_alert_then_disable(
    admin: Outpost, api: httpx.Client, receiver: Receiver, sink_path: str, tenant: str
) -> None:
    path = receiver.new_path("always-fails")
    dest = create_webhook(admin, tenant, receiver.configure(path, status=500))

    failing_publishes(admin, tenant, FAILURES)

    wait_disabled(api, tenant, dest.id, timeout=15)
    [disabled] = wait_operator_events(receiver, sink_path, tenant, "alert.destination.disabled")
    assert disabled["data"]["reason"] == "consecutive_failure"
    assert disabled["data"]["destination"]["id"] == dest.id
    assert disabled["data"]["destination"]["disabled_at"]
    alerts = wait_operator_events(
        receiver, sink_path, tenant, "alert.destination.consecutive_failure", count=4
    )
    levels = sorted(
        (
            a["data"]["consecutive_failures"]["current"],
            a["data"]["consecutive_failures"]["threshold"],
        )
        for a in alerts
    )
    assert levels == [(10, 50), (14, 70), (18, 90), (20, 100)]
    for alert in alerts:
        assert alert["data"]["tenant_id"] == tenant
        assert alert["data"]["destination"]["id"] == dest.id
        counts = alert["data"]["consecutive_failures"]
        assert counts["max"] == FAILURES
        assert counts["remaining"] == FAILURES - counts["current"]
    failed = wait_operator_events(receiver, sink_path, tenant, "attempt.failed", count=FAILURES)
    assert len(failed) == FAILURES
    # disabled: the next event is not delivered
    publish(admin, tenant, {"after": "disabled"}, eligible_for_retry=False)
    receiver.assert_quiet(path, expected=FAILURES, window=1.0)


def test_a_success_resets_the_count(
    admin: Outpost, api: httpx.Client, receiver: Receiver, sink_path: str, tenant: str
) -> None:
    path = receiver.new_path("flaky")
    dest = create_webhook(admin, tenant, receiver.configure(path, status=500))
    failing_publishes(admin, tenant, FAILURES - 1)
    receiver.wait_for(FAILURES - 1, path=path)
    wait_operator_events(receiver, sink_path, tenant, "attempt.failed", count=FAILURES - 1)

    receiver.set_status(path, 200)
    publish(admin, tenant, {"works": True})
    wait_operator_events(receiver, sink_path, tenant, "attempt.success")
    receiver.set_status(path, 500)
    failing_publishes(admin, tenant, 1)
    wait_operator_events(receiver, sink_path, tenant, "attempt.failed", count=FAILURES)

    res = api.get(f"/tenants/{tenant}/destinations/{dest.id}")
    assert res.json()["disabled_at"] is None


def test_exhausted_retries_at_attempt_four(
    admin: Outpost, receiver: Receiver, sink_path: str, tenant: str
) -> None:
    path = receiver.new_path("exhausts")
    create_webhook(admin, tenant, receiver.configure(path, status=500))

    publish(admin, tenant, {"retry": "until exhausted"}, eligible_for_retry=True)

    receiver.wait_for(4, path=path, timeout=20)
    [alert] = wait_operator_events(receiver, sink_path, tenant, "alert.attempt.exhausted_retries")
    assert alert["data"]["attempt"]["attempt_number"] == 4
    assert alert["data"]["attempt"]["status"] == "failed"
    assert alert["data"]["event"]["data"] == {"retry": "until exhausted"}


def test_subscription_updates(
    admin: Outpost, api: httpx.Client, receiver: Receiver, sink_path: str, tenant: str
) -> None:
    topic = "tenant.subscription.updated"
    dest = create_webhook(admin, tenant, receiver.url("/unused"), topics=["user.created"])
    [created] = wait_operator_events(receiver, sink_path, tenant, topic)
    assert created["data"]["previous_destinations_count"] == 0
    assert created["data"]["destinations_count"] == 1
    assert created["data"]["topics"] == ["user.created"]
    assert created["data"]["previous_topics"] == []

    # Outpost's test PATCHes without a `type` field
    res = api.patch(f"/tenants/{tenant}/destinations/{dest.id}", json={"topics": ["user.deleted"]})
    assert res.status_code == 200, res.text
    updated = wait_operator_events(receiver, sink_path, tenant, topic, count=2)[1]
    assert updated["data"]["topics"] == ["user.deleted"]
    assert updated["data"]["previous_topics"] == ["user.created"]

    # disabling leaves the tenant's topics and count as they are: nothing to tell
    assert api.put(f"/tenants/{tenant}/destinations/{dest.id}/disable").status_code == 200
    admin.destinations.delete(tenant_id=tenant, destination_id=dest.id)
    deleted = wait_operator_events(receiver, sink_path, tenant, topic, count=3)[2]
    assert deleted["data"]["destinations_count"] == 0
    assert deleted["data"]["previous_destinations_count"] == 1
    assert deleted["data"]["topics"] == []
    assert len(operator_events(receiver, sink_path, tenant, topic)) == 3


def test_a_webhook_answering_410_is_disabled_at_once(
    admin: Outpost, api: httpx.Client, receiver: Receiver, sink_path: str, tenant: str
) -> None:
    path = receiver.new_path("gone")
    dest = create_webhook(admin, tenant, receiver.configure(path, status=410))

    publish(admin, tenant, {"anyone": "there?"})

    wait_disabled(api, tenant, dest.id, timeout=10)
    [disabled] = wait_operator_events(receiver, sink_path, tenant, "alert.destination.disabled")
    assert disabled["data"]["reason"] == "gone"
    assert disabled["data"]["attempt"]["code"] == "410"
    receiver.assert_quiet(path, expected=1, window=1.5)  # its retry (1 s) is dropped: disabled


def test_auto_disable_needs_no_sink(
    make_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    """Regression: 21 failing events, N=20, no operator events configured → disabled."""
    srv = make_server(
        {"ALERT_CONSECUTIVE_FAILURE_COUNT": "20", "ALERT_AUTO_DISABLE_DESTINATION": "true"}
    )
    tenant = unique_id("no-sink")
    path = receiver.new_path("no-sink")
    with srv.admin_client() as admin, srv.http() as api:
        admin.tenants.upsert(tenant_id=tenant)
        dest = create_webhook(admin, tenant, receiver.configure(path, status=500))
        failing_publishes(admin, tenant, FAILURES + 1)
        wait_disabled(api, tenant, dest.id, timeout=15)


def test_operator_events_survive_kill_9(
    make_server: Callable[..., ServerProcess], receiver: Receiver, tmp_path: Path
) -> None:
    """Events queued while the sink is down are sent after a crash and restart (at least once)."""
    sink = receiver.new_path("crash-sink")
    receiver.configure(sink, status=503, secret=SINK_SECRET)
    env = {**ALERTING_ENV, "OPERATOR_EVENTS_HTTP_URL": receiver.url(sink)}
    srv = make_server({**env, "DELIVERY_LEASE_SECONDS": "10"})
    tenant = unique_id("crash")
    path = receiver.new_path("crash-dest")
    with srv.admin_client() as admin, srv.http() as api:
        admin.tenants.upsert(tenant_id=tenant)
        create_webhook(admin, tenant, receiver.configure(path), topics=["user.created"])
        published = [publish(admin, tenant, {"n": n}).id for n in range(5)]
        wait_attempts(api, 5, tenant_id=tenant)  # recorded: their events are in the outbox
    # the sink refused at least one send, so the events sit in the outbox, due again later
    poll_until(lambda: len(receiver.requests_for(sink)) >= 2, what="sink refusals")

    srv.kill()
    receiver.set_status(sink, 200)
    srv.start()

    successes = wait_operator_events(receiver, sink, tenant, "attempt.success", count=5, timeout=60)
    assert {e["data"]["event"]["id"] for e in successes} == set(published)
    wait_operator_events(receiver, sink, tenant, "tenant.subscription.updated", timeout=60)
