"""Prometheus metrics at `/metrics`, on when `PROMETHEUS_ENABLED` is set (docs/prometheus.md).

This module never imports `prometheus_client`: with the endpoint off the server neither imports
nor pays for it (the publisher and the worker test one `is None`). `start` imports it only then.

Processes. Counters live where the work happens: publishes in the API process, attempts in the
delivery process. Embedded mode on two cores delivers from a second process, so there the
server makes a fresh folder and names it in `PROMETHEUS_MULTIPROC_DIR` before importing the
client; the delivery process inherits the variable, and the client's multiprocess mode keeps each
process's values in memory-mapped files there, which the server's scrape sums. A delivery
process that died leaves its file behind, so the counters keep counting across restarts. Every
other arrangement (one process; PostgreSQL's separate `api`/`delivery` services) is one process
per scrape target, with the client's ordinary in-memory registry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from waypost.prometheus.seams import MULTIPROCESS_ENV, Backlog, Exporter

if TYPE_CHECKING:
    from waypost.config import Config


def start(
    config: Config,
    *,
    backlog: Backlog,
    delivery_health: Callable[[], bool | None],
    dependencies: dict[str, Callable[[], Awaitable[None]]],
    destination_types: Iterable[str],
    shared_with_child: bool,
    in_delivery_process: bool = False,
) -> Exporter | None:
    """The exporter, or None when `PROMETHEUS_ENABLED` is off.

    `shared_with_child`: this server starts a delivery process whose counts it must serve.
    `in_delivery_process`: that process (it counts, never serves)."""
    if not config.prometheus_enabled:
        return None
    from waypost.prometheus.exporter import start_exporter  # the only way in to prometheus_client

    return start_exporter(
        backlog=backlog,
        delivery_health=delivery_health,
        dependencies=dependencies,
        destination_types=destination_types,
        shared_with_child=shared_with_child,
        in_delivery_process=in_delivery_process,
    )


__all__ = ["MULTIPROCESS_ENV", "Backlog", "Exporter", "start"]
