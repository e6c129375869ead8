"""Trace context derived from the event, so that it needs neither storage nor a message header.

An accepted event's `EventTracer.Receive` span gets a trace id and span id computed from the
event (tenant, id, time); a delivery, in whichever process claims it, computes the same pair and
makes its `EventTracer.Deliver` span a child of it. So every attempt of an event, retries and
replays included, lands in the event's trace, in embedded, PostgreSQL and RabbitMQ modes alike,
without a column or a message field. The ids are SHA-256 output, so as uniformly spread as the
random ids samplers expect.
"""

from __future__ import annotations

import hashlib

from waypost.core.models import Event


def event_span_ids(event: Event) -> tuple[int, int]:
    """(trace id, span id) of the event's Receive span; never zero (W3C: zero is invalid)."""
    key = f"{event.tenant_id}\x00{event.id}\x00{event.time}".encode()
    digest = hashlib.sha256(key).digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1
    span_id = int.from_bytes(digest[16:24], "big") or 1
    return trace_id, span_id
