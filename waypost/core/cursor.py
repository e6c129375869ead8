"""Opaque pagination cursors.

A cursor is the URL-safe, unpadded base64 of compact JSON `["v1", kind, [position...]]`. The kind
(e.g. "evt", "att", "tnt") stops a cursor from one listing being replayed against another, and
the version tag lets the format change without misreading old cursors. Decoding is strict: a
token is accepted only if `encode` would have produced exactly it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from typing import Any

from waypost.errors import InputError

VERSION = "v1"
# Generous because event ids are caller-chosen and end up inside cursors; it only bounds the
# work done on hostile input.
MAX_TOKEN_LENGTH = 65536

_TOKEN = re.compile(r"[A-Za-z0-9_-]+")

Position = tuple[int | str, ...]


def encode(kind: str, position: Sequence[int | str]) -> str:
    """The cursor for `position` (typically `(time_ms, id)`) in a listing of `kind`."""
    for part in position:
        if not _valid_part(part):
            raise TypeError(f"cursor position parts must be int or str, not {type(part).__name__}")
    text = json.dumps([VERSION, kind, list(position)], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode("ascii")


def decode(kind: str, token: str) -> Position:
    """The position in `token`; InputError (400 "invalid cursor") unless it is a `kind` cursor."""
    position = _parse(kind, token)
    # Rejects non-canonical spellings of a valid cursor (stray padding bits, other JSON layouts).
    if position is None or encode(kind, position) != token:
        raise InputError("invalid cursor", status=400)
    return position


def _parse(kind: str, token: str) -> Position | None:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or not _TOKEN.fullmatch(token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload: Any = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    if not isinstance(payload, list) or len(payload) != 3:
        return None
    version, payload_kind, position = payload
    if version != VERSION or payload_kind != kind or not isinstance(position, list):
        return None
    if not all(_valid_part(part) for part in position):
        return None
    return tuple(position)


def _valid_part(part: object) -> bool:
    return isinstance(part, int | str) and not isinstance(part, bool)
