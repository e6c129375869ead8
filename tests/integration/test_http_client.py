"""The libcurl-backed delivery client against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import uvloop
from aiohttp import web

from waypost.transport.http import HttpClient, HttpResponse, HttpTransportError

pytestmark = pytest.mark.timeout(60)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Runner = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    def runner(coro: Coroutine[Any, Any, None]) -> None:
        if request.param == "uvloop":
            uvloop.run(coro)
        else:
            asyncio.run(coro)

    return runner


@contextlib.asynccontextmanager
async def serve(handler: Handler, **kwargs: Any) -> AsyncIterator[str]:
    """An aiohttp server answering every path with `handler`; yields its base URL."""
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_route("*", "/{path:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, **kwargs)
    await site.start()
    port = runner.addresses[0][1]
    scheme = "https" if "ssl_context" in kwargs else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class RawServer:
    """Records the raw head of each request and answers with a fixed response (or never)."""

    def __init__(self, response: bytes | None) -> None:
        self.response = response
        self.heads: list[bytes] = []
        self.received = asyncio.Event()
        self.disconnected = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            self.received.set()
            if self.response is None:
                await reader.read()  # hold the request until the client goes away
                self.disconnected.set()
            else:
                writer.write(self.response)
                await writer.drain()
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def raw_server(response: bytes | None) -> AsyncIterator[tuple[RawServer, int]]:
    state = RawServer(response)
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    try:
        yield state, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def post(client: HttpClient, url: str, **kwargs: Any) -> HttpResponse:
    options: dict[str, Any] = {"timeout": 5.0, "max_body": 0} | kwargs
    headers = options.pop("headers", [("Content-Type", "application/json")])
    body = options.pop("body", b'{"a":1}')
    return await client.post(url, headers, body, **options)


async def transport_error(client: HttpClient, url: str, **kwargs: Any) -> HttpTransportError:
    with pytest.raises(HttpTransportError) as caught:
        await post(client, url, **kwargs)
    return caught.value


def test_post_returns_status_and_body(run: Runner) -> None:
    async def handler(request: web.Request) -> web.Response:
        assert request.method == "POST"
        return web.Response(status=201, body=b"created:" + await request.read())

    async def main() -> None:
        async with serve(handler) as url:
            client = HttpClient(user_agent="Test/1")
            response = await post(client, url + "/hook", body=b'{"zebra":1,"alpha":2}')
            await client.aclose()
        assert response == HttpResponse(201, b'created:{"zebra":1,"alpha":2}', False)

    run(main())


def test_headers_arrive_exactly_as_given() -> None:
    async def main() -> None:
        ok = b"HTTP/1.1 204 No Content\r\n\r\n"
        async with raw_server(ok) as (server, port):
            client = HttpClient(user_agent="Outpost/9.9")
            headers = [
                ("Content-Type", "application/json"),
                ("X-Mixed-Case", "Value With Spaces"),
                ("X-Empty", ""),
                ("User-Agent", "ignored/1.0"),
                ("X-Unicode", "café"),
            ]
            response = await post(client, f"http://127.0.0.1:{port}/in", headers=headers)
            await client.aclose()
        assert response.status == 204
        lines = server.heads[0].decode().split("\r\n")
        assert lines[0] == "POST /in HTTP/1.1"
        received = dict(line.split(":", 1) for line in lines[1:] if line)
        assert {name: value.strip() for name, value in received.items()} == {
            "Host": f"127.0.0.1:{port}",
            "User-Agent": "Outpost/9.9",
            "Accept-Encoding": "gzip",
            "Content-Type": "application/json",
            "X-Mixed-Case": "Value With Spaces",
            "X-Empty": "",
            "X-Unicode": "café",  # sent as UTF-8 bytes, as Go does
            "Content-Length": "7",
        }

    asyncio.run(main())


def test_no_content_type_or_expect_is_added_on_large_bodies() -> None:
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(text=str(len(await request.read())))

    async def main() -> None:
        async with serve(handler) as url:
            client = HttpClient(user_agent="Test/1")
            response = await post(client, url, headers=[], body=b"x" * 3_000_000)
            await client.aclose()
        assert response.body == b"3000000"

    asyncio.run(main())
    assert "Expect" not in seen[0]
    assert "Content-Type" not in seen[0]
    assert "Accept" not in seen[0]


def test_invalid_header_value_is_refused_before_sending() -> None:
    async def main() -> None:
        client = HttpClient(user_agent="Test/1")
        error = await transport_error(
            client, "http://127.0.0.1:9/", headers=[("X-Bad", "a\r\nInjected: yes")]
        )
        await client.aclose()
        assert error.code == "network_error"

    asyncio.run(main())


def test_gzip_responses_are_decoded() -> None:
    async def handler(request: web.Request) -> web.Response:
        assert request.headers["Accept-Encoding"] == "gzip"
        return web.Response(body=gzip.compress(b"plain text"), headers={"Content-Encoding": "gzip"})

    async def main() -> None:
        async with serve(handler) as url:
            client = HttpClient(user_agent="Test/1")
            response = await post(client, url)
            await client.aclose()
        assert response.body == b"plain text"

    asyncio.run(main())


@pytest.mark.parametrize(
    ("size", "cap", "exceeded"),
    [(200_000, 1024, True), (5, 5, False), (6, 5, True), (200_000, 0, False)],
)
def test_body_cap(size: int, cap: int, exceeded: bool) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=500, body=b"x" * size)

    async def main() -> None:
        async with serve(handler) as url:
            client = HttpClient(user_agent="Test/1")
            response = await post(client, url, max_body=cap)
            again = await post(client, url, max_body=cap)  # the handle is reusable after an abort
            await client.aclose()
        assert response.status == again.status == 500
        assert response.body_exceeded is exceeded
        assert len(response.body) == (min(size, cap + 1) if exceeded else size)

    asyncio.run(main())


def test_timeout_covers_the_whole_request(run: Runner) -> None:
    async def main() -> None:
        async with raw_server(None) as (_, port):  # reads the request, never answers
            client = HttpClient(user_agent="Test/1")
            started = time.monotonic()
            error = await transport_error(client, f"http://127.0.0.1:{port}/", timeout=0.3)
            elapsed = time.monotonic() - started
            await client.aclose()
        assert error.code == "timeout"
        assert not error.infrastructure
        assert 0.25 < elapsed < 1.5

    run(main())


def test_closed_port_is_connection_refused() -> None:
    async def main() -> None:
        client = HttpClient(user_agent="Test/1")
        error = await transport_error(client, f"http://127.0.0.1:{closed_port()}/")
        await client.aclose()
        assert error.code == "connection_refused"

    asyncio.run(main())


def test_unknown_host_is_dns_error() -> None:
    async def main() -> None:
        client = HttpClient(user_agent="Test/1")
        error = await transport_error(client, "http://no-such-host.invalid/hook")
        await client.aclose()
        assert error.code == "dns_error"

    asyncio.run(main())


def test_redirects_are_followed() -> None:
    async def handler(request: web.Request) -> web.Response:
        if request.path == "/moved":
            raise web.HTTPFound("/found")
        if request.path == "/temporary":
            raise web.HTTPTemporaryRedirect("/echo")
        body = await request.read()
        return web.Response(text=f"{request.method} {request.path} {body.decode()}")

    async def main() -> None:
        async with serve(handler) as url:
            client = HttpClient(user_agent="Test/1")
            found = await post(client, url + "/moved")
            echoed = await post(client, url + "/temporary")
            await client.aclose()
        assert found.body == b"GET /found "  # 302 turns a POST into a GET, as in Go
        assert echoed.body == b'POST /echo {"a":1}'  # 307 repeats the POST with its body

    asyncio.run(main())


def test_too_many_redirects_is_redirect_error() -> None:
    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPFound("/again")

    async def main() -> None:
        async with serve(handler) as url:
            client = HttpClient(user_agent="Test/1", max_redirects=3)
            error = await transport_error(client, url)
            await client.aclose()
        assert error.code == "redirect_error"

    asyncio.run(main())


def test_redirects_can_be_left_to_the_caller() -> None:
    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPFound("/elsewhere")

    async def main() -> None:
        async with serve(handler) as url:
            client = HttpClient(user_agent="Test/1", follow_redirects=False)
            response = await post(client, url)
            await client.aclose()
        assert response.status == 302

    asyncio.run(main())


def test_fifty_concurrent_requests_each_get_their_own_response(run: Runner) -> None:
    in_flight = 0
    peak = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return web.Response(body=b"reply-" + await request.read())

    async def main() -> None:
        async with serve(handler) as url:
            client = HttpClient(user_agent="Test/1", max_connections=100)
            responses = await asyncio.gather(
                *(post(client, url, body=str(n).encode()) for n in range(50))
            )
            await client.aclose()
        assert [r.body for r in responses] == [f"reply-{n}".encode() for n in range(50)]
        assert peak > 10

    run(main())


def test_cancelling_the_caller_drops_the_transfer(run: Runner) -> None:
    async def main() -> None:
        async with raw_server(None) as (server, port), serve(ok_handler) as ok_url:
            baseline = open_fds()
            client = HttpClient(user_agent="Test/1")
            task = asyncio.create_task(post(client, f"http://127.0.0.1:{port}/"))
            await asyncio.wait_for(server.received.wait(), 5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(server.disconnected.wait(), 5)  # libcurl closed the socket
            assert (await post(client, ok_url)).status == 200  # and the client still works
            await client.aclose()
            await asyncio.sleep(0.1)  # let the servers close their ends
            assert open_fds() == baseline

    run(main())


def test_aclose_fails_requests_in_flight_as_infrastructure() -> None:
    async def main() -> None:
        async with raw_server(None) as (server, port):
            client = HttpClient(user_agent="Test/1")
            task = asyncio.create_task(post(client, f"http://127.0.0.1:{port}/"))
            await asyncio.wait_for(server.received.wait(), 5)
            await client.aclose()
            with pytest.raises(HttpTransportError) as caught:
                await task
        assert caught.value.infrastructure
        with pytest.raises(RuntimeError):
            await post(client, f"http://127.0.0.1:{port}/")

    asyncio.run(main())


def test_no_descriptors_leak_across_outcomes() -> None:
    async def main() -> None:
        async with serve(ok_handler) as ok_url, raw_server(None) as (_, silent_port):
            baseline = open_fds()
            client = HttpClient(user_agent="Test/1")
            await asyncio.gather(*(post(client, ok_url) for _ in range(20)))
            await transport_error(client, f"http://127.0.0.1:{silent_port}/", timeout=0.1)
            await transport_error(client, f"http://127.0.0.1:{closed_port()}/")
            await client.aclose()
            await asyncio.sleep(0.1)
            assert open_fds() == baseline

    asyncio.run(main())


def test_requests_go_through_the_configured_proxy() -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nvia proxy"

    async def main() -> None:
        async with raw_server(reply) as (proxy, port):
            client = HttpClient(user_agent="Test/1", proxy_url=f"http://127.0.0.1:{port}")
            # The proxy resolves the destination, so even an unresolvable name gets through.
            response = await post(client, "http://destination.invalid/hook")
            await client.aclose()
        assert response.body == b"via proxy"
        assert proxy.heads[0].startswith(b"POST http://destination.invalid/hook HTTP/1.1\r\n")

    asyncio.run(main())


def test_unreachable_proxy_is_an_infrastructure_error() -> None:
    async def main() -> None:
        client = HttpClient(user_agent="Test/1", proxy_url=f"http://127.0.0.1:{closed_port()}")
        error = await transport_error(client, "http://destination.invalid/hook")
        await client.aclose()
        assert error.infrastructure

    asyncio.run(main())


def test_tls_certificates_are_verified(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def main() -> None:
        async with serve(ok_handler, ssl_context=context) as url:
            client = HttpClient(user_agent="Test/1")
            error = await transport_error(client, url)  # self-signed: not in the system store
            await client.aclose()
        assert error.code == "tls_error"

    asyncio.run(main())


async def ok_handler(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def test_non_ascii_paths_are_percent_encoded_and_nul_is_refused() -> None:
    async def main() -> None:
        async with raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") as (server, port):
            client = HttpClient(user_agent="Test/1")
            await post(client, f"http://127.0.0.1:{port}/caf\u00e9")
            error = await transport_error(client, f"http://127.0.0.1:{port}/a\x00b")
            await client.aclose()
        assert server.heads[0].startswith(b"POST /caf%C3%A9 HTTP/1.1\r\n")
        assert error.code == "network_error"

    asyncio.run(main())


def test_a_keep_alive_connection_closed_by_the_server_is_replaced() -> None:
    async def main() -> None:
        # Answers as if keeping the connection, then hangs up: the next request must not fail.
        reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"
        async with raw_server(reply) as (server, port):
            client = HttpClient(user_agent="Test/1")
            first = await post(client, f"http://127.0.0.1:{port}/")
            await asyncio.sleep(0.1)
            second = await post(client, f"http://127.0.0.1:{port}/")
            await client.aclose()
        assert first.body == second.body == b"ok"
        assert len(server.heads) == 2

    asyncio.run(main())
