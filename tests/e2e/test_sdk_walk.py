"""Every operation of `outpost_sdk` 1.7.0, walked against a real server as a user of the SDK would.

One tenant gets two webhook destinations (one answering 200, one 500 and retried once) and a few
events; then each SDK namespace is called with every value of its enums and every `include`
option, and what comes back is checked against what the SDK's models and docstrings document:
attempt latency, latency metrics, page limits, retry rules, 404s for unknown or deleted
destinations, the health status, and 404 in Outpost's error shape for the managed-only
operations (operator events, configuration) that Outpost's open-source server does not serve.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
from outpost_sdk import Outpost, errors, models
from support.api import create_webhook, publish, unique_id, wait_attempts
from support.receiver import Receiver
from support.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

TOPICS = ["user.created", "user.deleted"]
# Retries one second apart, at most one: each event to the failing destination has two attempts.
SERVER_ENV = {"TOPICS": ",".join(TOPICS), "RETRY_SCHEDULE": "1", "RETRY_POLL_BACKOFF_MS": "100"}
INCLUDES = ["event", "event.data", "response_data", "destination"]


@dataclass(frozen=True)
class World:
    tenant: str
    good: models.DestinationWebhook  # answers 200: user.created
    bad: models.DestinationWebhook  # answers 500: user.deleted, retried once
    created: list[str]  # event ids
    deleted: str
    start: datetime
    end: datetime


@pytest.fixture(scope="module")
def world(admin: Outpost, api: httpx.Client, receiver: Receiver) -> World:
    tenant = unique_id("walk")
    admin.tenants.upsert(tenant_id=tenant)
    good = create_webhook(
        admin, tenant, receiver.configure(receiver.new_path("walk-ok")), topics=["user.created"]
    )
    bad = create_webhook(
        admin,
        tenant,
        receiver.configure(receiver.new_path("walk-fail"), status=500),
        topics=["user.deleted"],
    )
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    created = [str(publish(admin, tenant, {"n": n}).id) for n in range(3)]
    deleted = str(publish(admin, tenant, {"n": 9}, topic="user.deleted").id)
    wait_attempts(api, 5, tenant_id=tenant, exact=True, timeout=30)  # 3 + 1 + its retry
    end = datetime.now(UTC) + timedelta(minutes=1)
    return World(tenant, good, bad, created, deleted, start, end)


def error_body(exc: errors.OutpostError) -> dict[str, Any]:
    """Outpost's error shape: `{status, message[, data]}` with status = the HTTP status."""
    body: dict[str, Any] = exc.raw_response.json()
    assert body["status"] == exc.status_code and isinstance(body["message"], str), body
    assert set(body) <= {"status", "message", "data"}, body
    return body


def req(**fields: Any) -> Any:
    """A request as the SDK's TypedDicts describe it (built from loops, so typed loosely)."""
    return fields


def refused(call: Callable[[], object], status: int) -> dict[str, Any]:
    with pytest.raises(errors.OutpostError) as info:
        call()
    assert info.value.status_code == status, info.value
    return error_body(info.value)


# health, topics, destination types --------------------------------------------------------


def test_health_check(server: ServerProcess, admin: Outpost) -> None:
    health = admin.health.check()
    assert health.status == models.HealthCheckStatus.HEALTHY
    assert health.workers is not None and set(health.workers) == server.health_workers()
    assert all(
        w.status == models.WorkersStatus.HEALTHY and w.since is None and w.reason is None
        for w in health.workers.values()
    )
    assert abs(datetime.now(UTC) - health.timestamp) < timedelta(minutes=1)


def test_topics_and_every_destination_type(admin: Outpost) -> None:
    assert admin.topics.list() == TOPICS
    listed = {t.type for t in admin.schemas.list_destination_types()}
    assert {t.value for t in models.DestinationType} <= listed
    for kind in models.GetDestinationTypeSchemaType:
        schema = admin.schemas.get_destination_type(type_=kind)
        assert schema.type == kind.value and schema.config_fields is not None


def test_unknown_destination_type_is_404(api: httpx.Client) -> None:
    # The SDK refuses a type outside its enum before sending; a raw caller gets the 404.
    res = api.get("/destination-types/nope")
    assert res.status_code == 404 and res.json()["status"] == 404, res.text


# tenants --------------------------------------------------------------------------------------


def test_tenants(admin: Outpost, server: ServerProcess) -> None:
    first, second = unique_id("walk-t"), unique_id("walk-t")
    for tid in (first, second):
        assert admin.tenants.upsert(tenant_id=tid, body={"metadata": {"k": tid}}).id == tid
    assert admin.tenants.get(tenant_id=first).metadata == {"k": first}
    for direction in models.ListTenantsDir:
        page = admin.tenants.list(request={"id": [first, second], "direction": direction})
        ids = {t.id for t in page.models or []}
        assert ids == {first, second} and page.count == 2
    one = admin.tenants.list(request={"id": [first, second], "limit": 1})
    assert len(one.models or []) == 1
    token = admin.tenants.get_token(tenant_id=first).token
    assert token and token.count(".") == 2
    with server.tenant_client(token) as portal:
        assert [t.id for t in portal.tenants.list(request={}).models or []] == [first]
    for theme in [None, *models.Theme]:
        url = admin.tenants.get_portal_url(tenant_id=first, theme=theme).redirect_url
        assert url and url.startswith("http")
        if theme is not None:
            assert f"theme={theme.value}" in url
    assert admin.tenants.delete(tenant_id=second).success is True
    refused(lambda: admin.tenants.get(tenant_id=second), 404)


# destinations ---------------------------------------------------------------------------------


def test_destinations_crud(admin: Outpost, receiver: Receiver, tenant_id: str) -> None:
    url = receiver.url(receiver.new_path("walk-crud"))
    made = create_webhook(admin, tenant_id, url, topics=["user.created"])
    listed = admin.destinations.list(tenant_id=tenant_id)
    assert [d.id for d in listed] == [made.id]
    assert [
        d.id
        for d in admin.destinations.list(tenant_id=tenant_id, type_=models.DestinationType.WEBHOOK)
    ] == [made.id]
    assert admin.destinations.list(tenant_id=tenant_id, type_=models.DestinationType.AWS_SQS) == []
    assert admin.destinations.list(tenant_id=tenant_id, topics=["user.deleted"]) == []
    got = admin.destinations.get(tenant_id=tenant_id, destination_id=made.id)
    assert got.id == made.id
    patch: Any = {"type": "webhook", "topics": ["user.created", "user.deleted"]}
    changed = admin.destinations.update(tenant_id=tenant_id, destination_id=made.id, body=patch)
    assert changed.topics == ["user.created", "user.deleted"]
    off = admin.destinations.disable(tenant_id=tenant_id, destination_id=made.id)
    assert off.disabled_at is not None
    on = admin.destinations.enable(tenant_id=tenant_id, destination_id=made.id)
    assert on.disabled_at is None
    assert admin.destinations.delete(tenant_id=tenant_id, destination_id=made.id).success
    refused(lambda: admin.destinations.get(tenant_id=tenant_id, destination_id=made.id), 404)


# attempts -------------------------------------------------------------------------------------


def _check_attempt(attempt: models.Attempt, include: list[str], world: World) -> None:
    assert attempt.tenant_id == world.tenant
    assert attempt.status in {s.value for s in models.ListAttemptsStatus}
    # Latency: every attempt here reached the receiver, so each has one (ms around the publish).
    assert isinstance(attempt.latency_ms, int) and 0 <= attempt.latency_ms < 30_000, attempt
    if "event" in include or "event.data" in include:
        assert isinstance(attempt.event, models.EventSummary | models.EventFull)
        assert attempt.event.id == attempt.event_id
    if "event.data" in include:
        assert isinstance(attempt.event, models.EventFull) and attempt.event.data is not None
    if "response_data" in include:
        assert attempt.response_data is not None and "status" in attempt.response_data
    if "destination" in include:
        assert attempt.destination is not None
        assert attempt.destination.id == attempt.destination_id


def _include_options() -> Iterator[list[str]]:
    yield []
    for one in INCLUDES:
        yield [one]
    yield INCLUDES


def test_attempts_list_and_get(admin: Outpost, world: World) -> None:
    everything = admin.attempts.list(request={"tenant_id": world.tenant}).models or []
    assert len(everything) == 5
    for status in models.ListAttemptsStatus:
        rows = admin.attempts.list(request={"tenant_id": world.tenant, "status": status}).models
        assert {a.status for a in rows or []} == {status.value}
        assert len(rows or []) == (3 if status.value == "success" else 2)
    for direction in models.ListAttemptsDir:
        rows = admin.attempts.list(
            request=req(tenant_id=world.tenant, direction=direction, order_by="time")
        ).models
        times = [a.time for a in rows or [] if a.time is not None]
        assert times == sorted(times, reverse=direction.value == "desc")
    for include in _include_options():
        rows = admin.attempts.list(request=req(tenant_id=world.tenant, include=include)).models
        for attempt in rows or []:
            _check_attempt(attempt, include, world)
        one = admin.attempts.get(attempt_id=str(everything[0].id), include=include)
        _check_attempt(one, include, world)
        assert one.id == everything[0].id
    refused(lambda: admin.attempts.get(attempt_id="atm_nope"), 404)


def test_destination_attempts(admin: Outpost, world: World) -> None:
    base: dict[str, Any] = {"tenant_id": world.tenant, "destination_id": world.bad.id}
    rows = admin.destinations.list_attempts(request=req(**base)).models or []
    assert [a.attempt_number for a in rows] == [2, 1]
    for status in models.ListTenantDestinationAttemptsStatus:
        found = admin.destinations.list_attempts(request=req(**base, status=status)).models
        assert len(found or []) == (2 if status.value == "failed" else 0)
    for direction in models.ListTenantDestinationAttemptsDir:
        found = admin.destinations.list_attempts(
            request=req(**base, direction=direction, order_by="time")
        ).models
        numbers = [a.attempt_number for a in found or []]
        assert numbers == ([1, 2] if direction.value == "asc" else [2, 1])
    for include in _include_options():
        for attempt in (
            admin.destinations.list_attempts(request=req(**base, include=include)).models or []
        ):
            _check_attempt(attempt, include, world)
        one = admin.destinations.get_attempt(
            tenant_id=world.tenant,
            destination_id=world.bad.id,
            attempt_id=str(rows[0].id),
            include=include,
        )
        _check_attempt(one, include, world)
    # another destination's attempt, through this one: not found
    refused(
        lambda: admin.destinations.get_attempt(
            tenant_id=world.tenant, destination_id=world.good.id, attempt_id=str(rows[0].id)
        ),
        404,
    )


def test_unknown_and_deleted_destinations_are_404(
    admin: Outpost, api: httpx.Client, receiver: Receiver, tenant_id: str
) -> None:
    unknown: dict[str, Any] = {"tenant_id": tenant_id, "destination_id": "des_unknown"}
    assert refused(lambda: admin.destinations.list_attempts(request=req(**unknown)), 404)[
        "message"
    ] == ("destination not found")
    refused(lambda: admin.destinations.get_attempt(**unknown, attempt_id="atm_x"), 404)

    dest = create_webhook(admin, tenant_id, receiver.configure(receiver.new_path("walk-gone")))
    publish(admin, tenant_id, {"gone": True})
    [attempt] = wait_attempts(api, 1, tenant_id=tenant_id)
    admin.destinations.delete(tenant_id=tenant_id, destination_id=dest.id)
    gone: dict[str, Any] = {"tenant_id": tenant_id, "destination_id": dest.id}
    refused(lambda: admin.destinations.list_attempts(request=req(**gone)), 404)
    refused(lambda: admin.destinations.get_attempt(**gone, attempt_id=attempt["id"]), 404)
    # ... while its attempts stay listed by GET /attempts?destination_id=, as the SDK says
    kept = admin.attempts.list(request={"tenant_id": tenant_id, "destination_id": dest.id})
    assert [a.id for a in kept.models or []] == [attempt["id"]]


# events and page limits ----------------------------------------------------------------------


def test_events_list_and_get(admin: Outpost, world: World) -> None:
    all_ids = {*world.created, world.deleted}
    for direction in models.ListEventsDir:
        page = admin.events.list(
            request=req(tenant_id=world.tenant, direction=direction, order_by="time")
        )
        assert {e.id for e in page.models or []} == all_ids
        assert page.pagination is not None and page.pagination.dir == direction.value
    paged: list[str] = []
    cursor: str | None = None
    while True:
        request: dict[str, Any] = {"tenant_id": world.tenant, "limit": 1}
        if cursor:
            request["next_cursor"] = cursor
        page = admin.events.list(request=cast(Any, request))
        paged += [str(e.id) for e in page.models or []]
        following = page.pagination.next_cursor if page.pagination else None
        if not isinstance(following, str) or not following:
            break
        cursor = following
    assert sorted(paged) == sorted(all_ids)
    by_destination = admin.events.list(
        request={"tenant_id": world.tenant, "destination_id": world.bad.id}
    )
    assert [e.id for e in by_destination.models or []] == [world.deleted]
    event = admin.events.get(event_id=world.deleted, tenant_id=world.tenant)
    assert event.id == world.deleted and event.topic == "user.deleted"
    refused(lambda: admin.events.get(event_id="evt_nope"), 404)


@pytest.mark.parametrize("limit", [0, 1001, -1])
def test_page_limits_outside_1_to_1000_are_400(admin: Outpost, world: World, limit: int) -> None:
    expected = "invalid limit: must be between 1 and 1000"
    calls: list[Callable[[], object]] = [
        lambda: admin.events.list(request={"tenant_id": world.tenant, "limit": limit}),
        lambda: admin.attempts.list(request={"tenant_id": world.tenant, "limit": limit}),
        lambda: admin.destinations.list_attempts(
            request={"tenant_id": world.tenant, "destination_id": world.good.id, "limit": limit}
        ),
    ]
    for call in calls:
        assert refused(call, 400)["message"] == expected
    for edge in (1, 1000):
        page = admin.events.list(request={"tenant_id": world.tenant, "limit": edge})
        assert page.pagination is not None and page.pagination.limit == edge


def test_a_limit_that_is_not_a_number_is_400(api: httpx.Client, world: World) -> None:
    # The SDK types `limit` as an integer; a raw caller can still send anything.
    for path in (
        "/events",
        "/attempts",
        f"/tenants/{world.tenant}/destinations/{world.good.id}/attempts",
    ):
        res = api.get(path, params={"limit": "abc"})
        assert res.status_code == 400, res.text
        assert res.json() == {"status": 400, "message": "invalid limit: must be an integer"}


# publish and retry ----------------------------------------------------------------------------


def test_retry_needs_an_earlier_attempt(
    admin: Outpost, api: httpx.Client, receiver: Receiver, tenant_id: str
) -> None:
    path = receiver.new_path("walk-retry")
    dest = create_webhook(admin, tenant_id, receiver.configure(path))
    event = publish(admin, tenant_id, {"retry": 1}).id
    assert event
    wait_attempts(api, 1, tenant_id=tenant_id, event_id=event)
    ok = admin.retry(request={"event_id": event, "destination_id": dest.id})
    assert ok.success is True
    rows = wait_attempts(api, 2, tenant_id=tenant_id, event_id=event, dir="asc")
    assert [(a["attempt_number"], a["manual"]) for a in rows] == [(1, False), (2, True)]

    later = receiver.new_path("walk-newcomer")
    newcomer = create_webhook(admin, tenant_id, receiver.configure(later))
    body = refused(
        lambda: admin.retry(request={"event_id": event, "destination_id": newcomer.id}), 400
    )
    assert body["data"] == {"error": "no_prior_attempt"}
    receiver.assert_quiet(later, expected=0, window=0.5)
    unknown_event = req(event_id="evt_nope", destination_id=newcomer.id)
    assert refused(lambda: admin.retry(request=unknown_event), 404)["message"] == (
        "event not found"
    )
    unknown_destination = req(event_id=event, destination_id="des_x")
    assert refused(lambda: admin.retry(request=unknown_destination), 404)["message"] == (
        "destination not found"
    )


def test_publish_answers_as_documented(admin: Outpost, receiver: Receiver, tenant_id: str) -> None:
    dest = create_webhook(admin, tenant_id, receiver.configure(receiver.new_path("walk-pub")))
    event_id = unique_id("walk-evt")
    first = publish(admin, tenant_id, {"x": 1}, id=event_id, metadata={"k": "v"})
    assert (first.id, first.duplicate, first.destination_ids) == (event_id, False, [dest.id])
    again = publish(admin, tenant_id, {"x": 1}, id=event_id)
    assert again.duplicate is True


# metrics --------------------------------------------------------------------------------------

GRANULARITIES = [None, "30s", "1m", "1h", "1d", "1w", "1M"]
LATENCY = ("avg_latency", "p50_latency", "p95_latency", "p99_latency")


def _nearest_rank(values: list[int], percent: int) -> int | None:
    if not values:
        return None
    return sorted(values)[max(1, math.ceil(percent * len(values) / 100)) - 1]


def test_attempt_metrics_every_measure_dimension_and_granularity(
    admin: Outpost, world: World
) -> None:
    measures = list(models.GetAttemptMetricsMeasuresEnum2)
    window: Any = {"start": world.start, "end": world.end}
    listed = (
        admin.attempts.list(
            request={"tenant_id": world.tenant, "time": {"gte": world.start}}
        ).models
        or []
    )
    latencies = [a.latency_ms for a in listed if isinstance(a.latency_ms, int)]
    [whole] = (
        admin.metrics.get_attempt_metrics(
            request={"time": window, "measures": measures, "filters_tenant_id": world.tenant}
        ).data
        or []
    )
    metrics = whole.metrics or {}
    assert metrics["count"] == len(listed) >= 5
    assert metrics["avg_latency"] == pytest.approx(sum(latencies) / len(latencies))
    for name, percent in (("p50_latency", 50), ("p95_latency", 95), ("p99_latency", 99)):
        assert metrics[name] == _nearest_rank(latencies, percent), name

    for dimension in models.GetAttemptMetricsDimensionsEnum2:
        for granularity in GRANULARITIES:
            request: dict[str, Any] = {
                "time": window,
                "measures": measures,
                "dimensions": [dimension],
                "filters_tenant_id": world.tenant,
            }
            if granularity:
                request["granularity"] = granularity
            answer = admin.metrics.get_attempt_metrics(request=cast(Any, request))
            points = answer.data or []
            assert sum((p.metrics or {})["count"] for p in points) == len(listed), (
                dimension,
                granularity,
            )
            for point in points:
                values = point.metrics or {}
                assert set(values) == {m.value for m in measures}
                if values["count"] == 0:
                    assert all(values[m] is None for m in LATENCY)  # no latency recorded
                    continue
                assert values["p50_latency"] <= values["p95_latency"] <= values["p99_latency"]
                assert min(latencies) <= values["avg_latency"] <= max(latencies)
                assert (point.time_bucket is not None) == (granularity is not None)


def test_event_metrics_every_measure_and_dimension(admin: Outpost, world: World) -> None:
    window: Any = {"start": world.start, "end": world.end}
    measures = list(models.GetEventMetricsMeasuresEnum2)
    for dimension in models.GetEventMetricsDimensionsEnum2:
        answer = admin.metrics.get_event_metrics(
            request={
                "time": window,
                "measures": measures,
                "dimensions": [dimension],
                "filters_tenant_id": world.tenant,
                "granularity": "1h",
            }
        )
        counts = sum((p.metrics or {})["count"] for p in answer.data or [])
        assert counts >= 4, dimension  # the four events (more if other tests published)


def test_latency_measures_are_not_unknown(api: httpx.Client, world: World) -> None:
    """The raw request the SDK sends, with each latency measure alone: 200, not 400."""
    for measure in LATENCY:
        res = api.get(
            "/metrics/attempts",
            params={
                "time[start]": world.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "time[end]": world.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "measures": measure,
                "filters[tenant_id]": world.tenant,
            },
        )
        assert res.status_code == 200, res.text


# managed-only operations ----------------------------------------------------------------------


def test_managed_only_operations_are_404_in_outposts_error_shape(admin: Outpost) -> None:
    ops = admin.operator_events
    calls: list[Callable[[], object]] = [
        admin.configuration.get_managed_config,
        lambda: admin.configuration.update_managed_config(request=cast(Any, {})),
        ops.list_destination_types,
        ops.list_destinations,
        lambda: ops.create_destination(
            request=cast(Any, {"type": "webhook", "topics": ["*"], "config": {"url": "https://x"}})
        ),
        lambda: ops.get_destination(destination_id="d"),
        lambda: ops.update_destination(destination_id="d", body=cast(Any, {"type": "webhook"})),
        lambda: ops.delete_destination(destination_id="d"),
        lambda: ops.enable_destination(destination_id="d"),
        lambda: ops.disable_destination(destination_id="d"),
        ops.list_events,
        lambda: ops.get_event(event_id="e"),
        lambda: ops.list_event_attempts(event_id="e"),
        lambda: ops.list_attempts(request={}),
        lambda: ops.get_attempt(attempt_id="a"),
        lambda: ops.retry(request=cast(Any, {"event_id": "e", "destination_id": "d"})),
    ]
    for call in calls:
        refused(call, 404)
