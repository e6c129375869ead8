"""Destination filters: Outpost's JSON match language (simple-json-match semantics).

A filter is a JSON object matched against the event document built by `event_document`. Plain keys
descend into the document; `$`-keys are operators. Arrays in the document are matched "contains"-
style. Evaluation raises only `OverBudget` (when given a budget it spends): an operator applied to
values of the wrong type simply fails, and `$nin`/`$neq`-style negations do not turn that failure
into a match.

Documented superset of Outpost: `$not` works at every level (Outpost only honours it next to field
keys of an object), and a missing field is evaluated like any other value instead of by a special
rule, so `{"x": {"$not": {"$eq": 1}}}` matches a document without `x`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from waypost.core.models import Event
from waypost.errors import ValidationError

MAX_DEPTH: Final = 32


@dataclass(frozen=True, slots=True)
class FilterLimits:
    """Bounds on a stored filter: every publish to the tenant evaluates it, so its size is a cost
    the tenant would otherwise impose on every request the process serves."""

    max_bytes: int = 65_536
    max_nodes: int = 2_000


DEFAULT_FILTER_LIMITS = FilterLimits()


class OverBudget(Exception):
    """An evaluation took more steps than it was given (see `matches`)."""


class Budget:
    """Steps an evaluation may take: one per value compared. Shared by the evaluations of one
    publish, so the cost of matching an event is bounded however filters and data are shaped."""

    __slots__ = ("left",)

    def __init__(self, steps: int) -> None:
        self.left = steps

    def spend(self, steps: int = 1) -> None:
        self.left -= steps
        if self.left < 0:
            raise OverBudget


class _Missing:
    """The value of a field that is absent, distinct from JSON null."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class _TypeMismatch(Exception):
    """An operator met operand types it does not handle: the condition fails, even under $nin."""


# --- public API ---------------------------------------------------------------------------------


def matches(
    filter: Mapping[str, Any] | None, document: Mapping[str, Any], budget: Budget | None = None
) -> bool:
    """Whether `document` satisfies `filter`. An empty or absent filter matches everything.

    With a `budget`, raises OverBudget once it is spent (the caller decides what that means).
    """
    if not filter:
        return True
    try:
        return _match(filter, document, budget or Budget(1 << 62))
    except OverBudget:
        raise
    except Exception:  # a malformed stored filter (or absurd nesting) must not break delivery
        return False


def event_document(event: Event) -> dict[str, Any]:
    """The document a filter sees for `event` (delivery metadata is deliberately not part of it)."""
    seconds = datetime.fromtimestamp(event.time // 1000, UTC)
    return {
        "id": event.id,
        "topic": event.topic,
        "time": seconds.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "metadata": dict(event.metadata),
        "data": _parse_data(event.data),
    }


def validate(filter: object, limits: FilterLimits = DEFAULT_FILTER_LIMITS) -> None:
    """Reject filters that could never behave as written, or that are over `limits`.
    `None` means "no filter" and passes."""
    if filter is None:
        return
    if not isinstance(filter, Mapping):
        raise ValidationError(["filter must be a JSON object"])
    # The walk first: it stops at the depth and node limits, so the encoding below is bounded.
    nodes = [limits.max_nodes - 1, limits.max_nodes]  # values left (the root counted), the limit
    problem = _check(filter, 1, nodes)
    if problem:
        raise ValidationError([problem])
    if len(msgspec.json.encode(filter)) > limits.max_bytes:
        raise ValidationError([f"filter must be at most {limits.max_bytes} bytes of JSON"])


# --- matching -----------------------------------------------------------------------------------


def _match(schema: Any, value: Any, budget: Budget) -> bool:
    budget.spend()
    if isinstance(schema, Mapping):
        return _match_object_schema(schema, value, budget)
    if isinstance(value, list):
        return _match_array(schema, value, budget)
    if isinstance(schema, list):
        return False
    return _equal(schema, value)


def _match_array(schema: Any, items: list[Any], budget: Budget) -> bool:
    if isinstance(schema, list):
        # Every wanted element must be found somewhere in the array: "contains all".
        return all(any(_match(part, item, budget) for item in items) for part in schema)
    return any(_match(schema, item, budget) for item in items)


def _match_object_schema(schema: Mapping[str, Any], value: Any, budget: Budget) -> bool:
    fields = {k: v for k, v in schema.items() if not k.startswith("$")}
    for key, operand in schema.items():
        if key.startswith("$") and not _apply_operator(key, operand, value, budget):
            return False
    if not fields:
        return True
    if isinstance(value, list):
        # A nested-object schema against an array matches when one element matches it.
        return any(_match_fields(fields, item, budget) for item in value)
    return _match_fields(fields, value, budget)


def _match_fields(fields: Mapping[str, Any], value: Any, budget: Budget) -> bool:
    budget.spend()
    if not isinstance(value, Mapping):
        return False
    return all(_match(sub, value.get(key, MISSING), budget) for key, sub in fields.items())


def _apply_operator(name: str, operand: Any, value: Any, budget: Budget) -> bool:
    logical = _LOGICAL.get(name)
    if logical is not None:
        return logical(operand, value, budget)
    if name == "$exist":
        if not isinstance(operand, bool):
            return False
        return (value is not MISSING) is operand
    comparison = _COMPARISONS.get(name)
    if comparison is None or value is MISSING:
        return False
    # A comparison walks the operand and the value at most once each (substring tests in C).
    budget.spend(_width(operand) + _width(value))
    try:
        return comparison(value, operand)
    except _TypeMismatch:
        return False


def _width(x: Any) -> int:
    return len(x) if isinstance(x, list | Mapping) else 1


def _op_or(operand: Any, value: Any, budget: Budget) -> bool:
    return isinstance(operand, list) and any(_match(s, value, budget) for s in operand)


def _op_and(operand: Any, value: Any, budget: Budget) -> bool:
    return isinstance(operand, list) and all(_match(s, value, budget) for s in operand)


def _op_not(operand: Any, value: Any, budget: Budget) -> bool:
    return not _match(operand, value, budget)


_LOGICAL: Final[dict[str, Callable[[Any, Any, Budget], bool]]] = {
    "$or": _op_or,
    "$and": _op_and,
    "$not": _op_not,
}


# --- value operators (value from the document first, operand from the filter second) -----------


def _is_number(x: Any) -> bool:
    # bool is an int subclass in Python; JSON true is not the number 1.
    return isinstance(x, int | float) and not isinstance(x, bool)


def _as_float(x: int | float) -> float:
    # Numbers compare as float64, like Outpost; ints beyond float range saturate instead of raising.
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf


def _is_primitive(x: Any) -> bool:
    return x is None or isinstance(x, str | bool) or _is_number(x)


def _equal(a: Any, b: Any) -> bool:
    """Loose primitive equality: numbers as floats, other types only equal to their own type."""
    if _is_number(a) and _is_number(b):
        return _as_float(a) == _as_float(b)
    if a is None or b is None:
        return a is b
    if isinstance(a, str | bool) and type(a) is type(b):
        return bool(a == b)
    return False


def _deep_equal(a: Any, b: Any) -> bool:
    """Structural equality: what comparing the two values' canonical JSON text would give."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_deep_equal(x, y) for x, y in zip(a, b, strict=True))
    return _is_primitive(a) and _is_primitive(b) and _equal(a, b)


def _op_eq(value: Any, operand: Any) -> bool:
    return _deep_equal(value, operand)


def _op_neq(value: Any, operand: Any) -> bool:
    return not _deep_equal(value, operand)


def _ordered(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def apply(value: Any, operand: Any) -> bool:
        if isinstance(value, str) and isinstance(operand, str):
            return compare(value, operand)  # code-point order == Go's UTF-8 byte order
        if _is_number(value) and _is_number(operand):
            return compare(_as_float(value), _as_float(operand))
        raise _TypeMismatch

    return apply


def _op_in(value: Any, operand: Any) -> bool:
    if isinstance(operand, list):
        if not _is_primitive(value):
            raise _TypeMismatch
        return any(_equal(value, item) for item in operand)
    if isinstance(value, str):
        if not isinstance(operand, str):
            raise _TypeMismatch
        return operand in value  # substring test: the document value contains the operand
    if isinstance(value, list):
        return any(_equal(item, operand) for item in value)
    raise _TypeMismatch


def _op_nin(value: Any, operand: Any) -> bool:
    return not _op_in(value, operand)


def _affix(test: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    def apply(value: Any, operand: Any) -> bool:
        candidates = operand if isinstance(operand, list) else [operand]
        if not isinstance(value, str) or not all(isinstance(c, str) for c in candidates):
            raise _TypeMismatch
        return any(test(value, c) for c in candidates)

    return apply


_COMPARISONS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "$eq": _op_eq,
    "$neq": _op_neq,
    "$gt": _ordered(lambda a, b: a > b),
    "$gte": _ordered(lambda a, b: a >= b),
    "$lt": _ordered(lambda a, b: a < b),
    "$lte": _ordered(lambda a, b: a <= b),
    "$in": _op_in,
    "$nin": _op_nin,
    "$startsWith": _affix(str.startswith),
    "$endsWith": _affix(str.endswith),
}

OPERATORS: Final = frozenset({*_COMPARISONS, *_LOGICAL, "$exist"})


# --- document and validation helpers ------------------------------------------------------------


def _parse_data(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # ValueError covers bad JSON and bad UTF-8 alike
        return {}


def _check(node: Any, depth: int, nodes: list[int]) -> str | None:
    """First problem found in the filter subtree `node` at nesting level `depth`, if any;
    `nodes[0]` counts down the values the filter may still hold (`nodes[1]`: the limit)."""
    if depth > MAX_DEPTH:
        return f"filter is too deeply nested (more than {MAX_DEPTH} levels)"
    children: list[Any] = []
    if isinstance(node, Mapping):
        for key, child in node.items():
            problem = _check_key(key, child)
            if problem:
                return problem
            children.append(child)
    elif isinstance(node, list):
        children = node
    nodes[0] -= len(children)
    if nodes[0] < 0:
        return f"filter must hold at most {nodes[1]} values"
    for child in children:
        if isinstance(child, Mapping | list):
            problem = _check(child, depth + 1, nodes)
            if problem:
                return problem
    return None


def _check_key(key: object, child: Any) -> str | None:
    if not isinstance(key, str):
        return "filter keys must be strings"
    if not key.startswith("$"):
        return None
    if key not in OPERATORS:
        return f"filter uses unknown operator {key}"
    if key in ("$or", "$and") and not isinstance(child, list):
        return f"filter operator {key} must be given an array"
    return None
