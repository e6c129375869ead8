"""Reading Service Bus connection strings: `Key=Value` pairs separated by `;`."""

from __future__ import annotations

from urllib.parse import urlsplit


def fields(connection_string: str) -> dict[str, str]:
    """Keys as written (the SDK matches them case-insensitively); values may contain `=`."""
    pairs = (part.partition("=") for part in connection_string.split(";") if part.strip())
    return {key.strip(): value.strip() for key, eq, value in pairs if eq}


def namespace(connection_string: str) -> str:
    """`orders` from `Endpoint=sb://orders.servicebus.windows.net/;...`; "" when absent."""
    endpoint = next(
        (v for k, v in fields(connection_string).items() if k.lower() == "endpoint"), ""
    )
    host = urlsplit(endpoint).hostname or ""
    return host.split(".", 1)[0]
