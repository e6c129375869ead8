"""Coercion of JSON values into the string→string maps Outpost stores (contract.md §0.1)."""

from __future__ import annotations

import json
from typing import Any

from waypost.errors import InputError

StrMap = dict[str, str]


def to_str(value: Any) -> str:
    """Go's `%v` for JSON scalars: 5 → "5", 1.5 → "1.5", true → "true", null → ""."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def to_str_map(value: Any, field: str) -> StrMap | None:
    """A JSON object with any scalar values → string map; null → None; anything else → 422."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InputError("invalid JSON", [f"{field} must be an object"], status=422)
    return {str(k): to_str(v) for k, v in value.items()}
