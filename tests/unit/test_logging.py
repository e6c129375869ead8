"""Structured logs: the formats, the context each line carries, and request ids."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from waypost.telemetry import context, logs
from waypost.telemetry.requests import RequestContext

HANDLER_LOG = logging.getLogger("waypost.test.handler")
anyio = pytest.mark.anyio


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """Everything logged during the test, as JSON lines (restoring logging afterwards)."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    logs.configure("debug", "json", stream)
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    """Our lines only (asyncio and httpx log at debug too)."""
    found = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in found if str(line["logger"]).startswith("waypost.")]


class Calls:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def api_call(self, method: str, path: str, elapsed_ms: int) -> None:
        self.seen.append((method, path))


def app(calls: Calls | None = None) -> Starlette:
    async def tenant(request: Request) -> Response:
        HANDLER_LOG.warning("looking up %s", request.path_params["tenant_id"])
        return JSONResponse({})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "healthy"})

    routes = [Route("/healthz", health), Route("/api/v1/tenants/{tenant_id}", tenant)]
    return Starlette(routes=routes, middleware=[Middleware(RequestContext, observer=calls)])


async def get(target: Starlette, path: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=target)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path, headers=headers)


@anyio
async def test_a_well_formed_request_id_is_kept_and_on_every_line(output: io.StringIO) -> None:
    response = await get(app(), "/api/v1/tenants/acme", **{"X-Request-Id": "req-42.a:b"})
    assert response.headers["x-request-id"] == "req-42.a:b"
    handler_line, access_line = lines(output)
    assert handler_line["message"] == "looking up acme"
    assert handler_line["level"] == "warn"
    assert handler_line["logger"] == "waypost.test.handler"
    assert handler_line["request_id"] == access_line["request_id"] == "req-42.a:b"
    assert access_line["status"] == 200 and access_line["level"] == "info"


@anyio
@pytest.mark.parametrize("given", ["has space", "x" * 129, "new\\nline", 'quote"d;x'])
async def test_a_malformed_request_id_is_replaced(output: io.StringIO, given: str) -> None:
    response = await get(app(), "/api/v1/tenants/acme", **{"X-Request-Id": given})
    generated = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert {line["request_id"] for line in lines(output)} == {generated}


@anyio
async def test_each_request_gets_its_own_id(output: io.StringIO) -> None:
    first, second = await asyncio.gather(
        get(app(), "/api/v1/tenants/a"), get(app(), "/api/v1/tenants/b")
    )
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@anyio
async def test_health_probes_are_logged_at_debug_only(output: io.StringIO) -> None:
    await get(app(), "/healthz")
    assert [line["level"] for line in lines(output)] == ["debug"]


@anyio
async def test_api_metrics_use_the_route_template() -> None:
    calls = Calls()
    await get(app(calls), "/api/v1/tenants/acme")
    await get(app(calls), "/nowhere")
    assert calls.seen == [("GET", "/api/v1/tenants/{tenant_id}"), ("GET", "")]


@anyio
async def test_bound_fields_stay_in_their_task(output: io.StringIO) -> None:
    log = logging.getLogger("waypost.test.delivery")

    async def deliver(event_id: str) -> None:
        context.bind(event_id=event_id, attempt=1)
        await asyncio.sleep(0)
        log.info("delivering")

    await asyncio.gather(deliver("e1"), deliver("e2"))
    log.info("outside")
    found = [(line["message"], line.get("event_id")) for line in lines(output)]
    assert sorted(found) == [("delivering", "e1"), ("delivering", "e2"), ("outside", None)]


def test_text_lines_end_with_the_context(output: io.StringIO) -> None:
    stream = io.StringIO()
    logs.configure("info", "text", stream)

    async def one() -> None:
        context.bind(event_id="e1", destination_id="d1")
        logging.getLogger("waypost.test").info("attempt %s", "failed", extra={"code": "500"})

    asyncio.run(one())
    text = stream.getvalue().strip()
    assert re.fullmatch(
        r"\S+ \S+ INFO waypost\.test attempt failed event_id=e1 destination_id=d1 code=500", text
    )


def test_json_lines_carry_the_exception(output: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("waypost.test").exception("failed")
    (line,) = lines(output)
    assert line["level"] == "error" and "ValueError: boom" in str(line["error"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(line["time"]))


def test_levels_follow_the_servers_logger_names(output: io.StringIO) -> None:
    logs.configure("warn", "json", output)
    logging.getLogger("waypost.test").info("hidden")
    logging.getLogger("waypost.test").warning("shown")
    assert [line["message"] for line in lines(output)] == ["shown"]


FORGED = "/api/v1/tenants/x\n2026-01-01 00:00:00,000 ERROR waypost.api forged line\x1b[2J\x9b31m"


@pytest.fixture
def text_output(output: io.StringIO) -> io.StringIO:
    stream = io.StringIO()
    logs.configure("debug", "text", stream)
    return stream


@anyio
async def test_a_path_cannot_forge_a_text_line_or_reach_the_terminal(
    text_output: io.StringIO,
) -> None:
    """`%0a` and `%1b` in a request path (decoded by the server) stay inside their own line."""
    await get(app(), FORGED.replace("\n", "%0a").replace("\x1b", "%1b").replace("\x9b", "%C2%9B"))
    every = text_output.getvalue().split("\n")
    assert not [line for line in every if line.startswith("2026-01-01")]  # nothing forged
    ours = [line for line in every if " waypost." in line]
    assert len(ours) == 2  # the handler's line and the access line
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", text_output.getvalue())
    assert "x\\n2026-01-01" in ours[0] and "\\x1b[2J" in ours[0] and "\\x9b31m" in ours[0]


def test_a_traceback_stays_under_its_record(text_output: io.StringIO) -> None:
    try:
        raise ValueError("bad id\nFORGED ERROR line\x1b[0m")
    except ValueError:
        logging.getLogger("waypost.test").exception("failed %s", "on\rpurpose")
    first, *rest = text_output.getvalue().rstrip("\n").split("\n")
    assert first.endswith("ERROR waypost.test failed on\\rpurpose")
    assert rest and all(line.startswith("  ") for line in rest)
    assert "\x1b" not in text_output.getvalue()


def test_json_lines_escape_every_control_character(output: io.StringIO) -> None:
    logging.getLogger("waypost.test").warning("x", extra={"path": "a\nb\x1bc\x9bd\u2028e"})
    raw = output.getvalue()
    assert raw.count("\n") == 1 and not re.search("[\x00-\x1f\x7f-\x9f\u2028]", raw[:-1])
    (line,) = lines(output)
    assert line["path"] == "a\nb\x1bc\x9bd\u2028e"
