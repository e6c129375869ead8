"""The fields every log line carries while a request or a delivery is being handled.

They live in a context variable, so each asyncio task (uvicorn runs every request in one, the
delivery worker every delivery) sees its own, and nothing needs resetting when the task ends.
"""

from __future__ import annotations

from contextvars import ContextVar

Fields = dict[str, str | int]

_fields: ContextVar[Fields | None] = ContextVar("outpost_log_fields", default=None)


def bind(**fields: str | int) -> None:
    """Add `fields` to every log line emitted from here on in the current task."""
    current = _fields.get()
    _fields.set({**current, **fields} if current else fields)


def current() -> Fields | None:
    return _fields.get()
