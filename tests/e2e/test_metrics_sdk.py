"""The metrics API through the official Python SDK (`outpost_sdk` 1.7.0, unmodified), end to end.

A real `waypost serve` delivers to a real receiver: one destination answers 200, the other 500
(so its events are retried); then `metrics.get_event_metrics` / `metrics.get_attempt_metrics`
are called as a platform (API key) and as the tenant's portal (its JWT) would call them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from outpost_sdk import Outpost, errors, models
from support.api import create_webhook, publish, unique_id, wait_attempts
from support.receiver import Receiver
from support.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

# Retries one second apart, at most one: every event to the failing destination has two attempts.
SERVER_ENV = {"RETRY_SCHEDULE": "1", "RETRY_POLL_BACKOFF_MS": "100"}


def test_metrics_through_the_sdk(
    server: ServerProcess, admin: Outpost, api: httpx.Client, receiver: Receiver
) -> None:
    tenant = unique_id("metrics")
    admin.tenants.upsert(tenant_id=tenant)
    good = create_webhook(admin, tenant, receiver.configure(receiver.new_path("ok")))
    bad = create_webhook(
        admin,
        tenant,
        receiver.configure(receiver.new_path("fail"), status=500),
        topics=["user.deleted"],
    )
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    for topic in ("user.created", "user.created", "user.deleted"):
        publish(admin, tenant, {"n": 1}, topic=topic)
    # 3 deliveries to `good`, 1 + 1 retry to `bad`.
    wait_attempts(api, 5, tenant_id=tenant, exact=True, timeout=30)
    end = datetime.now(UTC) + timedelta(minutes=1)

    event_query: models.GetEventMetricsRequestTypedDict = {
        "time": {"start": start, "end": end},
        "measures": [
            models.GetEventMetricsMeasuresEnum2.COUNT,
            models.GetEventMetricsMeasuresEnum2.RATE,
        ],
        "dimensions": [models.GetEventMetricsDimensionsEnum2.TOPIC],
        "filters_tenant_id": tenant,
    }
    events = admin.metrics.get_event_metrics(request=event_query)
    assert events.data is not None and events.metadata is not None
    counts = {
        p.dimensions["topic"]: p.metrics["count"] for p in events.data if p.dimensions and p.metrics
    }
    assert counts == {"user.deleted": 1, "user.created": 2}
    assert events.metadata.row_count == 2 and events.metadata.truncated is False

    measure, dimension = (
        models.GetAttemptMetricsMeasuresEnum2,
        models.GetAttemptMetricsDimensionsEnum2,
    )
    attempt_query: models.GetAttemptMetricsRequestTypedDict = {
        "time": {"start": start, "end": end},
        "measures": [measure.COUNT, measure.FAILED_COUNT, measure.ERROR_RATE, measure.RETRY_COUNT],
        "dimensions": [dimension.DESTINATION_ID, dimension.ATTEMPT_NUMBER],
        "granularity": "1h",
        "filters_tenant_id": tenant,
    }
    attempts = admin.metrics.get_attempt_metrics(request=attempt_query)
    assert attempts.data is not None
    seen = {
        (p.dimensions["destination_id"], p.dimensions["attempt_number"]): p.metrics
        for p in attempts.data
        if p.dimensions and p.metrics and p.metrics["count"]
    }
    assert seen == {
        (good.id, "1"): {"count": 3, "failed_count": 0, "error_rate": 0.0, "retry_count": 0},
        (bad.id, "1"): {"count": 1, "failed_count": 1, "error_rate": 1.0, "retry_count": 0},
        (bad.id, "2"): {"count": 1, "failed_count": 1, "error_rate": 1.0, "retry_count": 1},
    }
    assert all(p.time_bucket is not None for p in attempts.data)

    token = admin.tenants.get_token(tenant_id=tenant).token
    assert token is not None
    with server.tenant_client(token) as portal:
        own = portal.metrics.get_attempt_metrics(
            request={"time": {"start": start, "end": end}, "measures": ["count", "error_rate"]}
        )
        assert own.data is not None
        assert [p.metrics for p in own.data] == [{"count": 5, "error_rate": 0.4}]
        with pytest.raises(errors.APIErrorResponse) as forbidden:
            portal.metrics.get_event_metrics(
                request={
                    "time": {"start": start, "end": end},
                    "measures": "count",
                    "dimensions": "tenant_id",
                }
            )
        assert forbidden.value.status_code == 403
        with pytest.raises(errors.BadRequestError) as bad_request:
            portal.metrics.get_event_metrics(
                request={"time": {"start": end, "end": start}, "measures": "count"}
            )
        assert bad_request.value.message == "invalid time range: start must be before end"
