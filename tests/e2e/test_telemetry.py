"""OpenTelemetry (contract.md §7.7) and structured logs, against `waypost serve` processes.

The OTLP receiver is real: an HTTP server (and a gRPC server) on loopback that decodes what the
server exports with the protocol's own protobuf definitions (tests/support/otlp.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest
from support.api import create_webhook, unique_id
from support.otlp import OtlpGrpcReceiver, OtlpHttpReceiver, Point, Received, Span
from support.postgres import create_database, drop_database
from support.rabbitmq import delete as delete_rabbitmq
from support.rabbitmq import settings_for as rabbitmq_settings
from support.receiver import Receiver
from support.server import ServerProcess
from support.waiting import poll_until

# What is exported and logged is the same in every mode, and the PostgreSQL test picks its own
# database: once is enough.
pytestmark = [pytest.mark.e2e, pytest.mark.backends("sqlite"), pytest.mark.timeout(180)]

# Export quickly so that the test does not wait a minute for the first metrics.
FAST_EXPORT = {"OTEL_METRIC_EXPORT_INTERVAL": "200", "OTEL_BSP_SCHEDULE_DELAY": "100"}
OUTPOST_METRICS = {
    "outpost.published_events": {"topic"},
    "outpost.eligible_events": {"topic"},
    "outpost.delivered_events": {"type", "status"},
    "outpost.delivery_latency": {"type"},
    "outpost.api_calls": {"method", "path"},
    "outpost.api_response_latency": {"method", "path"},
}


def otel_env(endpoint: str, service: str = "outpost-e2e", **extra: str) -> dict[str, str]:
    return {
        "OTEL_SERVICE_NAME": service,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        **FAST_EXPORT,
        **extra,
    }


def publish_one(server: ServerProcess, receiver: Receiver) -> str:
    """Publish one event to one webhook destination; returns its id once it was delivered."""
    tenant = unique_id("otel")
    path = receiver.new_path("otel")
    with server.admin_client() as admin:
        admin.tenants.upsert(tenant_id=tenant)
        create_webhook(admin, tenant, receiver.configure(path))
        event_id = unique_id("evt")
        admin.publish(
            request={"id": event_id, "tenant_id": tenant, "topic": "user.created", "data": {}}
        )
    poll_until(lambda: receiver.requests_for(path), what="the delivery")
    return event_id


def event_trace(received: Received, event_id: str) -> tuple[Span, Span]:
    """The event's Receive span and a Deliver span that is its child, once both arrived."""

    def both() -> tuple[Span, Span]:
        spans = [
            s for s in received.span_list() if s.attributes.get("outpost.event_id") == event_id
        ]
        receive = next(s for s in spans if s.name == "EventTracer.Receive")
        deliver = next(s for s in spans if s.name == "EventTracer.Deliver")
        return receive, deliver

    return poll_until(both, what=f"the spans of {event_id}")


def metric_points(received: Received, expected: dict[str, set[str]]) -> dict[str, list[Point]]:
    def all_there() -> dict[str, list[Point]]:
        by_name: dict[str, list[Point]] = {}
        for point in received.point_list():
            by_name.setdefault(point.metric, []).append(point)
        missing = set(expected) - set(by_name)
        assert not missing, f"metrics not received yet: {sorted(missing)}"
        return by_name

    return poll_until(all_there, what="Outpost's metrics")


@pytest.fixture(scope="module")
def otlp_http() -> Iterator[OtlpHttpReceiver]:
    with OtlpHttpReceiver() as receiver:
        yield receiver


def test_publish_to_attempt_trace_and_outpost_metrics_over_otlp_http(
    otlp_http: OtlpHttpReceiver, receiver: Receiver
) -> None:
    env = otel_env(
        otlp_http.url,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_HEADERS="x-collector-token=e2e-secret",
    )
    with ServerProcess(env) as server:
        event_id = publish_one(server, receiver)
        receive, deliver = event_trace(otlp_http.received, event_id)
        points = metric_points(otlp_http.received, OUTPOST_METRICS)

    assert receive.parent_span_id == ""  # the root of the event's trace
    assert receive.service == deliver.service == "outpost-e2e"
    assert deliver.trace_id == receive.trace_id
    assert deliver.parent_span_id == receive.span_id
    assert deliver.attributes["outpost.destination_type"] == "webhook"
    assert deliver.attributes["outpost.attempt_number"] == 1
    assert deliver.attributes["outpost.status"] == "success"
    for name, keys in OUTPOST_METRICS.items():
        assert {frozenset(p.attributes) for p in points[name]} == {frozenset(keys)}, name
    assert {p.unit for p in points["outpost.delivery_latency"]} == {"ms"}
    assert {p.unit for p in points["outpost.api_response_latency"]} == {"ms"}
    assert {"type": "webhook", "status": "success"} in [
        p.attributes for p in points["outpost.delivered_events"]
    ]
    assert {"topic": "user.created"} in [p.attributes for p in points["outpost.published_events"]]
    assert {"method": "POST", "path": "/api/v1/publish"} in [
        p.attributes for p in points["outpost.api_calls"]
    ]
    # The standard headers variable reaches the collector (e.g. an API key for a vendor).
    assert any(h.get("x-collector-token") == "e2e-secret" for h in otlp_http.received.headers)


def test_grpc_is_outposts_default_protocol(receiver: Receiver) -> None:
    with OtlpGrpcReceiver() as otlp, ServerProcess(otel_env(otlp.url)) as server:
        event_id = publish_one(server, receiver)
        receive, deliver = event_trace(otlp.received, event_id)
        metric_points(otlp.received, {"outpost.delivered_events": set()})
    assert deliver.parent_span_id == receive.span_id


def test_per_signal_endpoint_exports_only_that_signal(
    otlp_http: OtlpHttpReceiver, receiver: Receiver
) -> None:
    env = {
        "OTEL_SERVICE_NAME": "outpost-traces-only",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": otlp_http.url + "/v1/traces",
        **FAST_EXPORT,
    }
    with ServerProcess(env) as server:
        event_id = publish_one(server, receiver)
        event_trace(otlp_http.received, event_id)
    assert not [p for p in otlp_http.received.point_list() if p.service == "outpost-traces-only"]


def test_trace_spans_processes_in_postgres_and_rabbitmq_mode(
    otlp_http: OtlpHttpReceiver, receiver: Receiver
) -> None:
    """The API process accepts, a delivery process (through RabbitMQ) delivers: one trace."""
    database, url = create_database()
    shared = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", **rabbitmq_settings(database)}
    api = ServerProcess(
        {**otel_env(otlp_http.url, "outpost-api", **shared), "SERVICE": "api"}, postgres_url=url
    )
    delivery = ServerProcess(
        {**otel_env(otlp_http.url, "outpost-delivery", **shared), "SERVICE": "delivery"},
        postgres_url=url,
    )
    try:
        api.start()
        delivery.start()
        event_id = publish_one(api, receiver)
        receive, deliver = event_trace(otlp_http.received, event_id)
    finally:
        delivery.close()
        api.close()
        delete_rabbitmq(database)
        drop_database(database)
    assert (receive.service, deliver.service) == ("outpost-api", "outpost-delivery")
    assert deliver.trace_id == receive.trace_id
    assert deliver.parent_span_id == receive.span_id


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_json_logs_carry_the_request_id_and_the_delivery(receiver: Receiver) -> None:
    with ServerProcess({"LOG_FORMAT": "json", "LOG_LEVEL": "debug"}) as server:
        with server.http() as http:
            given = http.get("/tenants", headers={"X-Request-Id": "req-e2e.42"})
            invalid = http.get("/tenants", headers={"X-Request-Id": "bad id\twith spaces"})
            http.get("/healthz")
        event_id = publish_one(server, receiver)

        def delivery_line() -> dict[str, object]:
            lines = _json_lines(server.log_text())
            return next(line for line in lines if line.get("event_id") == event_id)

        line = poll_until(delivery_line, what="a log line of the delivery")
        lines = _json_lines(server.log_text())

    assert given.headers["x-request-id"] == "req-e2e.42"
    generated = invalid.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    access = [entry for entry in lines if entry.get("logger") == "waypost.api.access"]
    mine = next(entry for entry in access if entry.get("request_id") == "req-e2e.42")
    assert {"time", "level", "logger", "message"} <= set(mine)
    assert (mine["level"], mine["method"], mine["path"], mine["status"]) == (
        "info",
        "GET",
        "/api/v1/tenants",
        200,
    )
    assert any(entry.get("request_id") == generated for entry in access)
    health = [entry for entry in access if entry.get("path") == "/healthz"]
    assert health and all(entry["level"] == "debug" for entry in health)
    assert line["destination_id"] and line["attempt"] == 1


def test_healthz_answers_with_a_request_id() -> None:
    with ServerProcess() as server, httpx.Client() as client:
        res = client.get(server.root_url + "/healthz")
    assert res.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", res.headers["x-request-id"])
