"""The OpenTelemetry SDK behind the telemetry hooks: Outpost's `outpost` meter instruments and
the publish → delivery trace. Imported only when `OTEL_SERVICE_NAME` is set.

Spans (Outpost's names): `EventTracer.Receive` around the handling of an accepted publish, the root
of the event's trace; `EventTracer.Deliver` around each delivery attempt, its child (see
`tracing_ids` for how a delivery in another process finds its parent).
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from waypost import __version__
from waypost.config import Config
from waypost.core.models import DeliveryResult, DeliveryTask, Destination, Event
from waypost.core.timefmt import now_ms
from waypost.telemetry.signals import SignalExport, exports
from waypost.telemetry.tracing_ids import event_span_ids

METER = "outpost"  # Outpost's meter name: dashboards select on it
TRACER = "outpost"
RECEIVE = "EventTracer.Receive"
DELIVER = "EventTracer.Deliver"
_ROOT = Context()  # an empty context: the Receive span starts a trace of its own


class _PinnableIds(IdGenerator):
    """Random ids, except for the one span started while `pinned` is set (see `tracing_ids`).

    Safe without a lock: pinning, starting the span and unpinning happen in one synchronous
    stretch on the event loop, and no other thread starts spans."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()
        self.pinned: tuple[int, int] | None = None

    def generate_trace_id(self) -> int:
        return self.pinned[0] if self.pinned else self._random.generate_trace_id()

    def generate_span_id(self) -> int:
        return self.pinned[1] if self.pinned else self._random.generate_span_id()


def _span_exporter(plan: SignalExport) -> SpanExporter:
    if plan.exporter == "console":
        return ConsoleSpanExporter()
    if plan.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
            OTLPSpanExporter,
        )
    return OTLPSpanExporter()


def _metric_exporter(plan: SignalExport) -> MetricExporter:
    if plan.exporter == "console":
        return ConsoleMetricExporter()
    if plan.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # type: ignore[assignment]
            OTLPMetricExporter,
        )
    return OTLPMetricExporter()


class OtelTelemetry:
    """The `Telemetry` hooks over one tracer provider and one meter provider."""

    def __init__(
        self, resource: Resource, traces: SignalExport | None, metric: SignalExport | None
    ) -> None:
        self._ids = _PinnableIds()
        self._tracer_provider = TracerProvider(resource=resource, id_generator=self._ids)
        if traces is not None:
            self._tracer_provider.add_span_processor(BatchSpanProcessor(_span_exporter(traces)))
        readers = [PeriodicExportingMetricReader(_metric_exporter(metric))] if metric else []
        self._meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        # A signal that is not exported is not recorded either.
        self._tracer = (
            self._tracer_provider.get_tracer(TRACER, __version__)
            if traces is not None
            else trace.NoOpTracer()
        )
        meter = (
            self._meter_provider.get_meter(METER, __version__)
            if metric is not None
            else metrics.NoOpMeter(METER)
        )
        self._delivery_latency = meter.create_histogram(
            "outpost.delivery_latency",
            unit="ms",
            description="From the event's time to the end of a delivery attempt",
        )
        self._delivered = meter.create_counter(
            "outpost.delivered_events", description="Delivery attempts, by type and status"
        )
        self._published = meter.create_counter(
            "outpost.published_events", description="Events accepted (duplicates excluded)"
        )
        self._eligible = meter.create_counter(
            "outpost.eligible_events", description="Accepted events that matched a destination"
        )
        self._api_latency = meter.create_histogram(
            "outpost.api_response_latency", unit="ms", description="API response time"
        )
        self._api_calls = meter.create_counter("outpost.api_calls", description="API calls")

    # PublishObserver

    def publishing(self) -> int:
        return time.time_ns()

    def published(self, event: Event, duplicate: bool, started_ns: int) -> None:
        if duplicate:
            return  # the first publish of this event already has its span and counts
        attributes: dict[str, Any] = {
            "outpost.event_id": event.id,
            "outpost.tenant_id": event.tenant_id,
            "outpost.topic": event.topic,
            "outpost.matched_destinations": len(event.matched_destination_ids),
        }
        if event.destination_id:
            attributes["outpost.destination_id"] = event.destination_id
        self._ids.pinned = event_span_ids(event)
        try:
            span = self._tracer.start_span(
                RECEIVE,
                context=_ROOT,
                kind=SpanKind.PRODUCER,
                attributes=attributes,
                start_time=started_ns,
            )
        finally:
            self._ids.pinned = None
        span.end()
        topic = {"topic": event.topic}
        self._published.add(1, topic)
        if event.matched_destination_ids:
            self._eligible.add(1, topic)

    # DeliveryObserver

    async def delivering(
        self, task: DeliveryTask, destination: Destination, attempt: Awaitable[DeliveryResult]
    ) -> DeliveryResult:
        event = task.event
        trace_id, span_id = event_span_ids(event)
        parent = SpanContext(
            trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
        )
        with self._tracer.start_as_current_span(
            DELIVER,
            context=trace.set_span_in_context(NonRecordingSpan(parent)),
            kind=SpanKind.CONSUMER,
            attributes={
                "outpost.event_id": event.id,
                "outpost.tenant_id": event.tenant_id,
                "outpost.destination_id": destination.id,
                "outpost.destination_type": destination.type,
                "outpost.attempt_number": task.attempt_number,
            },
        ) as span:
            result = await attempt
            span.set_attribute("outpost.status", result.status)
            if result.code:
                span.set_attribute("outpost.code", result.code)
            if not result.ok:
                span.set_status(Status(StatusCode.ERROR, result.code or "failed"))
        kind = {"type": destination.type}
        self._delivered.add(1, {**kind, "status": result.status})
        self._delivery_latency.record(max(0, now_ms() - event.time), kind)
        return result

    # ApiObserver

    def api_call(self, method: str, path: str, elapsed_ms: int) -> None:
        attributes = {"method": method, "path": path}
        self._api_calls.add(1, attributes)
        self._api_latency.record(elapsed_ms, attributes)

    def shutdown(self) -> None:
        self._tracer_provider.shutdown()
        self._meter_provider.shutdown()


def start_sdk(config: Config) -> OtelTelemetry:
    chosen = {p.signal: p for p in exports(os.environ, config.otel_exporter, config.otel_protocol)}
    resource = Resource.create(
        {"service.name": config.otel_service_name, "service.version": __version__}
    )
    return OtelTelemetry(resource, chosen.get("traces"), chosen.get("metrics"))
