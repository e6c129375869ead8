"""Retry policy (contract.md §3.2 step 5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waypost.core.backoff import MAX_DELAY_SECONDS, RetryPolicy


@pytest.mark.parametrize(
    ("attempt", "expected"), [(1, 30), (2, 60), (3, 120), (4, 240), (5, 480), (10, 15360)]
)
def test_default_exponential_delays(attempt: int, expected: int) -> None:
    assert RetryPolicy().delay_seconds(attempt) == expected


def test_default_budget_is_ten_retries() -> None:
    policy = RetryPolicy()
    assert policy.limit == 10
    assert [n for n in range(1, 15) if policy.retries_after(n)] == list(range(1, 11))


def test_custom_interval() -> None:
    policy = RetryPolicy(max_retries=3, interval_seconds=1)
    assert [policy.delay_seconds(n) for n in (1, 2, 3)] == [1, 2, 4]
    assert policy.retries_after(3)
    assert not policy.retries_after(4)


def test_exponential_delay_is_capped() -> None:
    policy = RetryPolicy()
    assert policy.delay_seconds(40) == MAX_DELAY_SECONDS
    assert policy.delay_seconds(10**9) == MAX_DELAY_SECONDS


def test_schedule_overrides_curve_and_budget() -> None:
    policy = RetryPolicy(max_retries=10, interval_seconds=30, schedule=(2, 4))
    assert policy.limit == 2
    assert [policy.delay_seconds(n) for n in (1, 2, 3, 7)] == [2, 4, 4, 4]
    assert policy.retries_after(2)
    assert not policy.retries_after(3)


def test_zero_retries() -> None:
    policy = RetryPolicy(max_retries=0)
    assert policy.limit == 0
    assert not policy.retries_after(1)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_retries": -1}, {"interval_seconds": -5}, {"schedule": (1, 0)}, {"schedule": (-2,)}],
)
def test_rejects_nonsense_policies(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(ValueError):
        RetryPolicy().delay_seconds(0)


def test_policy_is_frozen() -> None:
    policy = RetryPolicy()
    with pytest.raises(AttributeError):
        policy.max_retries = 3  # type: ignore[misc]


@given(st.integers(0, 3600), st.integers(1, 200))
def test_exponential_delay_is_monotone_and_bounded(interval: int, attempt: int) -> None:
    policy = RetryPolicy(interval_seconds=interval)
    now, after = policy.delay_seconds(attempt), policy.delay_seconds(attempt + 1)
    assert 0 <= now <= after <= MAX_DELAY_SECONDS
    if after < MAX_DELAY_SECONDS:
        assert after == 2 * now


@given(st.lists(st.integers(1, 10**6), min_size=1, max_size=8), st.integers(1, 50))
def test_schedule_delay_is_an_entry(schedule: list[int], attempt: int) -> None:
    policy = RetryPolicy(schedule=tuple(schedule))
    expected = schedule[attempt - 1] if attempt <= len(schedule) else schedule[-1]
    assert policy.delay_seconds(attempt) == expected
    assert policy.retries_after(attempt) is (attempt <= len(schedule))
