"""What an attempt records of the headers it sent (its `request_headers`): bounded, and with
values that may be credentials masked.

A destination's custom headers and metadata are the tenant's to choose, so the record is bounded
(at most MAX_HEADERS headers, names cut at MAX_NAME characters, values at MAX_VALUE) and cannot
bloat the log. A header whose name says it carries a credential (Authorization, a token, an API
key, a password, a cookie, a secret...) is recorded with its value masked, whoever set it: the
type from the destination's credentials (Cloudflare's bearer token) or the tenant in
`custom_headers`. Signatures are kept: they are computed per request and reveal no secret, and
a receiver debugging its verification needs them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import replace

from waypost.core.models import DeliveryResult, StrMap

MASK = "********"  # as an embedded destination shows each credential (api/schemas.py)
MAX_HEADERS = 50
MAX_NAME = 128
MAX_VALUE = 1024
CUT = "…"  # ends a value that was cut at MAX_VALUE

_CREDENTIAL = re.compile(
    r"auth|token|secret|passw|api[-_]?key|access[-_]?key|cookie|credential|session|bearer",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=4096)
def masked(name: str) -> bool:
    """Whether a header of this name is recorded with its value masked."""
    return _CREDENTIAL.search(name) is not None


def recorded(headers: Iterable[tuple[str, str]]) -> StrMap:
    """The record of `headers` as sent, in order: bounded, credentials masked."""
    kept: StrMap = {}
    for name, value in headers:
        if len(kept) >= MAX_HEADERS:
            break
        if len(name) > MAX_NAME:
            name = name[:MAX_NAME]
        if masked(name):
            value = MASK
        elif len(value) > MAX_VALUE:
            value = value[:MAX_VALUE] + CUT
        kept[name] = value
    return kept


def noted(result: DeliveryResult, headers: Iterable[tuple[str, str]]) -> DeliveryResult:
    """`result` with the record of the headers (or message attributes) that went with it."""
    return replace(result, request_headers=recorded(headers))
