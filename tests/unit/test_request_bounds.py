"""The bounds of issue 13: each answers its 4xx, and the costs they bound stay linear."""

from __future__ import annotations

import json

import pytest

from waypost.core import filters, metrics, topics
from waypost.core.limits import json_too_deep
from waypost.errors import ValidationError


def test_topic_count_and_length_limits_answer_422() -> None:
    limits = topics.TopicLimits(max_topics=3, max_topic_bytes=5)
    assert topics.validate_and_normalise(["a", "b", "c"], [], False, limits) == ("a", "b", "c")
    with pytest.raises(ValidationError) as many:
        topics.validate_and_normalise(["a", "b", "c", "d"], [], False, limits)
    assert many.value.data == ["topics must have at most 3 entries"]
    with pytest.raises(ValidationError) as long:
        topics.validate_and_normalise(["é" * 3], [], False, limits)  # 6 bytes
    assert long.value.data == ["topics must be at most 5 bytes each"]


def test_long_wildcard_patterns_are_matched_in_linear_time() -> None:
    # Quadratic under the old backtracking matcher: 12,000² steps per comparison.
    first, second = "*" + "a" * 12_000 + "b", "*" + "a" * 12_000 + "c"
    assert topics.normalise([first, second]) == (first, second)
    assert not topics.matches(first, "a" * 100_000)


def test_prefix_patterns_cover_longer_ones_and_exact_topics() -> None:
    assert topics.normalise(["user.created", "user.*", "user.profile.*", "order.*"]) == (
        "user.*",
        "order.*",
    )


def test_filter_size_and_node_limits_answer_422() -> None:
    limits = filters.FilterLimits(max_bytes=40, max_nodes=6)
    filters.validate({"data": {"tag": {"$in": ["a", "b"]}}}, limits)
    with pytest.raises(ValidationError) as nodes:
        filters.validate({"data": {"tag": {"$in": ["a", "b", "c", "d"]}}}, limits)
    assert nodes.value.data == ["filter must hold at most 6 values"]
    with pytest.raises(ValidationError) as size:
        filters.validate({"data": {"tag": "x" * 40}}, limits)
    assert size.value.data == ["filter must be at most 40 bytes of JSON"]


def test_filter_evaluation_stops_when_its_budget_is_spent() -> None:
    filter = {"data": {"items": list(range(100))}}
    document = {"data": {"items": list(range(1000, 2000))}}
    assert not filters.matches(filter, document)  # unbudgeted: evaluated to the end
    with pytest.raises(filters.OverBudget):
        filters.matches(filter, document, filters.Budget(1000))


def test_json_depth_is_measured_on_the_bytes() -> None:
    assert not json_too_deep(b"[" * 40 + b"]" * 40, 40)
    assert json_too_deep(b"[" * 41 + b"]" * 41, 40)
    assert json_too_deep(b"[" * 400_000 + b"]" * 400_000, 128)
    # Brackets inside strings (escaped quotes included) are not structure.
    text = json.dumps({"a": '\\"' + "[" * 100, "b": [[1], [2]] * 100}).encode()
    assert not json_too_deep(text, 40)


@pytest.mark.parametrize("granularity", ["1M", "12M"])
def test_month_buckets_in_year_9999_are_answered(granularity: str) -> None:
    query = metrics.build_query(
        "events",
        start="9999-01-01T00:00:00Z",
        end="9999-12-31T23:59:59Z",
        measures=["count", "rate"],
        granularity=granularity,
        dimensions=[],
        filters={},
    )
    points = metrics.answer(query, [], 0)["data"]
    assert points[0]["time_bucket"] == "9999-01-01T00:00:00Z"
