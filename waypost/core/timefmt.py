"""Time on the wire: RFC 3339 in UTC with a `Z`, millisecond precision, trailing zeros trimmed."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

_FRACTION = re.compile(r"(\.\d{6})\d+")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _date_time(seconds: int) -> str:
    # Not strftime("%Y"): it drops the leading zeros of years before 1000, which RFC 3339 needs.
    t = time.gmtime(seconds)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    )


def format_ms(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    text = _date_time(seconds)
    if millis:
        text += f".{millis:03d}".rstrip("0")
    return text + "Z"


def format_seconds(ms: int) -> str:
    """Second precision, as in webhook timestamp headers and the filter document's `time`."""
    return _date_time(ms // 1000) + "Z"


def parse(text: str, *, allow_date: bool = False) -> int:
    """RFC 3339 (any offset, optional fraction) to epoch ms. Raises ValueError.

    Naive times are read as UTC because the Python SDK sends naive datetimes without an offset.
    """
    text = text.strip().upper()  # RFC 3339 allows a lower-case "t" and "z"
    if allow_date and _DATE_ONLY.match(text):
        text += "T00:00:00"
    elif "T" not in text and " " not in text:
        raise ValueError(f"invalid time {text!r}")
    # fromisoformat takes at most 6 fractional digits; RFC 3339 allows more.
    parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", text))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (parsed - _EPOCH) // _MILLISECOND
