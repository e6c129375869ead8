"""Destination filters (contract.md §6)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waypost.core import filters
from waypost.core.models import Event
from waypost.errors import ValidationError

DOC: dict[str, Any] = {
    "id": "evt_1",
    "topic": "order.created",
    "time": "2025-01-15T10:00:00Z",
    "metadata": {"source": "api", "region": "eu"},
    "data": {
        "status": "paid",
        "currency": "usd",
        "amount": 150,
        "ratio": 0.5,
        "flag": True,
        "off": False,
        "zero": 0,
        "one": 1,
        "count_str": "1",
        "note": None,
        "email": "jane@example.com",
        "customer": {"tier": "premium", "address": {"country": "FR"}},
        "tags": ["urgent", "vip", "b2b"],
        "scores": [1, 5, 10],
        "items": [{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": 5}],
        "matrix": [[1, 2], [3]],
        "empty_list": [],
        "empty_obj": {},
    },
}

# (filter, expected) against DOC. Grouped by the rule of contract.md §6 they exercise.
CASES: list[tuple[dict[str, Any], bool]] = [
    # contract.md §6.3 examples
    ({"data": {"status": "paid", "currency": "usd"}}, True),
    ({"data": {"status": "paid", "currency": "eur"}}, False),
    ({"data": {"customer": {"tier": "premium"}}}, True),
    ({"data": {"customer": {"tier": "basic"}}}, False),
    ({"data": {"amount": {"$gte": 100, "$lt": 500}}}, True),
    ({"data": {"amount": {"$gte": 200, "$lt": 500}}}, False),
    ({"data": {"status": {"$in": ["pending", "paid"]}}}, True),
    ({"data": {"status": {"$in": ["pending", "processing"]}}}, False),
    ({"data": {"email": {"$endsWith": "@example.com"}}}, True),
    ({"data": {"email": {"$endsWith": "@example.org"}}}, False),
    ({"data": {"deleted_at": {"$exist": False}}}, True),
    ({"data": {"status": {"$exist": False}}}, False),
    ({"$or": [{"data": {"status": "paid"}}, {"data": {"status": "shipped"}}]}, True),
    ({"$or": [{"data": {"status": "new"}}, {"data": {"status": "shipped"}}]}, False),
    ({"$and": [{"data": {"status": "paid"}}, {"data": {"amount": {"$gte": 100}}}]}, True),
    ({"$and": [{"data": {"status": "paid"}}, {"data": {"amount": {"$gte": 151}}}]}, False),
    ({"metadata": {"source": "api"}}, True),
    ({"metadata": {"source": "dashboard"}}, False),
    ({"time": {"$gte": "2025-01-01T00:00:00Z", "$lt": "2025-02-01T00:00:00Z"}}, True),
    ({"time": {"$gte": "2025-02-01T00:00:00Z"}}, False),
    ({"$not": {"data": {"status": "refunded"}}, "$and": [{"topic": "order.created"}]}, True),
    ({"$not": {"data": {"status": "paid"}}, "$and": [{"topic": "order.created"}]}, False),
    # top-level fields and implicit AND
    ({"topic": "order.created"}, True),
    ({"id": "evt_1", "topic": "order.created"}, True),
    ({"id": "evt_1", "topic": "order.paid"}, False),
    ({"missing": "x"}, False),
    ({"data": {"customer": {"address": {"country": "FR"}}}}, True),
    ({"data": {"customer": {"address": {"city": "Paris"}}}}, False),
    # primitive equality: numbers as floats, no cross-type equality
    ({"data": {"amount": 150.0}}, True),
    ({"data": {"amount": "150"}}, False),
    ({"data": {"count_str": 1}}, False),
    ({"data": {"count_str": "1"}}, True),
    ({"data": {"ratio": 0.5}}, True),
    ({"data": {"flag": True}}, True),
    ({"data": {"flag": 1}}, False),  # Python's True == 1 must not leak through
    ({"data": {"one": True}}, False),
    ({"data": {"zero": False}}, False),
    ({"data": {"off": 0}}, False),
    ({"data": {"off": False}}, True),
    ({"data": {"note": None}}, True),
    ({"data": {"note": "null"}}, False),
    ({"data": {"status": None}}, False),
    ({"data": {"missing": None}}, False),  # absent is not null
    ({"data": {"status": "Paid"}}, False),
    # primitive schema vs array value: any element equals
    ({"data": {"tags": "urgent"}}, True),
    ({"data": {"tags": "spam"}}, False),
    ({"data": {"scores": 5.0}}, True),
    ({"data": {"scores": "5"}}, False),
    ({"data": {"empty_list": "x"}}, False),
    ({"data": {"matrix": 3}}, True),  # nested arrays are searched too
    # array schema vs array value: contains all
    ({"data": {"tags": ["urgent", "vip"]}}, True),
    ({"data": {"tags": ["vip", "urgent"]}}, True),
    ({"data": {"tags": ["urgent", "spam"]}}, False),
    ({"data": {"tags": []}}, True),
    ({"data": {"status": ["paid"]}}, False),  # array schema vs primitive
    # object schema vs array of objects / mismatched types
    ({"data": {"items": {"sku": "B2"}}}, True),
    ({"data": {"items": {"sku": "B2", "qty": 5}}}, True),
    ({"data": {"items": {"sku": "B2", "qty": 2}}}, False),  # must hold on one element
    ({"data": {"items": {"sku": "C3"}}}, False),
    ({"data": {"status": {"nested": "x"}}}, False),
    ({"data": {"customer": "premium"}}, False),
    ({"data": {"customer": {}}}, True),
    ({"data": {"empty_obj": {}}}, True),
    # $eq / $neq
    ({"data": {"status": {"$eq": "paid"}}}, True),
    ({"data": {"amount": {"$eq": 150.0}}}, True),
    ({"data": {"flag": {"$eq": 1}}}, False),
    ({"data": {"customer": {"$eq": {"address": {"country": "FR"}, "tier": "premium"}}}}, True),
    ({"data": {"customer": {"$eq": {"tier": "premium"}}}}, False),
    ({"data": {"tags": {"$eq": ["urgent", "vip", "b2b"]}}}, True),
    ({"data": {"tags": {"$eq": ["vip", "urgent", "b2b"]}}}, False),
    ({"data": {"tags": {"$eq": "urgent"}}}, False),  # operators see the array as a whole
    ({"data": {"scores": {"$eq": [1.0, 5, 10.0]}}}, True),
    ({"data": {"status": {"$neq": "void"}}}, True),
    ({"data": {"status": {"$neq": "paid"}}}, False),
    ({"data": {"one": {"$neq": True}}}, True),
    ({"data": {"note": {"$eq": None}}}, True),
    ({"data": {"missing": {"$neq": "x"}}}, False),  # no value to compare
    # ordering operators
    ({"data": {"amount": {"$gt": 149}}}, True),
    ({"data": {"amount": {"$gt": 150}}}, False),
    ({"data": {"amount": {"$gte": 150}}}, True),
    ({"data": {"amount": {"$lt": 150}}}, False),
    ({"data": {"amount": {"$lte": 150}}}, True),
    ({"data": {"ratio": {"$lt": 1}}}, True),
    ({"data": {"status": {"$gt": "p"}}}, True),
    ({"data": {"status": {"$lt": "p"}}}, False),
    ({"data": {"count_str": {"$gte": 0}}}, False),  # string vs number
    ({"data": {"amount": {"$gte": "100"}}}, False),
    ({"data": {"flag": {"$gte": 0}}}, False),  # bool is not a number
    ({"data": {"note": {"$lt": 1}}}, False),
    ({"data": {"scores": {"$gt": 0}}}, False),
    ({"data": {"missing": {"$lt": 1}}}, False),
    # $in / $nin
    ({"data": {"amount": {"$in": [100, 150.0]}}}, True),
    ({"data": {"amount": {"$in": ["150"]}}}, False),
    ({"data": {"flag": {"$in": [1]}}}, False),
    ({"data": {"note": {"$in": [None, "x"]}}}, True),
    ({"data": {"email": {"$in": "example"}}}, True),  # substring of the value
    ({"data": {"status": {"$in": "paid and more"}}}, False),
    ({"data": {"tags": {"$in": "vip"}}}, True),  # array contains
    ({"data": {"tags": {"$in": "spam"}}}, False),
    ({"data": {"scores": {"$in": 10}}}, True),
    ({"data": {"tags": {"$in": ["vip"]}}}, False),  # array vs array unsupported
    ({"data": {"amount": {"$in": 150}}}, False),  # number vs number unsupported
    ({"data": {"customer": {"$in": ["premium"]}}}, False),
    ({"data": {"status": {"$nin": ["void", "refunded"]}}}, True),
    ({"data": {"status": {"$nin": ["paid"]}}}, False),
    ({"data": {"email": {"$nin": "gmail"}}}, True),
    ({"data": {"tags": {"$nin": "vip"}}}, False),
    ({"data": {"tags": {"$nin": ["vip"]}}}, False),  # type error stays a failure
    ({"data": {"amount": {"$nin": 5}}}, False),
    ({"data": {"missing": {"$nin": ["x"]}}}, False),
    # $startsWith / $endsWith
    ({"data": {"email": {"$startsWith": "jane@"}}}, True),
    ({"data": {"email": {"$startsWith": "john@"}}}, False),
    ({"data": {"email": {"$startsWith": ["john", "jane"]}}}, True),
    ({"data": {"email": {"$startsWith": ["john", "bob"]}}}, False),
    ({"data": {"email": {"$endsWith": [".org", ".com"]}}}, True),
    ({"data": {"email": {"$startsWith": ["jane", 5]}}}, False),
    ({"data": {"amount": {"$startsWith": "1"}}}, False),
    ({"data": {"tags": {"$startsWith": "urg"}}}, False),
    ({"data": {"email": {"$endsWith": 5}}}, False),
    # $exist
    ({"data": {"status": {"$exist": True}}}, True),
    ({"data": {"note": {"$exist": True}}}, True),  # null is present
    ({"data": {"note": {"$exist": False}}}, False),
    ({"data": {"missing": {"$exist": True}}}, False),
    ({"data": {"missing": {"$exist": False}}}, True),
    ({"data": {"tags": {"$exist": True}}}, True),
    ({"data": {"status": {"$exist": "yes"}}}, False),
    ({"nope": {"deeper": {"$exist": False}}}, False),  # the parent itself is missing
    ({"data": {"customer": {"vip": {"$exist": False}, "tier": "premium"}}}, True),
    # value-level $or / $and
    ({"data": {"amount": {"$or": [100, 150]}}}, True),
    ({"data": {"amount": {"$or": [100, 200]}}}, False),
    ({"data": {"amount": {"$or": [{"$lt": 10}, {"$gt": 100}]}}}, True),
    ({"data": {"tags": {"$or": ["spam", "vip"]}}}, True),
    ({"data": {"amount": {"$and": [{"$gt": 100}, {"$lt": 200}]}}}, True),
    ({"data": {"amount": {"$and": [{"$gt": 100}, {"$lt": 120}]}}}, False),
    ({"$or": []}, False),
    ({"$and": []}, True),
    ({"$or": {"data": {"status": "paid"}}}, False),  # malformed operand never matches
    # $not at every level (superset of Outpost)
    ({"$not": {"topic": "order.created"}}, False),
    ({"$not": {"topic": "user.created"}}, True),
    ({"data": {"status": {"$not": {"$in": ["void", "refunded"]}}}}, True),
    ({"data": {"status": {"$not": {"$in": ["paid"]}}}}, False),
    ({"data": {"status": {"$not": "paid"}}}, False),
    ({"data": {"tags": {"$not": "vip"}}}, False),
    ({"data": {"tags": {"$not": "spam"}}}, True),
    ({"data": {"missing": {"$not": {"$eq": 1}}}}, True),
    ({"$not": {"$not": {"topic": "order.created"}}}, True),
    # unknown operators are treated as failing conditions at match time
    ({"data": {"status": {"$regex": "p.*"}}}, False),
]


@pytest.mark.parametrize(("schema", "expected"), CASES)
def test_filter_cases(schema: dict[str, Any], expected: bool) -> None:
    assert filters.matches(schema, DOC) is expected


@pytest.mark.parametrize(("schema", "expected"), CASES)
def test_not_inverts_each_case(schema: dict[str, Any], expected: bool) -> None:
    assert filters.matches({"$not": schema}, DOC) is (not expected)


def test_there_are_plenty_of_cases() -> None:
    assert len(CASES) >= 80


@pytest.mark.parametrize(
    ("amount", "expected"), [(150, True), (200, True), (50, False), (100, True), (99.99, False)]
)
def test_gte_range_like_e2e(amount: float, expected: bool) -> None:
    assert filters.matches({"data": {"amount": {"$gte": 100}}}, {"data": {"amount": amount}}) is (
        expected
    )


@pytest.mark.parametrize("empty", [None, {}])
def test_empty_filter_matches_everything(empty: dict[str, Any] | None) -> None:
    assert filters.matches(empty, {})
    assert filters.matches(empty, DOC)


def test_never_raises_on_absurd_nesting() -> None:
    schema: dict[str, Any] = {"data": 1}
    for _ in range(5001):  # odd: were it evaluated at all, it would match
        schema = {"$not": schema}
    assert filters.matches(schema, DOC) is False


def test_huge_integers_compare_as_floats() -> None:
    document = {"n": 2**53 + 1, "big": 10**400}
    assert filters.matches({"n": 2**53}, document)
    assert filters.matches({"big": {"$gt": 1e308}}, document)


# --- properties ---------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["a", "b", ""])
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("xyz"), inner),
    max_leaves=8,
)
documents = st.dictionaries(st.sampled_from("xyz"), json_values, max_size=3)
operator_schemas = st.fixed_dictionaries(
    {},
    optional={
        "$eq": json_scalars,
        "$in": st.lists(json_scalars, max_size=3) | st.sampled_from(["a", "b"]),
        "$gte": st.integers(-5, 5),
        "$exist": st.booleans(),
        "$startsWith": st.sampled_from(["", "a"]),
    },
)
field_schemas = st.dictionaries(st.sampled_from("xyz"), json_scalars | operator_schemas, max_size=3)


@given(field_schemas, documents)
def test_not_is_negation_at_object_level(schema: dict[str, Any], document: dict[str, Any]) -> None:
    assert filters.matches({"$not": schema}, document) is (not filters.matches(schema, document))


@given(field_schemas, field_schemas, documents)
def test_or_and_agree_with_python(
    a: dict[str, Any], b: dict[str, Any], document: dict[str, Any]
) -> None:
    ma, mb = filters.matches(a, document), filters.matches(b, document)
    assert filters.matches({"$or": [a, b]}, document) is (ma or mb)
    assert filters.matches({"$and": [a, b]}, document) is (ma and mb)


@given(documents)
def test_document_matches_itself_field_by_field(document: dict[str, Any]) -> None:
    # Equality of every scalar field is implied by the document's own values.
    schema = {k: v for k, v in document.items() if not isinstance(v, dict | list)}
    assert filters.matches(schema, document)


@given(json_scalars, st.sampled_from(["x", "y"]))
def test_in_and_nin_are_complementary_on_scalars(value: Any, key: str) -> None:
    document = {key: value}
    members = [1, "a", None]
    isin = filters.matches({key: {"$in": members}}, document)
    notin = filters.matches({key: {"$nin": members}}, document)
    assert isin is not notin


# --- event_document -----------------------------------------------------------------------------


def make_event(data: bytes, time_ms: int = 1736935200123) -> Event:
    return Event(
        id="evt_9",
        tenant_id="t1",
        topic="user.created",
        time=time_ms,
        data=data,
        metadata={"source": "api"},
    )


def test_event_document_shape() -> None:
    document = filters.event_document(make_event(b'{"a":1,"b":[true]}'))
    assert document == {
        "id": "evt_9",
        "topic": "user.created",
        "time": "2025-01-15T10:00:00Z",
        "metadata": {"source": "api"},
        "data": {"a": 1, "b": [True]},
    }
    assert json.dumps(document)  # plain JSON values only


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe", b"[" * 100000])
def test_event_document_unparsable_data_is_empty(raw: bytes) -> None:
    assert filters.event_document(make_event(raw))["data"] == {}


def test_event_document_time_truncates_to_seconds() -> None:
    assert filters.event_document(make_event(b"{}", 999))["time"] == "1970-01-01T00:00:00Z"


def test_event_document_drives_matching() -> None:
    document = filters.event_document(make_event(b'{"amount":150}'))
    wanted = {"data": {"amount": {"$gte": 100}}, "metadata": {"source": "api"}}
    assert filters.matches(wanted, document)
    assert not filters.matches({"time": {"$lt": "2025-01-15T10:00:00Z"}}, document)


# --- validate -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schema",
    [
        None,
        {},
        {"data": {"amount": {"$gte": 1}}},
        {"$or": [{"a": 1}], "$and": [], "$not": {"b": 2}},
        {"a": {"$eq": 1, "$neq": 2, "$gt": 1, "$gte": 1, "$lt": 1, "$lte": 1}},
        {"a": {"$in": [1], "$nin": "x", "$startsWith": "a", "$endsWith": ["b"], "$exist": True}},
        {"a": [{"b": [1, {"c": "$notAnOperatorInAValue"}]}]},
    ],
)
def test_validate_accepts(schema: object) -> None:
    filters.validate(schema)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ([], "filter must be a JSON object"),
        ("x", "filter must be a JSON object"),
        (5, "filter must be a JSON object"),
        ({"a": {"$regex": "x"}}, "filter uses unknown operator $regex"),
        ({"$ref": "a"}, "filter uses unknown operator $ref"),
        ({"a": [{"$exists": True}]}, "filter uses unknown operator $exists"),
        ({"$or": {"a": 1}}, "filter operator $or must be given an array"),
        ({"$and": "x"}, "filter operator $and must be given an array"),
    ],
)
def test_validate_rejects(schema: object, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        filters.validate(schema)
    assert caught.value.data == [message]
    assert caught.value.status == 422


def nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        schema = {"k": schema}
    return schema


def test_validate_depth_limit() -> None:
    filters.validate(nested(filters.MAX_DEPTH))
    with pytest.raises(ValidationError) as caught:
        filters.validate(nested(filters.MAX_DEPTH + 1))
    assert "too deeply nested" in caught.value.data[0]
    with pytest.raises(ValidationError):
        filters.validate(nested(100000))
