"""Wire time: RFC 3339 in UTC with `Z`, milliseconds, lenient input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waypost.core import timefmt

# Year 1 to 9999 in ms, the range RFC 3339 can write.
MS = st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999)


@given(MS)
def test_formatted_times_parse_back_to_the_same_millisecond(ms: int) -> None:
    assert timefmt.parse(timefmt.format_ms(ms)) == ms


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1_700_000_000_120, "2023-11-14T22:13:20.12Z"),
        (1_700_000_000_001, "2023-11-14T22:13:20.001Z"),
        (-59_029_026_179_000, "0099-06-11T16:17:01Z"),
        (-62_135_596_800_000, "0001-01-01T00:00:00Z"),
    ],
)
def test_format_is_rfc3339_utc_with_trimmed_milliseconds(ms: int, text: str) -> None:
    assert timefmt.format_ms(ms) == text


def test_seconds_format_drops_the_fraction() -> None:
    assert timefmt.format_seconds(1_700_000_000_999) == "2023-11-14T22:13:20Z"


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2024-01-01T00:00:00Z", 1_704_067_200_000),
        ("2024-01-01T01:00:00+01:00", 1_704_067_200_000),
        ("2024-01-01T00:00:00.123456789Z", 1_704_067_200_123),
        ("2024-01-01T00:00:00", 1_704_067_200_000),  # naive: the Python SDK sends these
        ("2024-01-01t00:00:00z", 1_704_067_200_000),
    ],
)
def test_parse_accepts_offsets_fractions_and_naive_times(text: str, ms: int) -> None:
    assert timefmt.parse(text) == ms


def test_date_only_is_accepted_where_asked_for() -> None:
    assert timefmt.parse("2024-01-01", allow_date=True) == 1_704_067_200_000
    with pytest.raises(ValueError):
        timefmt.parse("2024-01-01")


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13-01T00:00:00Z", "12:00:00"])
def test_parse_rejects_what_is_not_a_time(text: str) -> None:
    with pytest.raises(ValueError):
        timefmt.parse(text)
