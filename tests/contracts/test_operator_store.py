"""OperatorStore contract (contract.md §7.4): the outbox of operator events, per-destination health,
and what `finish()` does with a judge installed (counting, compare-and-set disable, events queued in
the same commit as the attempt).

The judge is the real one (waypost/operator/alerts.py). The outbox is one queue for the whole
database, so every test starts on an empty one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any, Protocol, cast

import pytest

from waypost.core.models import AttemptStatus, Destination, Outcome
from waypost.core.operator_records import Health, OperatorRecord
from waypost.core.timefmt import now_ms
from waypost.operator.alerts import AlertJudge, AlertSettings
from waypost.storage.protocols import OperatorStore

from ._support import HOUR, Backend, MakeBackend, attempt, destination, event, uid

pytestmark = [pytest.mark.anyio, pytest.mark.clean_database]

LEASE = 60_000


class OperatorBackend(Backend, OperatorStore, Protocol):
    async def destination_health(self, tenant_id: str, destination_id: str) -> Health:
        """A destination's alert health: not a seam (nothing outside storage reads it), but
        every backend keeps it for these tests."""
        ...


@pytest.fixture
def store(backend: Backend) -> OperatorBackend:
    return cast(OperatorBackend, backend)


def _judge(**settings: Any) -> AlertJudge:
    return AlertJudge(AlertSettings(**{"wanted": frozenset({"*"}), **settings}))


async def _dest(store: OperatorBackend, **fields: Any) -> Destination:
    made = destination(uid("tnt"), uid("des"), **fields)
    await store.create_destination(made, 20)
    return made


async def _deliver(
    store: OperatorBackend,
    dest: Destination,
    status: AttemptStatus,
    *,
    code: str = "500",
    number: int = 1,
    attempt_id: str | None = None,
) -> str:
    """One delivery of a new event to `dest`, recorded with this status; returns the attempt id."""
    e = event(uid("evt"), dest.tenant_id, matched=(dest.id,))
    now = now_ms()
    await store.accept(e, now, now - HOUR)
    [task] = await store.claim(10, LEASE)
    made = attempt(
        attempt_id or uid("att"),
        task.event,
        dest.id,
        time=now_ms(),
        number=number,
        status=status,
        code="200" if status == "success" else code,
    )
    await store.finish([Outcome(task, made)])
    return made.id


async def _drain(store: OperatorBackend) -> list[dict[str, Any]]:
    """Every due operator event, claimed and settled as sent; the envelopes, oldest first."""
    records = await store.claim_operator_events(1000, LEASE)
    await store.settle_operator_events([r.id for r in records], [])
    return [json.loads(r.body) for r in records]


def _topics(envelopes: list[dict[str, Any]]) -> list[str]:
    return [e["topic"] for e in envelopes]


def _record(topic: str = "attempt.success") -> OperatorRecord:
    return OperatorRecord(uid("op"), topic, json.dumps({"topic": topic}).encode(), now_ms())


# Without a judge


async def test_without_a_judge_finishing_queues_nothing_and_counts_nothing(
    store: OperatorBackend,
) -> None:
    dest = await _dest(store)
    await _deliver(store, dest, "failed")

    assert await store.claim_operator_events(100, LEASE) == []
    assert await store.destination_health(dest.tenant_id, dest.id) == Health()


# The outbox


async def test_claimed_events_are_leased_until_settled(store: OperatorBackend) -> None:
    first, second = _record(), _record("attempt.failed")
    await store.add_operator_events([first, second])

    claimed = await store.claim_operator_events(100, LEASE)
    assert [r.id for r in claimed] == [first.id, second.id]
    assert claimed[0].body == first.body and claimed[0].tries == 0
    assert await store.claim_operator_events(100, LEASE) == []  # leased

    await store.settle_operator_events([first.id], [(second.id, now_ms() - 1)])
    [again] = await store.claim_operator_events(100, LEASE)
    assert (again.id, again.tries) == (second.id, 1)


async def test_a_retry_waits_until_its_time(store: OperatorBackend) -> None:
    record = _record()
    await store.add_operator_events([record])
    [claimed] = await store.claim_operator_events(100, LEASE)

    await store.settle_operator_events([], [(claimed.id, now_ms() + HOUR)])

    assert await store.claim_operator_events(100, LEASE) == []


async def test_an_expired_lease_makes_an_event_claimable_again(store: OperatorBackend) -> None:
    record = _record()
    await store.add_operator_events([record])
    await store.claim_operator_events(100, 0)  # a lease that ends at once: its sender died

    [again] = await store.claim_operator_events(100, LEASE)
    assert again.id == record.id


async def test_adding_an_event_twice_keeps_one(store: OperatorBackend) -> None:
    record = _record()
    await store.add_operator_events([record])
    await store.add_operator_events([record])

    assert [r.id for r in await store.claim_operator_events(100, LEASE)] == [record.id]


async def test_queued_events_survive_a_reopen(make_backend: MakeBackend) -> None:
    record = _record()
    first = cast(OperatorBackend, make_backend())
    await first.open()
    try:
        await first.add_operator_events([record])
    finally:
        if not _is_memory(first):  # the memory backend's data is the instance: keep it open
            await first.close()
    second = first if _is_memory(first) else cast(OperatorBackend, make_backend())
    if second is not first:
        await second.open()
    try:
        assert [r.id for r in await second.claim_operator_events(100, LEASE)] == [record.id]
    finally:
        await second.close()


def _is_memory(backend: object) -> bool:
    return type(backend).__name__ == "MemoryBackend"


# Judging recorded attempts


async def test_each_attempt_queues_its_event_with_the_attempt(store: OperatorBackend) -> None:
    store.judge_outcomes(_judge())
    dest = await _dest(store)

    ok = await _deliver(store, dest, "success")
    bad = await _deliver(store, dest, "failed")

    success, failed = await _drain(store)
    assert (success["topic"], success["data"]["attempt"]["id"]) == ("attempt.success", ok)
    assert (failed["topic"], failed["data"]["attempt"]["id"]) == ("attempt.failed", bad)
    assert failed["tenant_id"] == dest.tenant_id
    assert failed["data"]["destination"]["id"] == dest.id
    assert "credentials" not in failed["data"]["destination"]
    assert failed["data"]["event"]["data"] == {"n": 1}


async def test_failures_count_until_a_success_resets_them(store: OperatorBackend) -> None:
    store.judge_outcomes(_judge(wanted=frozenset(), failure_threshold=10, auto_disable=True))
    dest = await _dest(store)

    for _ in range(3):
        await _deliver(store, dest, "failed")
    assert (await store.destination_health(dest.tenant_id, dest.id)).consecutive_failures == 3

    await _deliver(store, dest, "success")
    assert (await store.destination_health(dest.tenant_id, dest.id)).consecutive_failures == 0
    await _deliver(store, dest, "failed")
    assert (await store.destination_health(dest.tenant_id, dest.id)).consecutive_failures == 1


async def test_re_enabling_or_deleting_a_destination_ends_its_run_of_failures(
    store: OperatorBackend,
) -> None:
    store.judge_outcomes(_judge(wanted=frozenset(), failure_threshold=3, auto_disable=True))
    dest = await _dest(store)
    for _ in range(3):
        await _deliver(store, dest, "failed")
    disabled = await store.get_destination(dest.tenant_id, dest.id)
    assert disabled is not None and not disabled.enabled

    await store.update_destination(replace(disabled, disabled_at=None))
    assert (await store.destination_health(dest.tenant_id, dest.id)).consecutive_failures == 0
    await _deliver(store, dest, "failed")  # one failure after re-enabling: still enabled
    again = await store.get_destination(dest.tenant_id, dest.id)
    assert again is not None and again.enabled

    await store.delete_destination(dest.tenant_id, dest.id, now_ms())
    assert (await store.destination_health(dest.tenant_id, dest.id)).consecutive_failures == 0


async def test_alert_levels_then_disabled_once(store: OperatorBackend) -> None:
    """N=4: alerts at 2 (50 %), 3 (70 %) and 4 (100 %; 90 % rounds up to 4 too: the higher
    wins), which also disables the destination: once, though later failures alert again."""
    wanted = frozenset({"alert.destination.consecutive_failure", "alert.destination.disabled"})
    store.judge_outcomes(_judge(wanted=wanted, failure_threshold=4, auto_disable=True))
    dest = await _dest(store)

    for _ in range(5):
        await _deliver(store, dest, "failed")

    envelopes = await _drain(store)
    alerts = [
        e["data"]["consecutive_failures"]
        for e in envelopes
        if e["topic"] == "alert.destination.consecutive_failure"
    ]
    assert [(a["current"], a["threshold"], a["remaining"]) for a in alerts] == [
        (2, 50, 2),
        (3, 70, 1),
        (4, 100, 0),
        (5, 100, 0),
    ]
    assert all(a["max"] == 4 for a in alerts)
    [disabled] = [e for e in envelopes if e["topic"] == "alert.destination.disabled"]
    assert disabled["data"]["reason"] == "consecutive_failure"
    assert disabled["data"]["destination"]["disabled_at"] == disabled["data"]["disabled_at"]
    assert _topics(envelopes).index("alert.destination.disabled") == 3  # after the 100 % alert

    stored = await store.get_destination(dest.tenant_id, dest.id)
    assert stored is not None and stored.disabled_at is not None
    assert [d.id for d in await store.list_destinations(dest.tenant_id) if d.enabled] == []


async def test_an_automatic_disable_is_logged_once_for_the_operator(
    store: OperatorBackend, caplog: pytest.LogCaptureFixture
) -> None:
    store.judge_outcomes(_judge(wanted=frozenset(), failure_threshold=2, auto_disable=True))
    dest = await _dest(store)
    with caplog.at_level(logging.INFO, logger="waypost.storage.judging"):
        for _ in range(4):
            await _deliver(store, dest, "failed")
    lines = [r for r in caplog.records if r.name == "waypost.storage.judging"]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    [line] = lines
    assert line.levelno == logging.INFO
    assert "consecutive_failure" in line.getMessage()
    assert (getattr(line, "tenant_id", None), getattr(line, "destination_id", None)) == (
        dest.tenant_id,
        dest.id,
    )


async def test_without_auto_disable_the_destination_stays_enabled(store: OperatorBackend) -> None:
    store.judge_outcomes(_judge(failure_threshold=2))
    dest = await _dest(store)

    for _ in range(3):
        await _deliver(store, dest, "failed")

    assert "alert.destination.disabled" not in _topics(await _drain(store))
    stored = await store.get_destination(dest.tenant_id, dest.id)
    assert stored is not None and stored.enabled


async def test_a_webhook_answering_410_is_disabled_at_once(store: OperatorBackend) -> None:
    store.judge_outcomes(_judge(failure_threshold=100, auto_disable=True))
    dest = await _dest(store)

    await _deliver(store, dest, "failed", code="410")

    [disabled] = [e for e in await _drain(store) if e["topic"] == "alert.destination.disabled"]
    assert disabled["data"]["reason"] == "gone"
    stored = await store.get_destination(dest.tenant_id, dest.id)
    assert stored is not None and not stored.enabled


async def test_an_attempt_recorded_again_is_judged_once(store: OperatorBackend) -> None:
    """A redelivered outcome (same attempt id) neither counts nor alerts twice."""
    store.judge_outcomes(_judge(failure_threshold=10, auto_disable=True))
    dest = await _dest(store)

    first = await _deliver(store, dest, "failed")
    await _deliver(store, dest, "failed", attempt_id=first)

    assert (await store.destination_health(dest.tenant_id, dest.id)).consecutive_failures == 1
    assert _topics(await _drain(store)) == ["attempt.failed"]


async def test_exhausted_retries_alert_once_per_window(store: OperatorBackend) -> None:
    wanted = frozenset({"alert.attempt.exhausted_retries"})
    store.judge_outcomes(_judge(wanted=wanted, exhausted_window_ms=HOUR, retry_limit=3))
    dest = await _dest(store)

    await _deliver(store, dest, "failed", number=3)  # within the budget: no alert
    await _deliver(store, dest, "failed", number=4)
    await _deliver(store, dest, "failed", number=4)  # inside the window: suppressed

    [alert] = await _drain(store)
    assert alert["topic"] == "alert.attempt.exhausted_retries"
    assert alert["data"]["attempt"]["attempt_number"] == 4


async def test_exhausted_retries_with_no_window_alert_every_time(store: OperatorBackend) -> None:
    wanted = frozenset({"alert.attempt.exhausted_retries"})
    store.judge_outcomes(_judge(wanted=wanted, exhausted_window_ms=0, retry_limit=1))
    dest = await _dest(store)

    await _deliver(store, dest, "failed", number=2)
    await _deliver(store, dest, "failed", number=3)

    assert _topics(await _drain(store)) == ["alert.attempt.exhausted_retries"] * 2
