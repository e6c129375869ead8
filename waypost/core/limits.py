"""Size limits on the string maps callers store: `metadata` and `delivery_metadata`.

Events, tenants and destinations carry free-form string maps that are stored with every row and,
for `delivery_metadata`, sent as headers on every delivery. Unbounded, one request could make
every later read and delivery of that tenant expensive; bounded, a caller who goes over learns
which map and which limit at once (422 `validation error`).

Sizes are counted in UTF-8 bytes, which is what storage and headers pay for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from waypost.errors import ValidationError


@dataclass(frozen=True, slots=True)
class MetadataLimits:
    max_keys: int = 64
    max_key_bytes: int = 256
    max_value_bytes: int = 4096

    def check(self, field: str, values: Mapping[str, str] | None) -> None:
        """Raise a 422 naming `field` when `values` breaks one of the limits."""
        if not values:
            return
        problems: list[str] = []
        if len(values) > self.max_keys:
            problems.append(f"{field} must have at most {self.max_keys} keys")
        if any(_size(key) > self.max_key_bytes for key in values):
            problems.append(f"{field} keys must be at most {self.max_key_bytes} bytes")
        if any(_size(value) > self.max_value_bytes for value in values.values()):
            problems.append(f"{field} values must be at most {self.max_value_bytes} bytes")
        if problems:
            raise ValidationError(problems)


DEFAULT_METADATA_LIMITS = MetadataLimits()


def _size(text: str) -> int:
    # surrogatepass: a lone surrogate (valid JSON escape, invalid UTF-8) is measured, not an error
    return len(text.encode("utf-8", "surrogatepass"))


# --- JSON nesting ---------------------------------------------------------------------------------

DEFAULT_MAX_JSON_DEPTH = 128

_OPEN, _CLOSE = b"(", b")"
_BRACKETS = bytes.maketrans(b"[{]}", _OPEN * 2 + _CLOSE * 2)
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[{]}"))


def json_too_deep(body: bytes, max_depth: int) -> bool:
    """Whether the JSON text `body` nests objects and arrays more than `max_depth` levels deep.

    Decoders recurse once per level (msgspec and the json module give up with RecursionError
    around 1,000 levels, which would surface as a 500), so depth is measured on the bytes: strings
    blanked, brackets kept, then innermost pairs removed one level per pass, all in C. At most
    `max_depth` passes over at most the body's size. Malformed text is left to the decoder.
    """
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False  # not enough brackets to be that deep, strings included
    # Outside strings valid JSON has no backslash, so dropping `\\` then `\"` leaves every
    # remaining quote a string's edge: the even pieces between quotes are the structure.
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[::2])
    structure = outside.translate(_BRACKETS, _NOT_BRACKETS)
    too_deep = _OPEN * (max_depth + 1)
    for _ in range(max_depth):
        if not structure:
            return False
        if too_deep in structure:
            return True
        shorter = structure.replace(_OPEN + _CLOSE, b"")
        if len(shorter) == len(structure):
            return False  # unbalanced: not JSON, which the decoder will say
        structure = shorter
    return bool(structure)
