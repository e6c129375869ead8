"""What the server tells its operator about itself: logs, request ids, traces and metrics.

One concern, so one package (it was two: `observability/` for the logs, this for OpenTelemetry;
the request middleware and the delivery worker used both):
- `logs`, `context`: log lines in text or JSON, carrying what is being handled (`context.bind`);
- `requests`: request ids and the API call observer around the ASGI app;
- `hooks`: the observers the publisher, the worker and the API call (None when off);
- OpenTelemetry (contract.md §7.7), on when `OTEL_SERVICE_NAME` is set: `sdk` (which alone imports
  `opentelemetry`), `signals`, `tracing_ids`. With telemetry off the server neither imports
  nor pays for it: `start` imports the SDK only when the setting is there.
(Prometheus, with its own optional client and endpoint, is `waypost/prometheus/`.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from waypost.telemetry.hooks import Telemetry

if TYPE_CHECKING:
    from waypost.config import Config


def start(config: Config) -> Telemetry | None:
    """The running telemetry (exporters started), or None when `OTEL_SERVICE_NAME` is unset."""
    if not config.otel_service_name:
        return None
    from waypost.telemetry.sdk import start_sdk  # the only way in to opentelemetry

    return start_sdk(config)


__all__ = ["Telemetry", "start"]
