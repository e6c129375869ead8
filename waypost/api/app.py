"""The ASGI application: the route table wrapped in authentication and error mapping."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from waypost.api import openapi
from waypost.api.auth import Unauthorized
from waypost.api.context import Context, Services
from waypost.api.handlers import system
from waypost.api.limits import refuse_nul_in_target
from waypost.api.ratelimit import rate_limited
from waypost.api.responses import error
from waypost.api.routes import OPERATIONS, Operation
from waypost.errors import ForbiddenError, InputError, NotFoundError, StoreError, StoreUnavailable
from waypost.telemetry.hooks import ApiObserver
from waypost.telemetry.requests import RequestContext

PREFIX = "/api/v1"
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# Decoded control characters in a path (`%0a`, `%1b`). Starlette's route patterns end in `$`,
# which also matches before a final newline: `/api/v1/tenants%0a` would list tenants and `/%0a`
# serve the portal. No route has such a path, so they are all 404 (NUL keeps its 400, answered
# by each endpoint, in every position).
_CONTROL_IN_PATH = re.compile("[\x01-\x1f\x7f]")
log = logging.getLogger(__name__)


async def authorize(request: Request, services: Services, operation: Operation) -> Context:
    """contract.md §1.2: the key or a JWT; then admin-only routes, the path's tenant, and a live JWT
    tenant."""
    caller = services.auth.caller(request.headers.get("authorization"))
    path_tenant = request.path_params.get("tenant_id")
    if caller.admin:
        if path_tenant is None or not operation.resolve:
            return Context(services, caller)
        tenant = await services.tenants.get_tenant(path_tenant)
        if tenant is None:
            raise NotFoundError("tenant not found")
        return Context(services, caller, tenant)
    if operation.access == "admin" or (path_tenant is not None and path_tenant != caller.tenant_id):
        raise ForbiddenError("forbidden")
    own = await services.tenants.get_tenant(caller.tenant_id or "")
    if own is None:
        raise Unauthorized  # a token for a tenant that no longer exists
    return Context(services, caller, own)


def endpoint(services: Services, operation: Operation) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        try:
            refuse_nul_in_target(request.scope["path"], request.scope["query_string"])
            ctx = await authorize(request, services, operation)
            return await operation.handler(request, ctx)
        except Unauthorized:
            return error(401, "unauthorized")
        except InputError as exc:
            return error(exc.status, exc.message, exc.data)
        except ClientDisconnect:  # gone mid-body (or closed for API_BODY_TIMEOUT_SECONDS)
            return error(400, "client disconnected")  # sent nowhere; not an error of ours
        except StoreUnavailable:
            return error(503, "service unavailable", headers={"Retry-After": "1"})
        except StoreError:
            log.exception("store failure on %s %s", request.method, request.url.path)
            return error(503, "service unavailable", headers={"Retry-After": "1"})
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            return error(500, "internal server error")

    return run


def _limited(
    services: Services, run: Callable[[Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    """`run` under the API rate limit, when one is configured (waypost.api.ratelimit)."""
    if services.rate_limiter is None:
        return run
    return rate_limited(services.rate_limiter, services.auth, run)


def build(
    services: Services,
    *,
    operations: bool = True,
    observer: ApiObserver | None = None,
    mounted: Sequence[Route] = (),
) -> ASGIApp:
    """The API, with this server's OpenAPI document (public, like /healthz); with
    `operations=False` only /healthz (a delivery-only process). `mounted`: what
    the composition root serves beside it (/metrics, the tenant portal), outside /api. Every
    request gets a request id (`telemetry.requests`); `observer` receives API metrics."""

    async def health(request: Request) -> Response:
        return await system.health(services)

    async def openapi_json(request: Request) -> Response:
        return Response(openapi.json_bytes(), media_type="application/json")

    async def openapi_yaml(request: Request) -> Response:
        return Response(openapi.yaml_text(), media_type="application/yaml")

    async def not_found(request: Request) -> Response:
        return error(404, "not found")

    routes = [Route("/healthz", health), Route(PREFIX + "/healthz", health)]
    if operations:
        routes += [
            Route(PREFIX + "/openapi.json", openapi_json, methods=["GET"]),
            Route(PREFIX + "/openapi.yaml", openapi_yaml, methods=["GET"]),
        ]
        routes += [
            Route(PREFIX + op.path, _limited(services, endpoint(services, op)), methods=[op.method])
            for op in OPERATIONS
        ]
    routes += mounted
    routes.append(Route("/{rest:path}", not_found, methods=ALL_METHODS))
    router = ExactRoutes(Starlette(routes=routes), routes[:-1])
    return RequestContext(router, observer=observer)


class ExactRoutes:
    """Requests for a route without path parameters (`POST /api/v1/publish`, the hot one) go
    straight to its endpoint; the rest through Starlette's router. A dictionary lookup instead
    of the router's walk over every route's pattern and two layers of exception middleware: our
    endpoints answer every error themselves, so those layers had nothing to do for them.

    Before the router, two answers it would give in plain text or wrongly: a method no route
    knows (`TRACE`, `PROPFIND`) is 405 with `Allow` in the error shape, and a path with a control
    character is 404. `routes` are the real routes, without the catch-all 404."""

    def __init__(self, app: Starlette, routes: list[Route]) -> None:
        self._app = app
        self._routes = routes
        self._exact: dict[tuple[str, str], Route] = {}
        for route in routes:
            if route.param_convertors:
                continue
            for method in route.methods or ():
                self._exact.setdefault((method, route.path), route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._exact.get((scope.get("method", ""), scope.get("path", "")))
        if route is None or scope["type"] != "http":
            refusal = self._refusal(scope) if scope["type"] == "http" else None
            await (refusal or self._app)(scope, receive, send)
            return
        scope["route"] = route
        scope["path_params"] = {}
        response = await route.endpoint(Request(scope, receive, send))
        await response(scope, receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        path = scope["path"]
        if _CONTROL_IN_PATH.search(path):
            return error(404, "not found")
        if scope["method"] in ALL_METHODS:
            return None
        allowed = sorted(
            {m for r in self._routes if r.path_regex.match(path) for m in r.methods or ()}
        )
        if not allowed:
            return error(404, "not found")
        return error(405, "method not allowed", headers={"Allow": ", ".join(allowed)})
