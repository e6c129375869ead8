"""The message key: a JMESPath template over {"metadata", "data"}, else the event id (contract.md
§5.8).

Outpost evaluates the template with Go, where every JSON number is a float64 and the result is
printed with `fmt`'s %g / %v; the key is formatted the same way so that the same event gets the
same key, and so the same partition for a given partitioner, as it would there. jmespath (the
`kafka` extra) is imported on first use: the catalog imports this module in a base install too.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from waypost.destinations.gofmt import go_g

if TYPE_CHECKING:
    from jmespath.parser import ParsedResult


def partition_key(template: str, payload: dict[str, Any], fallback: str) -> str:
    """The key for `payload`; `fallback` when the template is empty, fails, or yields null/""."""
    from jmespath.exceptions import JMESPathError

    if not template:
        return fallback
    try:
        result = _compiled(template).search(payload)
    except JMESPathError:
        return fallback
    if result is None or result == "":
        return fallback
    return go_text(result)


@functools.lru_cache(maxsize=1024)
def _compiled(template: str) -> ParsedResult:
    import jmespath

    return jmespath.compile(template)


def go_text(value: Any) -> str:
    """`fmt.Sprintf("%v", value)` for a value decoded from JSON by Go."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return go_g(float(value))
    if value is None:
        return "<nil>"
    if isinstance(value, list):
        return "[" + " ".join(go_text(item) for item in value) + "]"
    if isinstance(value, dict):
        items = " ".join(f"{key}:{go_text(value[key])}" for key in sorted(value))
        return f"map[{items}]"
    return str(value)
