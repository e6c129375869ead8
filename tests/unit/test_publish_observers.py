"""OpenTelemetry and Prometheus both on: the publisher's one observer tells both."""

from __future__ import annotations

from waypost.core.models import Event
from waypost.telemetry.hooks import either


class Seen:
    def __init__(self, start: int) -> None:
        self.start = start
        self.calls: list[tuple[str, bool, int]] = []

    def publishing(self) -> int:
        return self.start

    def published(self, event: Event, duplicate: bool, started_ns: int) -> None:
        self.calls.append((event.id, duplicate, started_ns))


def test_either_tells_both_with_one_start_time() -> None:
    first, second = Seen(111), Seen(222)
    observer = either(first, second)
    assert observer is not None
    started = observer.publishing()
    observer.published(Event("e", "t", "a", 0, b"{}", True, {}), False, started)
    assert first.calls == second.calls == [("e", False, 111)]


def test_either_is_the_one_that_is_set_or_none() -> None:
    only = Seen(1)
    assert either(only, None) is only
    assert either(None, only) is only
    assert either(None, None) is None
