"""`GET /metrics`: on the API port behind the admin key, or alone on `PROMETHEUS_PORT`."""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from waypost.api.auth import Authenticator, Unauthorized
from waypost.api.responses import error
from waypost.prometheus.seams import Exporter

PATH = "/metrics"
log = logging.getLogger(__name__)


def metrics_route(exporter: Exporter, auth: Authenticator | None) -> Route:
    """The route; `auth`: the admin key is required (a tenant's token gets 403)."""

    async def metrics(request: Request) -> Response:
        if auth is not None:
            try:
                caller = auth.caller(request.headers.get("authorization"))
            except Unauthorized:
                return error(401, "unauthorized")
            if not caller.admin:
                return error(403, "forbidden")
        try:
            body, content_type = await exporter.scrape()
        except Exception:
            log.exception("collecting Prometheus metrics failed")
            return error(500, "internal server error")
        return Response(body, headers={"Content-Type": content_type})

    return Route(PATH, metrics, methods=["GET"])


def standalone_app(exporter: Exporter) -> Starlette:
    """`PROMETHEUS_PORT`'s application: /metrics without authentication, 404 elsewhere."""

    async def not_found(request: Request) -> Response:
        return error(404, "not found")

    return Starlette(
        routes=[metrics_route(exporter, None), Route("/{rest:path}", not_found)],
    )
