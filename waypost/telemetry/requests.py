"""Request ids and access lines around the ASGI app.

Every HTTP request gets an id: the caller's `X-Request-Id` when it is well formed (so one id can
follow a request through the caller's systems too), otherwise a generated one. It is returned in
the `X-Request-Id` response header and carried by every log line emitted while the request is
handled. When telemetry is on, each request also feeds the API call metrics.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from waypost.telemetry import context
from waypost.telemetry.hooks import ApiObserver

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HEADER = b"x-request-id"
# Printable and short: it is echoed into a header and into logs, so nothing that could split a
# line or a header, and nothing long enough to flood a log.
_WELL_FORMED = re.compile(rb"[A-Za-z0-9._:+/=-]{1,128}")
# Probes hit these every few seconds; their lines would drown the rest at `info`.
_QUIET_PATHS = frozenset({"/healthz", "/api/v1/healthz"})
_UNMATCHED = "/{rest:path}"  # the catch-all 404 route

log = logging.getLogger("waypost.api.access")


def request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == HEADER and _WELL_FORMED.fullmatch(value):
            return str(value.decode("ascii"))
    # Unique, not secret: the process-seeded PRNG is enough and makes no system call.
    return f"{random.getrandbits(128):032x}"


def route_path(scope: Scope) -> str:
    """The matched route's template (`/api/v1/tenants/{tenant_id}`): few distinct values, so
    fit for a metric attribute. Empty when no route matched."""
    route = scope.get("route")
    path = getattr(route, "path", "")
    return "" if path == _UNMATCHED else str(path)


class RequestContext:
    """ASGI middleware: request id in, header out, access line and metrics at the end."""

    def __init__(self, app: ASGIApp, observer: ApiObserver | None = None) -> None:
        self._app = app
        self._observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        rid = request_id(scope)
        context.bind(request_id=rid)
        header = (HEADER, rid.encode("ascii"))
        status = 500  # what the client gets if the app fails before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        started = time.perf_counter_ns()
        try:
            await self._app(scope, receive, send_with_id)
        finally:
            elapsed_ms = (time.perf_counter_ns() - started) // 1_000_000
            self._finished(scope, status, elapsed_ms)

    def _finished(self, scope: Scope, status: int, elapsed_ms: int) -> None:
        method, path = scope["method"], scope["path"]
        level = logging.DEBUG if path in _QUIET_PATHS else logging.INFO
        if log.isEnabledFor(level):
            log.log(
                level,
                "request",
                extra={"method": method, "path": path, "status": status, "duration_ms": elapsed_ms},
            )
        if self._observer is not None:
            self._observer.api_call(method, route_path(scope), elapsed_ms)
