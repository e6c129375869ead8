"""Recovery's pure rules (which pairs are undelivered) and the command line's progress output."""

from __future__ import annotations

import io
from typing import Any

from waypost import recovery_cli
from waypost.core.models import Destination, Event
from waypost.core.recovery import Candidate, Pending, Tried, undelivered
from waypost.recovery import accepts


def _destination(
    destination_id: str, topics: tuple[str, ...] = ("user.*",), **extra: Any
) -> Destination:
    return Destination(destination_id, "t", "webhook", topics, {}, {}, 0, 0, **extra)


def _event(topic: str = "user.created", **metadata: str) -> Event:
    return Event("e1", "t", topic, 0, b'{"a":1}', metadata=metadata)


def test_pairs_delivered_are_never_undelivered() -> None:
    candidate = Candidate(_event(), {"d1": Tried(2, True), "d2": Tried(1, False)})
    found = undelivered(
        candidate, [_destination("d1"), _destination("d2")], "all", accepts, enabled_only=True
    )
    assert found == [Pending("d2", "failed", 1)]
    assert found[0].next_number == 2


def test_never_attempted_pairs_need_the_destination_to_accept_the_event_now() -> None:
    candidate = Candidate(_event())
    destinations = [_destination("d1"), _destination("d2", ("order.*",))]
    assert undelivered(candidate, destinations, "never", accepts, enabled_only=False) == [
        Pending("d1", "never_attempted", 0)
    ]
    assert undelivered(candidate, destinations, "failed", accepts, enabled_only=False) == []


def test_a_listing_shows_failed_pairs_a_job_no_longer_sends() -> None:
    candidate = Candidate(_event(), {"d1": Tried(1, False)})
    moved = [_destination("d1", ("order.*",))]
    assert undelivered(candidate, moved, "all", accepts, enabled_only=False) == [
        Pending("d1", "failed", 1)
    ]
    assert undelivered(candidate, moved, "all", accepts, enabled_only=True) == []


def test_jobs_skip_disabled_destinations_and_test_events() -> None:
    disabled = [_destination("d1", disabled_at=5)]
    assert undelivered(Candidate(_event()), disabled, "all", accepts, enabled_only=True) == []
    assert len(undelivered(Candidate(_event()), disabled, "all", accepts, enabled_only=False)) == 1
    test = Candidate(_event(**{"outpost-test": "true"}))
    assert undelivered(test, [_destination("d1")], "all", accepts, enabled_only=False) == []


def test_filters_decide_acceptance() -> None:
    picky = _destination("d1", filter={"data": {"a": 2}})
    assert not accepts(picky, _event())
    assert accepts(_destination("d1", filter={"data": {"a": 1}}), _event())


JOB = {"id": "rcv_1", "enqueued": 4, "delivered": 2, "failed": 1, "state": "running"}


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Client:
    def __init__(self, states: list[dict[str, Any]]) -> None:
        self.states = states

    def call(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        return self.states.pop(0)


def test_progress_is_a_bar_of_finished_over_matched() -> None:
    assert recovery_cli.progress_line({**JOB, "matched": None}) == "rcv_1: counting…"
    line = recovery_cli.progress_line({**JOB, "matched": 6})
    assert line.startswith("[" + "#" * 15 + "." * 15 + "] 3/6  queued 4")


def _watch(out: io.StringIO) -> int:
    states = [
        {**JOB, "matched": 6},
        {**JOB, "matched": 6},
        {**JOB, "matched": 6, "delivered": 5, "state": "completed"},
    ]
    client: Any = _Client(states)
    return recovery_cli._watch(client, "t", "rcv_1", out, sleep=lambda _: None)


def test_watching_updates_in_place_on_a_terminal() -> None:
    out = _Tty()
    assert _watch(out) == 0
    text = out.getvalue()
    assert text.count("\r\x1b[2K") == 2  # one per change, none for the unchanged poll
    assert text.endswith("\nrecovery rcv_1 completed\n")


def test_watching_writes_a_line_per_change_elsewhere() -> None:
    out = io.StringIO()
    assert _watch(out) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in out.getvalue()
    assert lines[1].endswith("completed") and lines[2] == "recovery rcv_1 completed"
