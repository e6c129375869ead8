"""Asking Hookdeck whether a source token is good, and what the source is called (contract.md §5.1).

This runs on create/update only, so it uses the standard library's HTTP client in a worker
thread rather than the delivery client (which only POSTs and is shared with deliveries). The
URL is the operator's setting, never the tenant's, so the SSRF guard does not apply.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from waypost.errors import ValidationError

API_VERSION = "2025-01-01"
VERIFY_TIMEOUT_SECONDS = 10.0
FAILED = "credentials.token failed token_verification_failed validation"


@dataclass(frozen=True, slots=True)
class VerifiedSource:
    id: str
    name: str


async def verify(api_url: str, source_id: str, token: str, user_agent: str) -> VerifiedSource:
    """The source behind a token. Raises `ValidationError` (422) unless Hookdeck answers 200."""
    source = urllib.parse.quote(source_id, safe="")  # the tenant's token chooses it
    url = f"{api_url.rstrip('/')}/{API_VERSION}/sources/{source}/managed/verify"
    if not url.startswith(("https://", "http://")):
        raise ValidationError([FAILED])
    headers = {"X-Hookdeck-Source-Token": token, "User-Agent": user_agent}
    try:
        # Bounds the name lookup too, which urllib's own timeout does not cover.
        body = await asyncio.wait_for(asyncio.to_thread(_get, url, headers), VERIFY_TIMEOUT_SECONDS)
    except TimeoutError:
        body = None
    if body is None:
        raise ValidationError([FAILED])
    name = body.get("name") if isinstance(body, dict) else None
    found = body.get("id") if isinstance(body, dict) else None
    return VerifiedSource(
        id=found if isinstance(found, str) and found else source_id,
        name=name if isinstance(name, str) else "",
    )


def _get(url: str, headers: dict[str, str]) -> Any:
    """The JSON body of a 200 answer; None for any other status, a bad body or no answer."""
    # http(s) only: `verify` checked the scheme of the operator's URL.
    request = urllib.request.Request(url, headers=headers, method="GET")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=VERIFY_TIMEOUT_SECONDS) as response:  # noqa: S310
            if response.status != 200:
                return None
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
