"""A real OTLP receiver on loopback: OTLP/HTTP (protobuf) and, optionally, OTLP/gRPC.

What it receives is decoded with `opentelemetry-proto` (the protocol's own message definitions)
into plain records the tests can assert on: spans with their ids and attributes, and the metric
names, units and data-point attributes.
"""

from __future__ import annotations

import gzip
import threading
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from support.server import free_port


@dataclass(frozen=True)
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root span
    kind: int
    status_code: int
    attributes: dict[str, Any]
    service: str


@dataclass(frozen=True)
class Point:
    metric: str
    unit: str
    kind: str  # "sum", "histogram" or "gauge"
    attributes: dict[str, Any]
    value: float  # the sum's value, or the histogram's count
    service: str


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    return None if which is None else getattr(value, which)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _service(resource_attributes: list[KeyValue]) -> str:
    return str(_attributes(resource_attributes).get("service.name", ""))


@dataclass
class Received:
    """Everything received so far; safe to read while the receiver runs."""

    spans: list[Span] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_traces(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        found = []
        for resource_spans in request.resource_spans:
            service = _service(list(resource_spans.resource.attributes))
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    found.append(
                        Span(
                            name=s.name,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_span_id=s.parent_span_id.hex(),
                            kind=s.kind,
                            status_code=s.status.code,
                            attributes=_attributes(s.attributes),
                            service=service,
                        )
                    )
        with self.lock:
            self.spans.extend(found)

    def add_metrics(self, request: metrics_service_pb2.ExportMetricsServiceRequest) -> None:
        found = []
        for resource_metrics in request.resource_metrics:
            service = _service(list(resource_metrics.resource.attributes))
            for scope_metrics in resource_metrics.scope_metrics:
                for m in scope_metrics.metrics:
                    kind = m.WhichOneof("data") or ""
                    for p in getattr(m, kind).data_points:
                        value = p.count if kind == "histogram" else (p.as_int or p.as_double)
                        found.append(
                            Point(m.name, m.unit, kind, _attributes(p.attributes), value, service)
                        )
        with self.lock:
            self.points.extend(found)

    def span_list(self) -> list[Span]:
        with self.lock:
            return list(self.spans)

    def point_list(self) -> list[Point]:
        with self.lock:
            return list(self.points)


class _Handler(BaseHTTPRequestHandler):
    received: Received

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        with self.received.lock:
            self.received.headers.append({k.lower(): v for k, v in self.headers.items()})
        answer: Any
        if self.path == "/v1/traces":
            self.received.add_traces(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
            answer = trace_service_pb2.ExportTraceServiceResponse()
        elif self.path == "/v1/metrics":
            request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
            self.received.add_metrics(request)
            answer = metrics_service_pb2.ExportMetricsServiceResponse()
        else:
            self.send_response(404)
            self.end_headers()
            return
        payload = answer.SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean


class OtlpHttpReceiver:
    """`with OtlpHttpReceiver() as otlp:` → point `OTEL_EXPORTER_OTLP_ENDPOINT` at `otlp.url`."""

    def __init__(self) -> None:
        self.received = Received()
        handler = type("Handler", (_Handler,), {"received": self.received})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> OtlpHttpReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, received: Received) -> None:
        self._received = received

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._received.add_traces(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, received: Received) -> None:
        self._received = received

    def Export(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: Any
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        self._received.add_metrics(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class OtlpGrpcReceiver:
    """The same over gRPC (plaintext): `OTEL_EXPORTER_OTLP_ENDPOINT=otlp.url`."""

    def __init__(self) -> None:
        self.received = Received()
        self._port = free_port()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _Traces(self.received), self._server
        )
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _Metrics(self.received), self._server
        )
        self._server.add_insecure_port(f"127.0.0.1:{self._port}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def __enter__(self) -> OtlpGrpcReceiver:
        self._server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.stop(grace=None)
