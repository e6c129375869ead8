"""What the backends share when a judge sees recorded attempts (core/operator_records.py).

A backend, inside the commit that records a batch of attempts: finds which attempts are new,
reads (and, with several writers, locks) the health of their destinations, lets `verdicts` judge
them in order, writes back the health that changed, disables what the verdicts say to (a
compare-and-set each) and queues the events. Per batch, not per attempt: a handful of statements
however many attempts the batch holds.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence

from waypost.core.models import Destination, Outcome
from waypost.core.operator_records import Health, OperatorRecord, OutcomeJudge, Verdict

DestinationKey = tuple[str, str]  # (tenant id, destination id)

log = logging.getLogger(__name__)


def key_of(outcome: Outcome) -> DestinationKey:
    return outcome.task.event.tenant_id, outcome.task.destination_id


def judged_order(outcomes: Sequence[Outcome], seen: set[str]) -> list[Outcome]:
    """The outcomes with an attempt not recorded before (`seen`), grouped by destination, in the
    order they finished within each: health rows are locked in this order, so that two writers
    locking several never wait on each other in a cycle."""
    fresh = [o for o in outcomes if o.attempt is not None and o.attempt.id not in seen]
    return sorted(fresh, key=key_of)


def keys(ordered: Sequence[Outcome]) -> list[DestinationKey]:
    """The distinct destinations of `ordered`, in its (sorted) order."""
    return list(dict.fromkeys(map(key_of, ordered)))


def verdicts(
    judge: OutcomeJudge,
    ordered: Sequence[Outcome],
    destinations: Mapping[DestinationKey, Destination | None],
    healths: Mapping[DestinationKey, Health],
    now: int,
) -> tuple[list[tuple[Outcome, Verdict]], dict[DestinationKey, Health]]:
    """Judge each attempt in turn, each seeing the health the one before it left; returns the
    verdicts and the health of each destination whose health changed."""
    current = dict(healths)
    changed: dict[DestinationKey, Health] = {}
    judged = []
    for outcome in ordered:
        key = key_of(outcome)
        before = current.get(key, Health())
        verdict = judge.judge(outcome, destinations.get(key), before, now)
        judged.append((outcome, verdict))
        if judge.tracks_health and verdict.health != before:
            current[key] = changed[key] = verdict.health
    return judged, changed


def disable_requests(judged: Sequence[tuple[Outcome, Verdict]]) -> dict[DestinationKey, str]:
    """The destinations the verdicts say to disable, each once with the first reason given, for
    the backend to compare-and-set."""
    requests: dict[DestinationKey, str] = {}
    for outcome, verdict in judged:
        if verdict.disable_reason is not None:
            requests.setdefault(key_of(outcome), verdict.disable_reason)
    return requests


def events_of(
    judge: OutcomeJudge,
    judged: Sequence[tuple[Outcome, Verdict]],
    destinations: Mapping[DestinationKey, Destination | None],
    disabled: Collection[DestinationKey],
    now: int,
) -> list[OperatorRecord]:
    """The events to queue, in order; those of a destination the backend did disable (in
    `disabled`) follow the first verdict that asked for it."""
    events: list[OperatorRecord] = []
    told: set[DestinationKey] = set()
    for outcome, verdict in judged:
        events += verdict.events
        key = key_of(outcome)
        if verdict.disable_reason is not None and key in disabled and key not in told:
            told.add(key)
            events += judge.disabled(outcome, destinations.get(key), verdict.disable_reason, now)
    return events


async def destinations_of(
    outcomes: Sequence[Outcome],
    lookup: Callable[[str, str], Awaitable[Destination | None]],
) -> dict[DestinationKey, Destination | None]:
    """The destinations of the attempts, as the worker just saw them (a cache hit), read before
    the write: the events carry their projection."""
    found = {key_of(o) for o in outcomes if o.attempt is not None}
    return {key: await lookup(*key) for key in found}


def report_disabled(disabled: Mapping[DestinationKey, str]) -> None:
    """One line per destination a commit disabled, with the reason (after it committed: a
    rolled-back batch that runs again would otherwise say it twice)."""
    for (tenant_id, destination_id), reason in sorted(disabled.items()):
        log.info(
            "destination %s of tenant %s disabled automatically (%s)",
            destination_id,
            tenant_id,
            reason,
            extra={"tenant_id": tenant_id, "destination_id": destination_id, "reason": reason},
        )
