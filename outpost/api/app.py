"""The ASGI application: the route table wrapped in authentication and error mapping."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from outpost.api.auth import Unauthorized
from outpost.api.context import Context, Services
from outpost.api.handlers import system
from outpost.api.limits import refuse_nul_in_target
from outpost.api.ratelimit import rate_limited
from outpost.api.responses import error
from outpost.api.routes import OPERATIONS, Operation
from outpost.errors import ForbiddenError, InputError, NotFoundError, StoreError, StoreUnavailable
from outpost.observability.requests import RequestContext
from outpost.portal.serving import portal_routes
from outpost.telemetry.hooks import ApiObserver

PREFIX = "/api/v1"
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
log = logging.getLogger(__name__)


async def authorize(request: Request, services: Services, operation: Operation) -> Context:
    """§1.2: the key or a JWT; then admin-only routes, the path's tenant, and a live JWT tenant."""
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
    """`run` under the API rate limit, when one is configured (outpost.api.ratelimit)."""
    if services.rate_limiter is None:
        return run
    return rate_limited(services.rate_limiter, services.auth, run)


def build(
    services: Services, *, operations: bool = True, observer: ApiObserver | None = None
) -> ASGIApp:
    """The API; with `operations=False` only /healthz (a delivery-only process). Every request
    gets a request id (`observability.requests`); `observer` receives API metrics."""

    async def health(request: Request) -> Response:
        return await system.health(services)

    async def not_found(request: Request) -> Response:
        return error(404, "not found")

    routes = [Route("/healthz", health), Route(PREFIX + "/healthz", health)]
    if operations:
        routes += [
            Route(PREFIX + op.path, _limited(services, endpoint(services, op)), methods=[op.method])
            for op in OPERATIONS
        ]
        routes += portal_routes(services.config)  # the tenant portal, outside /api (§7.3)
    routes.append(Route("/{rest:path}", not_found, methods=ALL_METHODS))
    router = ExactRoutes(Starlette(routes=routes), routes)
    return RequestContext(router, observer=observer)


class ExactRoutes:
    """Requests for a route without path parameters (`POST /api/v1/publish`, the hot one) go
    straight to its endpoint; the rest through Starlette's router. A dictionary lookup instead
    of the router's walk over every route's pattern and two layers of exception middleware: our
    endpoints answer every error themselves, so those layers had nothing to do for them."""

    def __init__(self, app: Starlette, routes: list[Route]) -> None:
        self._app = app
        self._exact: dict[tuple[str, str], Route] = {}
        for route in routes:
            if route.param_convertors:
                continue
            for method in route.methods or ():
                self._exact.setdefault((method, route.path), route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._exact.get((scope.get("method", ""), scope.get("path", "")))
        if route is None or scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        scope["route"] = route
        scope["path_params"] = {}
        response = await route.endpoint(Request(scope, receive, send))
        await response(scope, receive, send)
