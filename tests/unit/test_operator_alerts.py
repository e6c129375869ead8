"""The alert judge (waypost/operator/alerts.py): levels, auto-disable, exhausted retries, topic
selection, and the envelope it writes. Pure: no store."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waypost.core.models import Attempt, DeliveryTask, Destination, Event, Outcome
from waypost.core.operator_records import Health, Verdict
from waypost.operator.alerts import AlertJudge, AlertSettings

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z
EVENT = Event("evt_1", "acme", "user.created", NOW - 5, b'{"b":1,"a":[1.50]}')
DEST = Destination(
    "des_1", "acme", "webhook", ("user.created",), {"url": "https://x.test/h"},
    {"secret": "whsec_hidden"}, NOW - 9, NOW - 9,
)  # fmt: skip


def outcome(status: str = "failed", *, code: str = "500", number: int = 1, **event: Any) -> Outcome:
    e = replace(EVENT, **event)
    task = DeliveryTask(1, e, DEST.id, number)
    made = Attempt(
        "att_1", "acme", e.id, DEST.id, "webhook", e.topic, status,  # type: ignore[arg-type]
        NOW, number, False, code,
    )  # fmt: skip
    return Outcome(task, made)


def judge(**settings: Any) -> AlertJudge:
    return AlertJudge(AlertSettings(**{"wanted": frozenset({"*"}), **settings}))


def bodies(verdict: Verdict) -> list[dict[str, Any]]:
    return [json.loads(e.body) for e in verdict.events]


def run(j: AlertJudge, failures: int) -> list[tuple[int, int]]:
    """(count, percentage) of each consecutive-failure alert over `failures` failures."""
    health, levels = Health(), []
    for _ in range(failures):
        verdict = j.judge(outcome(), DEST, health, NOW)
        health = verdict.health
        for body in bodies(verdict):
            if body["topic"] == "alert.destination.consecutive_failure":
                counts = body["data"]["consecutive_failures"]
                levels.append((counts["current"], counts["threshold"]))
    return levels


def test_outposts_e2e_levels_for_twenty() -> None:
    assert run(judge(failure_threshold=20), 22) == [
        (10, 50), (14, 70), (18, 90), (20, 100), (21, 100), (22, 100),
    ]  # fmt: skip


def test_with_a_threshold_of_one_every_failure_is_at_100_percent() -> None:
    assert run(judge(failure_threshold=1), 2) == [(1, 100), (2, 100)]


@settings(deadline=None)  # each example judges up to n attempts
@given(st.integers(min_value=1, max_value=150))
def test_levels_are_the_rounded_up_percentages(n: int) -> None:
    found = dict(run(judge(failure_threshold=n), n))
    assert found[n] == 100
    for p in (50, 70, 90):
        at = -(-n * p // 100)
        assert at in found and found[at] >= p


def test_disabling_is_asked_from_the_threshold_on_only_with_auto_disable() -> None:
    health = Health(consecutive_failures=19)
    assert judge(failure_threshold=20).judge(outcome(), DEST, health, NOW).disable_reason is None
    asked = judge(failure_threshold=20, auto_disable=True).judge(outcome(), DEST, health, NOW)
    assert asked.disable_reason == "consecutive_failure"
    assert asked.health.consecutive_failures == 20


def test_a_success_resets_the_count_and_keeps_the_exhausted_mark() -> None:
    verdict = judge(failure_threshold=5).judge(outcome("success"), DEST, Health(4, NOW - 1), NOW)
    assert verdict.health == Health(0, NOW - 1)
    assert [b["topic"] for b in bodies(verdict)] == ["attempt.success"]


@pytest.mark.parametrize(
    ("auto_disable", "code", "type_", "reason"),
    [
        (True, "410", "webhook", "gone"),
        (False, "410", "webhook", None),
        (True, "404", "webhook", None),
    ],
)
def test_410_gone(auto_disable: bool, code: str, type_: str, reason: str | None) -> None:
    j = judge(failure_threshold=None, auto_disable=auto_disable)
    assert j.judge(outcome(code=code), DEST, Health(), NOW).disable_reason == reason


def test_410_from_another_type_is_no_webhook_answer() -> None:
    made = outcome(code="410")
    assert made.attempt is not None
    made = replace(made, attempt=replace(made.attempt, destination_type="rabbitmq"))
    assert judge(auto_disable=True).judge(made, DEST, Health(), NOW).disable_reason is None


def test_exhausted_retries_past_the_limit_within_the_window() -> None:
    j = judge(wanted=frozenset({"alert.attempt.exhausted_retries"}), exhausted_window_ms=1000)
    j = AlertJudge(replace(j.settings, retry_limit=3))
    assert j.judge(outcome(number=3), DEST, Health(), NOW).events == ()
    first = j.judge(outcome(number=4), DEST, Health(), NOW)
    assert len(first.events) == 1 and first.health.exhausted_alerted_at == NOW
    assert j.judge(outcome(number=4), DEST, first.health, NOW + 999).events == ()
    assert len(j.judge(outcome(number=4), DEST, first.health, NOW + 1000).events) == 1
    not_eligible = outcome(number=4, eligible_for_retry=False)
    assert j.judge(not_eligible, DEST, Health(), NOW).events == ()


def test_nothing_is_tracked_or_sent_unless_asked() -> None:
    quiet = AlertJudge(AlertSettings(failure_threshold=100))
    assert not quiet.active and not quiet.tracks_health
    assert AlertJudge(AlertSettings(failure_threshold=100, auto_disable=True)).tracks_health
    only_success = judge(wanted=frozenset({"attempt.success"}), failure_threshold=3)
    assert only_success.active and not only_success.tracks_health
    assert only_success.judge(outcome(), DEST, Health(2), NOW).events == ()


def test_the_envelope() -> None:
    j = judge(deployment_id="dp_1")
    [body] = bodies(j.judge(outcome(), DEST, Health(), NOW))
    assert list(body) == ["id", "topic", "time", "deployment_id", "tenant_id", "data"]
    assert (body["topic"], body["time"], body["tenant_id"]) == (
        "attempt.failed",
        "2026-01-01T00:00:00Z",
        "acme",
    )
    data = body["data"]
    assert data["destination"] == {
        "id": "des_1",
        "tenant_id": "acme",
        "type": "webhook",
        "topics": ["user.created"],
        "config": {"url": "https://x.test/h"},
        "created_at": "2025-12-31T23:59:59.991Z",
        "disabled_at": None,
    }
    assert data["event"]["data"] == {"b": 1, "a": [1.5]}
    assert data["attempt"]["attempt_number"] == 1 and data["attempt"]["code"] == "500"
    [disabled] = j.disabled(outcome(), DEST, "consecutive_failure", NOW)
    shown = json.loads(disabled.body)["data"]
    assert shown["destination"]["disabled_at"] == shown["disabled_at"] == "2026-01-01T00:00:00Z"


def test_the_event_data_is_embedded_as_published() -> None:
    [record] = judge().judge(outcome(), DEST, Health(), NOW).events
    assert b'"data":{"b":1,"a":[1.50]}' in record.body
