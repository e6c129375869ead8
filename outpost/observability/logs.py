"""Log output: `LOG_FORMAT=text` (one readable line per record) or `json` (one object per line).

Both carry the context of what is being handled (`context.bind`) and anything passed as
`extra=`; JSON lines always have `time`, `level`, `logger` and `message`.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

import msgspec

from outpost.observability import context

LEVELS = {
    "trace": logging.DEBUG,  # Outpost accepts `trace`; Python has nothing finer than DEBUG
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
FORMATS = ("text", "json")

# What every LogRecord has; anything else on a record came in through `extra=`.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_LEVEL_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "error",
}
_encode = msgspec.json.Encoder(enc_hook=str).encode


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    found = context.current()
    fields: dict[str, Any] = dict(found) if found else {}
    for key, value in record.__dict__.items():
        if key not in _STANDARD:
            fields[key] = value
    return fields


def _timestamp(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": _LEVEL_NAMES.get(record.levelno, record.levelname.lower()),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_extras(record))
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return _encode(line).decode()


class TextFormatter(logging.Formatter):
    """The readable default: `<time> <LEVEL> <logger> <message> key=value …`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        fields = _extras(record)
        if not fields:
            return text
        return text + " " + " ".join(f"{key}={value}" for key, value in fields.items())


def configure(level: str, log_format: str, stream: TextIO | None = None) -> None:
    """Send every logger's records (uvicorn's included) to `stream` in `log_format`."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(LEVELS.get(level.lower(), logging.INFO))
