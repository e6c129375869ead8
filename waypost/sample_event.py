"""Send a test event: a sample event to one destination, so a tenant can check its receiver.

The event is stored and delivered like any other (an attempt is recorded, with its response),
marked as a test by its metadata key `outpost-test` ("true"), which the event, its attempts'
`include=event` and the receiver (webhook metadata headers) show. It goes to that destination
only, bypasses its filter (the point is to reach the receiver), is not retried, and recovery
never sends it again.
"""

from __future__ import annotations

import json
from typing import Any

from waypost.core import topics
from waypost.core.ids import IdGenerator
from waypost.core.models import Destination, Event
from waypost.core.recovery import TEST_METADATA_KEY
from waypost.core.timefmt import format_ms, now_ms
from waypost.errors import InputError, NotFoundError, ValidationError
from waypost.storage.protocols import DeliveryQueue, TenantStore

FALLBACK_TOPIC = "outpost.test"


def pick_topic(destination: Destination, configured: tuple[str, ...], asked: str | None) -> str:
    """The asked topic if the destination accepts it; otherwise its first concrete topic, a
    configured one it accepts, or a pattern made concrete (`user.*` → `user.test`)."""
    if asked:
        if asked == topics.WILDCARD or not topics.destination_accepts(destination.topics, asked):
            raise ValidationError({"topic": "the destination does not accept this topic"})
        return asked
    for topic in destination.topics:
        if topics.WILDCARD not in topic:
            return topic
    for topic in configured:
        if topic != topics.WILDCARD and topics.destination_accepts(destination.topics, topic):
            return topic
    for topic in destination.topics:
        if topic != topics.WILDCARD:
            return topic.replace(topics.WILDCARD, "test")
    return FALLBACK_TOPIC


async def send(
    tenants: TenantStore,
    queue: DeliveryQueue,
    ids: IdGenerator,
    configured_topics: tuple[str, ...],
    destination_key: tuple[str, str],
    topic: str | None,
    data: dict[str, Any] | None,
) -> Event:
    tenant_id, destination_id = destination_key
    destination = await tenants.get_destination(tenant_id, destination_id)
    if destination is None:
        raise NotFoundError("destination not found")
    if not destination.enabled:
        raise InputError("Destination is disabled", {"error": "destination_disabled"})
    now = now_ms()
    chosen = pick_topic(destination, configured_topics, topic)
    body = data if data is not None else {"test": True, "sent_at": format_ms(now)}
    event = Event(
        id=ids.event(),
        tenant_id=tenant_id,
        topic=chosen,
        time=now,
        data=json.dumps(body, separators=(",", ":")).encode(),
        eligible_for_retry=False,
        metadata={TEST_METADATA_KEY: "true"},
        destination_id=destination_id,
        matched_destination_ids=(destination_id,),
    )
    await queue.accept(event, now, now)
    return event
