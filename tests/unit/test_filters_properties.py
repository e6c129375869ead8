"""Hostile filters and documents (contract.md §6): arbitrary nested JSON on both sides.

- `validate` accepts or raises the documented 422 `ValidationError` (one message), nothing else;
- `matches` returns a bool for any filter, even one `validate` would refuse, and any document;
- the depth limit is exactly `MAX_DEPTH` levels of objects and arrays;
- a filter behaves the same after a JSON round trip (it is stored as JSON);
- the document built from an event's raw data never raises, whatever the bytes.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from waypost.core import filters
from waypost.core.models import Event
from waypost.errors import ValidationError

# Keys a hostile caller would try: every operator, near-misses, plain and odd field names.
keys = (
    st.sampled_from(sorted(filters.OPERATORS))
    | st.sampled_from(
        ["$", "$exists", "$regex", "$ref", "$OR", "a", "b", "data", "metadata", "", " ", "$$"]
    )
    | st.text(max_size=6)
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=30,
)
json_objects = st.dictionaries(keys, json_values, max_size=5)


def depth(node: Any) -> int:
    """Levels of objects and arrays, the root object being level 1 (as `validate` counts)."""
    if isinstance(node, dict):
        return 1 + max((depth(v) for v in node.values()), default=0)
    if isinstance(node, list):
        return 1 + max((depth(v) for v in node), default=0)
    return 0


@given(json_values)
@settings(max_examples=500)
def test_validate_accepts_or_raises_the_documented_error(candidate: Any) -> None:
    try:
        filters.validate(candidate)
    except ValidationError as exc:
        assert exc.status == 422
        assert exc.message == "validation error"
        assert isinstance(exc.data, list) and len(exc.data) == 1
        assert isinstance(exc.data[0], str) and exc.data[0]


@given(json_values, json_values)
@settings(max_examples=500)
def test_matches_never_raises(candidate: Any, document: Any) -> None:
    schema = candidate if isinstance(candidate, dict) else {"data": candidate}
    assert filters.matches(schema, {"data": document}) in (True, False)
    assert filters.matches(schema, document if isinstance(document, dict) else {}) in (True, False)


@given(json_objects, json_objects)
@settings(max_examples=300)
def test_a_stored_filter_behaves_as_sent(schema: dict[str, Any], document: dict[str, Any]) -> None:
    stored = json.loads(json.dumps(schema))
    assert filters.matches(stored, document) is filters.matches(schema, document)


# Plain keys only, so that depth is the only reason to refuse.
plain_keys = st.text(alphabet="abcxyz", max_size=3)


@st.composite
def nested(draw: st.DrawFn) -> dict[str, Any]:
    """An object `levels` deep through a random mix of objects and arrays, with side branches."""
    levels = draw(st.integers(1, filters.MAX_DEPTH + 8))
    node: Any = draw(scalars)
    for _ in range(levels - 1):
        if draw(st.booleans()):
            node = [node, *draw(st.lists(scalars, max_size=2))]
        else:
            node = {draw(plain_keys): node} | draw(st.dictionaries(plain_keys, scalars, max_size=2))
    key = draw(plain_keys)
    root = {key: node} if not isinstance(node, dict) or levels == 1 else node
    return root if isinstance(root, dict) else {"k": root}


@given(nested())
@settings(max_examples=300)
def test_depth_limit_is_exact(schema: dict[str, Any]) -> None:
    allowed = depth(schema) <= filters.MAX_DEPTH
    try:
        filters.validate(schema)
    except ValidationError as exc:
        assert not allowed, exc.data
        assert exc.data == [f"filter is too deeply nested (more than {filters.MAX_DEPTH} levels)"]
    else:
        assert allowed, depth(schema)


@given(st.binary(max_size=64) | json_values.map(lambda v: json.dumps(v).encode()))
def test_event_document_never_raises(raw: bytes) -> None:
    event = Event(id="e", tenant_id="t", topic="x", time=0, data=raw)
    document = filters.event_document(event)
    assert set(document) == {"id", "topic", "time", "metadata", "data"}
    assert filters.matches({"data": {"$exist": True}}, document)
