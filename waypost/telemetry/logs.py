"""Log output: `LOG_FORMAT=text` (one readable line per record) or `json` (one object per line).

Both carry the context of what is being handled (`context.bind`) and anything passed as
`extra=`; JSON lines always have `time`, `level`, `logger` and `message`.

Logged values carry what callers sent (request paths, ids, error texts), so neither format lets
a value start a line of its own or reach a terminal as a control sequence: in text lines every
control character is written as an escape (`\\n`, `\\x1b`) and the lines of a traceback are
indented; in JSON the encoder escapes C0 controls and we escape the C1 ones (U+0080-U+009F,
which some terminals act on) too. Every record therefore begins exactly one line, at column 0.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any, TextIO

import msgspec

from waypost.telemetry import context

LEVELS = {
    "trace": logging.DEBUG,  # Outpost accepts `trace`; Python has nothing finer than DEBUG
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

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

# C0 and C1 controls, DEL, and the two Unicode line separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# In a JSON line raw controls can only be inside strings, where `\\u00XX` means the same.
_RAW_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029]")


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (
        f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"
    )


def escape(text: str) -> str:
    """`text` with every control character written as a visible escape."""
    return _CONTROL.sub(_escaped, text)


def _json_escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


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
        text = _encode(line).decode()
        return _RAW_IN_JSON.sub(_json_escaped, text)


class TextFormatter(logging.Formatter):
    """The readable default: `<time> <LEVEL> <logger> <message> key=value …`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = escape(super().formatMessage(record))
        fields = _extras(record)
        if not fields:
            return text
        return text + " " + " ".join(escape(f"{key}={value}") for key, value in fields.items())

    def formatException(self, ei: Any) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _indented(block: str) -> str:
    """A multi-line block under its record: each line indented, so none can pass for a record."""
    return "\n".join("  " + escape(line) for line in block.split("\n"))


def configure(level: str, log_format: str, stream: TextIO | None = None) -> None:
    """Send every logger's records (uvicorn's included) to `stream` in `log_format`."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(LEVELS.get(level.lower(), logging.INFO))
