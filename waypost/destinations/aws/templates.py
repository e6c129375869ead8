"""JMESPath templates over an event: Kinesis partition keys and S3 object keys (contract.md §5.3,
§5.4).

Templates are compiled once per distinct text (destinations share few), and a result is turned
into text the way Outpost does: its JSON numbers are 64-bit floats printed with Go's `%g`.
jmespath (the `aws` extra) is imported on first use: the catalog imports this module in a base
install too.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from waypost.destinations.gofmt import go_g

if TYPE_CHECKING:
    from jmespath.parser import ParsedResult


class TemplateError(ValueError):
    """A template that does not compile, fails to evaluate, or gives nothing usable."""


@functools.lru_cache(maxsize=512)
def compiled(template: str) -> ParsedResult:
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        return jmespath.compile(template)
    except JMESPathError as error:
        raise TemplateError(str(error)) from error


def compiles(template: str) -> bool:
    try:
        compiled(template)
    except TemplateError:
        return False
    return True


def evaluate(template: str, document: Any) -> Any:
    from jmespath.exceptions import JMESPathError

    try:
        return compiled(template).search(document)
    except JMESPathError as error:
        raise TemplateError(str(error)) from error


def as_text(value: Any) -> str:
    """A JMESPath result as a key: strings as they are, numbers as Go's `%g`, else JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return go_g(float(value))
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def time_fields(event_time_ms: int) -> dict[str, str]:
    """The `time` object of an S3 key template: the EVENT's time, UTC, as strings."""
    seconds, millis = divmod(event_time_ms, 1000)
    moment = datetime.fromtimestamp(seconds, UTC)
    whole = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f".{millis:03d}".rstrip("0").rstrip(".")
    return {
        "year": moment.strftime("%Y"),
        "month": moment.strftime("%m"),
        "day": moment.strftime("%d"),
        "hour": moment.strftime("%H"),
        "minute": moment.strftime("%M"),
        "second": moment.strftime("%S"),
        "date": moment.strftime("%Y-%m-%d"),
        "datetime": whole,
        "unix": str(seconds),
        "rfc3339": whole + "Z",
        "rfc3339_nano": whole + fraction + "Z",
    }
