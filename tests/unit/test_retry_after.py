"""Retry-After (429/503) for the next automatic retry: parsing and the bounded delay."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from waypost.core.backoff import RetryPolicy
from waypost.core.flow_limits import BadOverride, Overrides, read_overrides
from waypost.core.retry_after import retry_after_seconds

NOW_MS = 1_700_000_000_000


def test_delta_seconds() -> None:
    assert retry_after_seconds("20", NOW_MS) == 20.0
    assert retry_after_seconds(" 0 ", NOW_MS) == 0.0


def test_http_date() -> None:
    later = datetime.fromtimestamp(NOW_MS / 1000 + 90, tz=UTC)
    assert retry_after_seconds(format_datetime(later, usegmt=True), NOW_MS) == 90.0
    earlier = datetime.fromtimestamp(NOW_MS / 1000 - 90, tz=UTC)
    assert retry_after_seconds(format_datetime(earlier, usegmt=True), NOW_MS) == 0.0


@pytest.mark.parametrize("value", ["", "soon", "-5", "1.5", "Wed, 99 Foo 2025 00:00:00 GMT"])
def test_unparsable_values_are_ignored(value: str) -> None:
    assert retry_after_seconds(value, NOW_MS) is None


def test_retry_after_replaces_the_backoff_within_its_bound() -> None:
    policy = RetryPolicy(schedule=(30, 90), retry_after_max_seconds=600)
    assert policy.next_delay_seconds(1, None) == 30
    assert policy.next_delay_seconds(1, 20.0) == 20.0
    assert policy.next_delay_seconds(1, 0.0) == 1.0  # never a hot loop
    assert policy.next_delay_seconds(1, 86_400.0) == 600.0
    assert RetryPolicy(retry_after_max_seconds=0).next_delay_seconds(1, 20.0) == 30


def test_flow_overrides_in_metadata() -> None:
    assert read_overrides(None) == Overrides()
    assert read_overrides(
        {"outpost.max_concurrency": "4", "outpost.rate_limit_per_second": "0.5"}
    ) == Overrides(4, 0.5)
    for bad in (
        {"outpost.max_concurrency": "0"},
        {"outpost.max_concurrency": "x"},
        {"outpost.rate_limit_per_second": "-1"},
        {"outpost.rate_limit_per_second": "nan"},
    ):
        with pytest.raises(BadOverride):
            read_overrides(bad)
