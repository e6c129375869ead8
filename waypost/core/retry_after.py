"""Reading an HTTP `Retry-After` value (RFC 9110 §10.2.3): delta-seconds or an HTTP-date."""

from __future__ import annotations

from email.utils import parsedate_to_datetime


def retry_after_seconds(value: str, now_ms: int) -> float | None:
    """Seconds from `now_ms` until the time `value` names; None when it names none.

    A date in the past means "now" (0). Anything else that does not parse is ignored rather than
    guessed at: the destination's own retry schedule applies then.
    """
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # a date without a zone is not an HTTP-date (always GMT)
        return None
    return max(0.0, when.timestamp() - now_ms / 1000)
