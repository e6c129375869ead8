"""What a delivery sends beside the event's data, and how it reports a failure (contract §4.3, §5).

Metadata merged in the contract's order, Go-style timestamps, and the generic failed attempt.
"""

from __future__ import annotations

import time

from outpost.core import timefmt
from outpost.core.models import DeliveryResult, Destination, Event, StrMap

FORMAT_ERROR = "could not format event for delivery"


def merged_metadata(
    event: Event, destination: Destination, now_ns: int | None = None, *, include_ms: bool = False
) -> StrMap:
    """system < destination.delivery_metadata < event.metadata (§4.3)."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    metadata = {
        "event-id": event.id,
        "topic": event.topic,
        "timestamp": timefmt.format_seconds(now_ns // 1_000_000),
    }
    if include_ms:
        metadata["timestamp-ms"] = rfc3339_nano(now_ns)
    if destination.delivery_metadata:
        metadata.update(destination.delivery_metadata)
    if event.metadata:
        metadata.update(event.metadata)
    return metadata


def rfc3339_nano(now_ns: int) -> str:
    """RFC 3339 with nanoseconds, trailing zeros trimmed (Go's RFC3339Nano)."""
    seconds, nanos = divmod(now_ns, 1_000_000_000)
    text = timefmt.format_seconds(seconds * 1000)[:-1]
    return f"{text}.{nanos:09d}".rstrip("0").rstrip(".") + "Z"


def failed(error: str, code: str = "ERR") -> DeliveryResult:
    """The generic failure of §5: code `ERR`, `{"error": ...}`."""
    return DeliveryResult("failed", code, {"error": error})


def format_failure() -> DeliveryResult:
    """A template or payload that cannot be formatted: failed, retried, nothing sent."""
    return failed(FORMAT_ERROR)
