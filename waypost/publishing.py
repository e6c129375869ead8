"""Publishing: validate an event, match it to destinations, and make it durable with its tasks.

Also manual retry, which queues one more attempt of a logged event to one destination.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from waypost import sample_event
from waypost.core import filters, topics
from waypost.core.ids import IdGenerator
from waypost.core.limits import DEFAULT_METADATA_LIMITS, MetadataLimits
from waypost.core.models import Destination, Event
from waypost.core.paging import AttemptQuery, PageRequest
from waypost.core.timefmt import now_ms
from waypost.core.topics import DEFAULT_TOPIC_LIMITS, TopicLimits
from waypost.errors import InputError, NotFoundError, ValidationError
from waypost.storage.protocols import DeliveryQueue, LogStore, TenantStore
from waypost.telemetry.hooks import PublishObserver

# Attempts read to find which tenant an admin's retry means: many attempts of one pair are one
# tenant's; two tenants are found among the first hundred unless one retried it a hundred times.
_TENANT_PROBE = 100


@dataclass(frozen=True, slots=True)
class Published:
    id: str
    duplicate: bool
    destination_ids: list[str]


log = logging.getLogger(__name__)

# Filter evaluation steps (values compared) one publish may spend on the event loop, shared by
# all of the tenant's destinations: about 10 ms. Past it, the publish is matched again on the
# worker thread below, where each destination gets OFF_LOOP_STEPS; a filter that needs more
# does not match the event (and a warning says so).
ON_LOOP_STEPS = 20_000
OFF_LOOP_STEPS = 1_000_000

_offload: ThreadPoolExecutor | None = None


def _worker() -> ThreadPoolExecutor:
    # One thread: however many heavy publishes wait, the event loop competes with one other
    # thread for the GIL, which it gets back within the switch interval (5 ms).
    global _offload
    if _offload is None:
        _offload = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outpost-matching")
    return _offload


def matching(
    destinations: Iterable[Destination], event: Event, budget: filters.Budget | None = None
) -> list[str]:
    """Ids of the enabled destinations whose topics and filter accept the event.

    `event.destination_id` narrows the candidates to one but does not bypass the checks. With a
    `budget`, raises filters.OverBudget when the filters need more steps than it holds.
    """
    document: dict[str, Any] | None = None
    matched = []
    for destination in destinations:
        if not destination.enabled:
            continue
        if event.destination_id and destination.id != event.destination_id:
            continue
        if not topics.destination_accepts(destination.topics, event.topic):
            continue
        if destination.filter:
            document = document or filters.event_document(event)
            if not filters.matches(destination.filter, document, budget):
                continue
        matched.append(destination.id)
    return matched


async def bounded_matching(destinations: Sequence[Destination], event: Event) -> list[str]:
    """`matching`, with the filters' cost bounded: cheap ones on the loop, the rest off it."""
    try:
        return matching(destinations, event, filters.Budget(ON_LOOP_STEPS))
    except filters.OverBudget:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(_worker(), _matching_each, destinations, event)


def _matching_each(destinations: Sequence[Destination], event: Event) -> list[str]:
    matched = []
    for destination in destinations:
        try:
            matched += matching([destination], event, filters.Budget(OFF_LOOP_STEPS))
        except filters.OverBudget:
            log.warning(
                "filter of destination %s needs more than %d steps for event %s: not matched",
                destination.id,
                OFF_LOOP_STEPS,
                event.id,
            )
    return matched


class Publisher:
    def __init__(
        self,
        *,
        tenants: TenantStore,
        log: LogStore,
        queue: DeliveryQueue,
        ids: IdGenerator,
        configured_topics: tuple[str, ...],
        idempotency_ttl_seconds: int,
        metadata_limits: MetadataLimits = DEFAULT_METADATA_LIMITS,
        topic_limits: TopicLimits = DEFAULT_TOPIC_LIMITS,
        observer: PublishObserver | None = None,
    ) -> None:
        """`tenants`: whose destinations an event matches; `log`: where events are read back;
        `queue`: where an accepted event and its tasks are written. `observer`: telemetry or
        Prometheus (or both), when on."""
        self._observer = observer
        self._tenants = tenants
        self._log = log
        self._queue = queue
        self._ids = ids
        self._topics = frozenset(configured_topics)
        self._ttl_ms = idempotency_ttl_seconds * 1000
        self._metadata_limits = metadata_limits
        self._topic_limits = topic_limits

    def check_topic(self, topic: str) -> None:
        self._topic_limits.check_topic(topic)
        if not self._topics:
            return
        if not topic:
            raise ValidationError(["topic is required"])
        if topic != "*" and topic not in self._topics:
            raise ValidationError(["topic is invalid"])

    async def publish(self, event: Event) -> Published:
        """Durably accept `event` and queue its deliveries; an empty id gets a generated one."""
        observer = self._observer
        started = observer.publishing() if observer is not None else 0
        self.check_topic(event.topic)
        self._metadata_limits.check("metadata", event.metadata)
        if not event.id:
            event = replace(event, id=self._ids.event())
        destinations = await self._tenants.list_destinations(event.tenant_id)
        matched = await bounded_matching(destinations, event)
        event = replace(event, matched_destination_ids=tuple(matched))
        now = now_ms()
        duplicate = await self._queue.accept(event, now, now - self._ttl_ms)
        if observer is not None:
            observer.published(event, duplicate, started)
        return Published(event.id, duplicate, matched)

    async def retry(self, event_id: str, destination_id: str, tenant_id: str | None) -> None:
        """Queue a manual attempt, numbered after the latest logged one (contract.md §1.6.19).

        Only a pair with an earlier attempt can be retried (SDK 1.7.0): a retry never sends an
        event to a destination it was not delivered to. Stored events that never reached a
        destination are replayed by the bulk recovery API, not here.
        Events are their tenant's: with no `tenant_id` (the admin's call), the tenant whose
        attempts of the event went to the destination is meant; when that does not settle it,
        the id must be one tenant's only (LogStore.get_event answers 400 otherwise).
        """
        if tenant_id is None:
            tenant_id = await self._only_tenant_with_attempts(event_id, destination_id)
        event = await self._log.get_event(event_id, tenant_id)
        if event is None:
            raise NotFoundError("event not found")
        destination = await self._tenants.get_destination(event.tenant_id, destination_id)
        if destination is None:
            raise NotFoundError("destination not found")
        if not destination.enabled:
            raise InputError("Destination is disabled", {"error": "destination_disabled"})
        if not await bounded_matching([destination], replace(event, destination_id="")):
            raise InputError("destination does not match event")
        latest = await self._log.latest_attempt(event_id, destination_id, event.tenant_id)
        if latest is None:
            raise InputError(
                "event has no attempt to this destination: a retry only repeats an earlier one",
                {"error": "no_prior_attempt"},
            )
        await self._queue.enqueue_manual(event, destination_id, latest.attempt_number + 1)

    async def send_test(
        self, tenant_id: str, destination_id: str, topic: str | None, data: dict[str, Any] | None
    ) -> Event:
        """A sample event to one destination, marked as a test (waypost/sample_event.py)."""
        return await sample_event.send(
            self._tenants,
            self._queue,
            self._ids,
            tuple(sorted(self._topics)),
            (tenant_id, destination_id),
            topic,
            data,
        )

    async def _only_tenant_with_attempts(self, event_id: str, destination_id: str) -> str | None:
        """The tenant whose attempts of `event_id` went to `destination_id`, when exactly one
        has some: the admin's retry body (Outpost's, which the SDK sends) names no tenant, and
        only a pair with an earlier attempt can be retried, so this settles an event id that
        several tenants use. None leaves the choice to `get_event` (one tenant's, or a 400)."""
        query = AttemptQuery(event_ids=(event_id,), destination_ids=(destination_id,))
        page = await self._log.list_attempts(query, PageRequest(limit=_TENANT_PROBE))
        tenants = {attempt.tenant_id for attempt in page.items}
        return tenants.pop() if len(tenants) == 1 else None
