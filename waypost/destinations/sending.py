"""What a delivery sends beside the event's data, and how it reports a failure (contract.md §4.3,
§5).

Metadata merged in the contract's order, Go-style timestamps, the generic failed attempt, and
the walk along an exception's causes that the types' failure codes are read from.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from waypost.core import timefmt
from waypost.core.models import DeliveryResult, Destination, Event, StrMap
from waypost.transport.guard import REFUSED_CODE, RefusedAddress

FORMAT_ERROR = "could not format event for delivery"


def merged_metadata(
    event: Event, destination: Destination, now_ns: int | None = None, *, include_ms: bool = False
) -> StrMap:
    """system < destination.delivery_metadata < event.metadata (contract.md §4.3)."""
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
    """The generic failure of contract.md §5: code `ERR`, `{"error": ...}`."""
    return DeliveryResult("failed", code, {"error": error})


def format_failure() -> DeliveryResult:
    """A template or payload that cannot be formatted: failed, retried, nothing sent."""
    return failed(FORMAT_ERROR)


def causes(exc: BaseException) -> list[BaseException]:
    """`exc` and what caused it (`__cause__`, else `__context__`), at most 8, each once."""
    links: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in links and len(links) < 8:
        links.append(current)
        current = current.__cause__ or current.__context__
    return links


def refusal(exc: BaseException) -> RefusedAddress | None:
    """The SSRF guard's refusal among an exception's causes, if that is what failed."""
    return next((link for link in causes(exc) if isinstance(link, RefusedAddress)), None)


def failure_code(exc: BaseException, code_of: Callable[[BaseException], str], default: str) -> str:
    """`ssrf_blocked` when the guard refused; else the first cause `code_of` names; else
    `default`."""
    if refusal(exc) is not None:
        return REFUSED_CODE
    return next((code for code in map(code_of, causes(exc)) if code), default)
