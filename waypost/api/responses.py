"""JSON responses, encoded with msgspec (raw event data is embedded as `msgspec.Raw`)."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

_encoder = msgspec.json.Encoder()
CONTENT_TYPE = "application/json; charset=utf-8"


class JSON(Response):
    media_type = CONTENT_TYPE

    def render(self, content: Any) -> bytes:
        return _encoder.encode(content)


def error(
    status: int, message: str, data: Any = None, headers: dict[str, str] | None = None
) -> JSON:
    """Outpost's error body; `data` is omitted when empty."""
    body: dict[str, Any] = {"status": status, "message": message}
    if data:
        body["data"] = data
    return JSON(body, status_code=status, headers=headers)
