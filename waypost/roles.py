"""Which services one process runs: decided here, once, from `SERVICE` and the store.

`SERVICE` names a set of services (`all`, `api`, `delivery`); embedded mode on two cores moves
delivery into a child process the server supervises (`SQLITE_DELIVERY_PROCESS`). Everything
that asks "does this process serve the API / deliver?" reads a `Roles`, never the setting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from waypost.config import Config

# SERVICE → (the API's operations, delivery); "" is `all`. Every process answers /healthz.
SERVICES: dict[str, tuple[bool, bool]] = {
    "": (True, True),
    "all": (True, True),
    "api": (True, False),
    "delivery": (False, True),
}


@dataclass(frozen=True, slots=True)
class Roles:
    """What one process runs.

    `api`: the API's operations and the portal. `delivers`: deliveries happen on this process's
    behalf (here, or in its delivery process), so it reports delivery health and backlog.
    `worker`: the delivery worker, the recovery runner and the broker's consumer run here.
    `delivery_process`: embedded mode's second process, either side: `child` is that process
    (it runs the worker, never the API nor retention), otherwise this server supervises one.

    The rest follows: every server process answers HTTP (/healthz at least), sweeps retention
    (`LOG_RETENTION_TTL_DAYS`) and serves Prometheus when on; the operator relay runs in every
    process, the child included, when operator events are configured.
    """

    api: bool
    delivers: bool
    worker: bool
    delivery_process: bool
    child: bool = False

    @property
    def supervises_child(self) -> bool:
        return self.delivery_process and not self.child


def delivery_process_wanted(config: Config) -> bool:
    """Whether an embedded server (SQLite, every service) delivers from a process of its own."""
    choice = config.sqlite_delivery_process.lower()
    api, delivery = SERVICES[config.service]
    if config.postgres_url or not (api and delivery) or choice == "false":
        return False
    return choice == "true" or len(os.sched_getaffinity(0)) >= 2


def roles(config: Config, *, child: bool = False) -> Roles:
    """This process's roles; `child`: embedded mode's delivery process (same settings)."""
    if child:
        return Roles(api=False, delivers=True, worker=True, delivery_process=True, child=True)
    api, delivery = SERVICES[config.service]
    separate = delivery_process_wanted(config)
    return Roles(
        api=api, delivers=delivery, worker=delivery and not separate, delivery_process=separate
    )
