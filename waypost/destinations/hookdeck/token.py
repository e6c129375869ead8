"""Hookdeck managed-source tokens: base64 of `<source id>:<signing part>` (contract.md §5.1)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

INVALID_FORMAT = "credentials.token failed invalid_token_format validation"


def source_id(token: str) -> str | None:
    """The source id a token names, or None when it is not base64 of `<id>:<rest>`."""
    try:
        decoded = base64.b64decode(token, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    source, colon, _ = decoded.partition(":")
    return source if colon else None


def signature(token: str, body: bytes) -> str:
    """`X-Hookdeck-Signature`: base64 HMAC-SHA256 of the body keyed with the whole token."""
    digest = hmac.new(token.encode(), body, hashlib.sha256).digest()
    return "v0=" + base64.b64encode(digest).decode("ascii")
