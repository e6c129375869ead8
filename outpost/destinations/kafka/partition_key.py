"""The message key: a JMESPath template over {"metadata", "data"}, else the event id (§5.8).

Outpost evaluates the template with Go, where every JSON number is a float64 and the result is
printed with `fmt`'s %g / %v; the key is formatted the same way so that the same event gets the
same key, and so the same partition for a given partitioner, as it would there.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

import jmespath
from jmespath.parser import ParsedResult


def partition_key(template: str, payload: dict[str, Any], fallback: str) -> str:
    """The key for `payload`; `fallback` when the template is empty, fails, or yields null/""."""
    if not template:
        return fallback
    try:
        result = _compiled(template).search(payload)
    except jmespath.exceptions.JMESPathError:
        return fallback
    if result is None or result == "":
        return fallback
    return go_text(result)


@functools.lru_cache(maxsize=1024)
def _compiled(template: str) -> ParsedResult:
    return jmespath.compile(template)


def go_text(value: Any) -> str:
    """`fmt.Sprintf("%v", value)` for a value decoded from JSON by Go."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return go_float(float(value))
    if value is None:
        return "<nil>"
    if isinstance(value, list):
        return "[" + " ".join(go_text(item) for item in value) + "]"
    if isinstance(value, dict):
        items = " ".join(f"{key}:{go_text(value[key])}" for key in sorted(value))
        return f"map[{items}]"
    return str(value)


def go_float(number: float) -> str:
    """Go's %g: the shortest digits that round-trip, in exponent form when the decimal exponent
    is below -4 or at least 6 (e.g. 12.5, 1e+06, 1.234567e+06, 1e-05)."""
    if number != number:
        return "NaN"
    if number in (float("inf"), float("-inf")):
        return "+Inf" if number > 0 else "-Inf"
    if number == 0:
        return "-0" if str(number).startswith("-") else "0"
    sign, digits, exponent = Decimal(repr(number)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    point = len(text) + exponent  # position of the decimal point within the digits
    minus = "-" if sign else ""
    if point - 1 < -4 or point - 1 >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        power = point - 1
        return f"{minus}{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"
    if point <= 0:
        return f"{minus}0.{'0' * -point}{text}"
    if point >= len(text):
        return f"{minus}{text}{'0' * (point - len(text))}"
    return f"{minus}{text[:point]}.{text[point:]}"
