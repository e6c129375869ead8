"""Regression scenarios, each on its own server instance (contract.md §10.3 Regressions).

Covered here: manual retry interacting with a RETRY_SCHEDULE, and the webhook response-body cap.
(Operator events, auto-disable, aws_s3 format errors and log-flush delays are other issues.)
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.api import create_webhook, publish, unique_id, wait_attempts
from support.receiver import Receiver
from support.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_manual_retry_takes_over_the_schedule(
    make_server: Callable[..., ServerProcess], receiver: Receiver
) -> None:
    """RETRY_SCHEDULE=2,4: attempt 1 (auto) fails → retry due in 2 s. A manual retry (attempt
    2) fails before that → the pending retry is replaced by the next tier, due 4 s later, as
    attempt 3. Attempt 3 fails → the budget (2 retries) is spent. Exactly [1 auto, 2 manual,
    3 auto]."""
    srv = make_server({"RETRY_SCHEDULE": "2,4", "RETRY_POLL_BACKOFF_MS": "50"})
    tenant = unique_id("sched-manual")
    path = receiver.new_path("sched-manual")
    with srv.admin_client() as admin, srv.http() as api:
        admin.tenants.upsert(tenant_id=tenant)
        dest = create_webhook(admin, tenant, receiver.configure(path, status=500))
        res = publish(admin, tenant, {"regression": "manual-retry-schedule"})

        receiver.wait_for(1, path=path)
        wait_attempts(api, 1, tenant_id=tenant, event_id=res.id)
        admin.retry(request={"event_id": res.id, "destination_id": dest.id})
        second = receiver.wait_for(2, path=path)[1]

        # bounded observation window: 2.5 s covers the moment (t0 + 2 s) the original
        # automatic retry was due; it must not fire
        receiver.assert_quiet(path, expected=2, window=2.5)

        third = receiver.wait_for(3, path=path, timeout=8)[2]
        gap = third.arrived_at - second.arrived_at
        assert 3.0 <= gap <= 7.0, f"attempt 3 came {gap:.2f}s after the manual attempt"

        # bounded observation window: 4.5 s, longer than the 4 s the last tier would reuse
        receiver.assert_quiet(path, expected=3, window=4.5)

        attempts = wait_attempts(api, 3, tenant_id=tenant, event_id=res.id, dir="asc", exact=True)
        assert [(a["attempt_number"], a["manual"]) for a in attempts] == [
            (1, False),
            (2, True),
            (3, False),
        ]
        assert all(a["status"] == "failed" for a in attempts)


def test_response_body_cap(make_server: Callable[..., ServerProcess], receiver: Receiver) -> None:
    srv = make_server({"DESTINATIONS_WEBHOOK_MAX_RESPONSE_BODY_BYTES": "1024"})
    tenant = unique_id("body-cap")
    bodies = {
        "big": "B" * 5000,
        "small": "small response body",
        "exact": "E" * 1024,
        "over": "O" * 1025,
    }
    with srv.admin_client() as admin, srv.http() as api:
        admin.tenants.upsert(tenant_id=tenant)
        dest_ids: dict[str, str] = {}
        paths: dict[str, str] = {}
        for name, body in bodies.items():
            paths[name] = receiver.new_path(f"cap-{name}")
            url = receiver.configure(paths[name], body=body)
            dest_ids[create_webhook(admin, tenant, url).id] = name

        res = publish(admin, tenant, {"cap": 1024})
        assert sorted(res.destination_ids) == sorted(dest_ids)
        for path in paths.values():
            receiver.wait_for(1, path=path)

        attempts = wait_attempts(
            api, len(bodies), tenant_id=tenant, include="response_data", timeout=15
        )
        by_name = {dest_ids[a["destination_id"]]: a for a in attempts}
        assert set(by_name) == set(bodies)
        for attempt in attempts:
            assert attempt["status"] == "success"
            assert attempt["code"] == "200"
        capped = "Response body exceeded 1024 bytes and was not stored"
        assert by_name["big"]["response_data"] == {"status": 200, "body": capped}
        assert by_name["over"]["response_data"] == {"status": 200, "body": capped}
        assert by_name["small"]["response_data"] == {"status": 200, "body": bodies["small"]}
        assert by_name["exact"]["response_data"] == {"status": 200, "body": bodies["exact"]}
