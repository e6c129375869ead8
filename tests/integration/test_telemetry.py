"""Telemetry: off means not even imported; which signals go where; the event's trace ids."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from waypost import config as settings
from waypost.core.models import Event
from waypost.errors import ConfigError
from waypost.telemetry.signals import SignalExport, exports
from waypost.telemetry.tracing_ids import event_span_ids

# Builds the whole server (stores, worker, API app) and serves one publish in-process, then
# reports whether anything of OpenTelemetry was imported on the way.
_PROBE = """
import asyncio, json, os, sys
import httpx
from waypost import bootstrap, cli, config
from waypost.runner import server

async def main():
    system = bootstrap.build(config.load())
    await system.backend.open()
    app = bootstrap.http_app(system)
    auth = {"Authorization": "Bearer k"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        await c.put("/api/v1/tenants/t1", headers=auth)
        body = {"tenant_id": "t1", "topic": "a", "data": {}}
        answer = await c.post("/api/v1/publish", json=body, headers=auth)
    await system.backend.close()
    if system.telemetry is not None:
        system.telemetry.shutdown()
    return answer.status_code, system.telemetry is not None

status, enabled = asyncio.run(main())
# Submodules only: google-api-core (the gcp_pubsub destination) probes for
# `opentelemetry.instrumentation`, which leaves the bare namespace package `opentelemetry`, with no
# code in it, in sys.modules. Any part of the API or the SDK shows up as a submodule.
loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry."))
print(json.dumps({"status": status, "enabled": enabled, "otel_modules": loaded}))
"""


def _probe(tmp_path: Path, **env: str) -> dict[str, object]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CONFIG"))}
    base.update(
        OUTPOST_DATA_DIR=str(tmp_path / "data"),
        API_KEY="k",
        API_JWT_SECRET="j",
        AES_ENCRYPTION_SECRET="a",
        **env,
    )
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=base,
        cwd=tmp_path,  # no .env or YAML config file is found here
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_without_a_service_name_opentelemetry_is_never_imported(tmp_path: Path) -> None:
    found = _probe(tmp_path)
    assert found == {"status": 202, "enabled": False, "otel_modules": []}


def test_a_service_name_turns_it_on(tmp_path: Path) -> None:
    found = _probe(tmp_path, OTEL_SERVICE_NAME="probe", OTEL_EXPORTER="none")
    assert found["status"] == 202 and found["enabled"] is True
    assert "opentelemetry.sdk.trace" in found["otel_modules"]  # type: ignore[operator]


def _chosen(env: dict[str, str], exporter: str = "otlp", protocol: str = "grpc") -> set[str]:
    return {f"{e.signal}:{e.exporter}:{e.protocol}" for e in exports(env, exporter, protocol)}


def test_outposts_defaults_export_both_signals_over_grpc() -> None:
    assert _chosen({}) == {"traces:otlp:grpc", "metrics:otlp:grpc"}
    assert _chosen({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, protocol="http") == {
        "traces:otlp:http/protobuf",
        "metrics:otlp:http/protobuf",
    }


def test_per_signal_endpoints_without_the_generic_one_export_only_those() -> None:
    only_traces = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}
    assert _chosen(only_traces) == {"traces:otlp:grpc"}
    both = {**only_traces, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
    assert _chosen(both) == {"traces:otlp:grpc", "metrics:otlp:grpc"}


def test_exporter_choice_per_signal() -> None:
    assert _chosen({"OTEL_METRICS_EXPORTER": "none"}) == {"traces:otlp:grpc"}
    assert _chosen({"OTEL_TRACES_EXPORTER": "stdout"}, exporter="none") == {"traces:console:grpc"}
    assert _chosen({}, exporter="none") == set()


def test_standard_protocol_variables_win_over_outposts() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc",
    }
    assert exports(env, "otlp", "grpc") == [
        SignalExport("traces", "otlp", "http/protobuf"),
        SignalExport("metrics", "otlp", "grpc"),
    ]


def test_unknown_choices_are_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
        exports({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "otlp", "grpc")
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER"):
        exports({"OTEL_TRACES_EXPORTER": "zipkin"}, "otlp", "grpc")
    with pytest.raises(ConfigError, match="OTEL_PROTOCOL"):
        settings.load({"OTEL_PROTOCOL": "udp"})
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        settings.load({"LOG_FORMAT": "xml"})


def _event(event_id: str = "evt_1", tenant: str = "acme", time: int = 1_700_000_000_000) -> Event:
    return Event(id=event_id, tenant_id=tenant, topic="user.created", time=time, data=b"{}")


def test_an_events_trace_ids_are_the_same_wherever_they_are_computed() -> None:
    assert event_span_ids(_event()) == event_span_ids(_event())
    trace_id, span_id = event_span_ids(_event())
    assert 0 < trace_id < 2**128 and 0 < span_id < 2**64


def test_another_event_tenant_or_time_is_another_trace() -> None:
    traces = {
        event_span_ids(e)[0]
        for e in (_event(), _event("evt_2"), _event(tenant="other"), _event(time=1))
    }
    assert len(traces) == 4
