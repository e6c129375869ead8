"""Ids no other test uses, for every tier: tests of a module or a session share stores, servers
and brokers, so each test names what it creates after itself."""

from __future__ import annotations

import re
import uuid


def unique_id(label: str) -> str:
    """`<label>-<12 hex>`: unique to this run, and readable in a response body or a server log.

    The label is cut to 40 characters of `[A-Za-z0-9_-]`, so a test's node name can be one; the
    result is also a valid queue, stream, bus or (for a lowercase label) bucket name.
    """
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", label).strip("-")[:40] or "t"
    return f"{safe}-{uuid.uuid4().hex[:12]}"
