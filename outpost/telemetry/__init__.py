"""OpenTelemetry, on when `OTEL_SERVICE_NAME` is set (contract §7.7).

This module and `hooks`/`tracing_ids` never import `opentelemetry`: with telemetry off, the server
neither imports nor pays for it. `start` imports the SDK only when the setting is there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from outpost.telemetry.hooks import Telemetry

if TYPE_CHECKING:
    from outpost.config import Config


def start(config: Config) -> Telemetry | None:
    """The running telemetry (exporters started), or None when `OTEL_SERVICE_NAME` is unset."""
    if not config.otel_service_name:
        return None
    from outpost.telemetry.sdk import start_sdk  # the only way in to opentelemetry

    return start_sdk(config)


__all__ = ["Telemetry", "start"]
