"""Log retention in a running server: `LOG_RETENTION_TTL_DAYS` sweeps in the background.

The server sweeps every second here. An event published with a time three days back that
matched no destination is past the one-day period and goes; one as old that was delivered has
a fresh attempt, so it stays with it (an attempt that is kept shows its event).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from outpost_sdk import Outpost
from support.api import create_webhook, publish, unique_id, wait_attempts
from support.receiver import Receiver
from support.server import ServerProcess
from support.waiting import poll_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SERVER_ENV = {"LOG_RETENTION_TTL_DAYS": "1", "LOG_RETENTION_INTERVAL_SECONDS": "1"}


def test_old_logs_are_swept_and_needed_ones_kept(
    server: ServerProcess, admin: Outpost, api: httpx.Client, receiver: Receiver
) -> None:
    tenant = unique_id("retention")
    admin.tenants.upsert(tenant_id=tenant)
    create_webhook(
        admin, tenant, receiver.configure(receiver.new_path("ok")), topics=["user.created"]
    )
    long_ago = datetime.now(UTC) - timedelta(days=3)
    unmatched = publish(admin, tenant, {"n": 1}, topic="user.deleted", time=long_ago)
    delivered = publish(admin, tenant, {"n": 2}, topic="user.created", time=long_ago)
    assert unmatched.destination_ids == [] and len(delivered.destination_ids) == 1
    wait_attempts(api, 1, tenant_id=tenant, timeout=20)

    poll_until(
        lambda: api.get(f"/events/{unmatched.id}").status_code == 404 or None,
        timeout=20,
        what="the old event swept",
    )
    # The sweep logs once it has ended (its connection closed), a moment after the 404.
    poll_until(
        lambda: "retention: deleted 1 events and 0 attempts" in server.log_text(),
        timeout=10,
        what="the sweep's log line",
    )
    assert api.get(f"/events/{delivered.id}").status_code == 200
    wait_attempts(api, 1, tenant_id=tenant, exact=True, timeout=1)
