"""THE route table: every operation of /api/v1 on one screen, with who may call it.

`admin`: the API key only (a tenant JWT gets 403). `any`: the API key or a tenant JWT, which is
confined to its own tenant. A `{tenant_id}` in the path is resolved before the handler runs,
except where `resolve=False` (upsert creates it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request

from waypost.api.context import Context
from waypost.api.handlers import (
    destinations,
    log_erasure,
    logs,
    metrics,
    publish,
    recovery,
    system,
    tenants,
)
from waypost.api.responses import JSON

Handler = Callable[[Request, Context], Awaitable[JSON]]
Access = Literal["admin", "any"]


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    handler: Handler
    access: Access = "any"
    resolve: bool = True
    extension: bool = False  # ours, not Outpost's: `x-extension` in api/openapi.yaml


_T = "/tenants/{tenant_id}"
_D = _T + "/destinations/{destination_id}"

OPERATIONS = (
    Operation("GET", "/destination-types", system.destination_types),
    Operation("GET", "/destination-types/{type}", system.destination_type),
    Operation("GET", "/topics", system.topics),
    Operation("POST", "/publish", publish.publish, "admin"),
    Operation("POST", "/retry", publish.retry),
    Operation("GET", "/tenants", tenants.list_),
    Operation("PUT", _T, tenants.upsert, resolve=False),
    Operation("GET", _T, tenants.get),
    Operation("DELETE", _T, log_erasure.delete_tenant),  # tenants.delete, + opt-in log erase
    Operation("GET", _T + "/token", tenants.token, "admin"),
    Operation("GET", _T + "/portal", tenants.portal, "admin"),
    Operation("GET", _T + "/destinations", destinations.list_),
    Operation("POST", _T + "/destinations", destinations.create),
    Operation("GET", _D, destinations.get),
    Operation("PATCH", _D, destinations.update),
    Operation("DELETE", _D, destinations.delete),
    Operation("PUT", _D + "/enable", destinations.enable),
    Operation("PUT", _D + "/disable", destinations.disable),
    Operation("GET", _D + "/attempts", destinations.list_attempts),
    Operation("GET", _D + "/attempts/{attempt_id}", destinations.get_attempt),
    Operation("GET", "/events", logs.list_events),
    Operation("GET", "/events/{event_id}", logs.get_event),
    Operation("GET", "/attempts", logs.list_attempts),
    Operation("GET", "/attempts/{attempt_id}", logs.get_attempt),
    Operation("GET", "/metrics/events", metrics.events),
    Operation("GET", "/metrics/attempts", metrics.attempts),
    # The recovery extension (waypost/api/openapi.yaml): not Outpost operations.
    Operation("GET", _T + "/undelivered", recovery.undelivered, extension=True),
    Operation("POST", _T + "/recoveries", recovery.create, extension=True),
    Operation("GET", _T + "/recoveries", recovery.list_, extension=True),
    Operation("GET", _T + "/recoveries/{recovery_id}", recovery.get, extension=True),
    Operation("DELETE", _T + "/recoveries/{recovery_id}", recovery.cancel, extension=True),
    Operation("POST", _D + "/test", recovery.send_test, extension=True),
)
