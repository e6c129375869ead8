"""The SSRF guard at delivery: the real HttpClient against real listeners on loopback.

Each listener counts TCP connections, not just requests, so "refused" means no connection was
ever opened to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import uvloop

from waypost.core.models import DeliveryResult, Destination, Event
from waypost.destinations.webhook import WebhookProvider, WebhookSettings
from waypost.transport.guard import AddressGuard
from waypost.transport.http import HttpClient, HttpTransportError

pytestmark = pytest.mark.timeout(60)

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
REDIRECT = b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n"
CLOSING = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
LOOPBACK_ONLY = AddressGuard(["127.0.0.0/8"])


@dataclass
class Listener:
    """A keep-alive HTTP/1.1 responder that records connections and request lines."""

    reply: bytes = OK
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests.append(head.split(b"\r\n", 1)[0])
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                writer.write(self.reply)
                await writer.drain()
                if b"Connection: close" in self.reply:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def listening(listener: Listener, host: str = "127.0.0.1") -> AsyncIterator[int]:
    server = await asyncio.start_server(listener.handle, host, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def listening_on_localhost(listener: Listener) -> AsyncIterator[int]:
    """127.0.0.1 and, where the machine has it, ::1 on the same port."""
    async with listening(listener) as port:
        try:
            server = await asyncio.start_server(listener.handle, "::1", port)
        except OSError:
            yield port  # no IPv6 loopback here: localhost is 127.0.0.1 only
            return
        try:
            yield port
        finally:
            server.close()
            await server.wait_closed()


def make_event() -> Event:
    return Event(id="evt_1", tenant_id="acme", topic="user.created", time=0, data=b'{"n":1}')


def make_destination(url: str) -> Destination:
    return Destination(
        id="des_1",
        tenant_id="acme",
        type="webhook",
        topics=("*",),
        config={"url": url},
        credentials={},
        created_at=0,
        updated_at=0,
    )


async def publish(guard: AddressGuard | None, url: str, **client: Any) -> DeliveryResult:
    provider = WebhookProvider(WebhookSettings(), HttpClient(user_agent="t", guard=guard, **client))
    try:
        return await provider.publish(make_event(), make_destination(url))
    finally:
        await provider.close()


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Any:
    def runner(coro: Coroutine[Any, Any, None]) -> None:
        (uvloop.run if request.param == "uvloop" else asyncio.run)(coro)

    return runner


def test_loopback_is_refused_before_any_connection(run: Any) -> None:
    listener = Listener()

    async def main() -> None:
        async with listening(listener) as port:
            result = await publish(AddressGuard(), f"http://127.0.0.1:{port}/hook")
        assert result == DeliveryResult(
            "failed",
            "ssrf_blocked",
            {"error": "delivery to 127.0.0.1 refused: a loopback address is not allowed"},
        )

    run(main())
    assert listener.connections == 0


def test_allow_listed_loopback_is_delivered(run: Any) -> None:
    listener = Listener()

    async def main() -> None:
        async with listening(listener) as port:
            result = await publish(LOOPBACK_ONLY, f"http://127.0.0.1:{port}/hook")
        assert result == DeliveryResult("success", "200", {"status": 200, "body": "ok"})

    run(main())
    assert (listener.connections, listener.requests) == (1, [b"POST /hook HTTP/1.1"])


@pytest.mark.parametrize("host", ["[::ffff:127.0.0.1]", "127.1", "0x7f000001"])
def test_other_spellings_of_loopback_are_refused(host: str) -> None:
    listener = Listener()

    async def main() -> DeliveryResult:
        async with listening(listener) as port:
            return await publish(AddressGuard(), f"http://{host}:{port}/hook")

    result = asyncio.run(main())
    assert (result.status, result.code) == ("failed", "ssrf_blocked")
    assert listener.connections == 0


def test_a_name_resolving_to_loopback_is_refused(run: Any) -> None:
    listener = Listener()

    async def main() -> None:
        async with listening_on_localhost(listener) as port:
            result = await publish(AddressGuard(), f"http://localhost:{port}/hook")
        assert (result.status, result.code) == ("failed", "ssrf_blocked")
        assert result.response_data is not None
        error = result.response_data["error"]
        # The tenant learns the address is not allowed, not which one the name resolved to.
        assert error == "delivery to localhost refused: the address it resolved to is not allowed"

    run(main())
    assert listener.connections == 0


def test_only_the_allowed_addresses_of_a_name_are_connected_to() -> None:
    # localhost may resolve to ::1 as well; only 127.0.0.0/8 is opened, so libcurl must skip
    # ::1 and reach 127.0.0.1, and a failure there is the destination's, not the guard's.
    listener = Listener()

    async def main() -> tuple[DeliveryResult, DeliveryResult]:
        async with listening_on_localhost(listener) as port:
            delivered = await publish(LOOPBACK_ONLY, f"http://localhost:{port}/hook")
        refused = await publish(LOOPBACK_ONLY, f"http://localhost:{port}/hook")
        return delivered, refused

    delivered, refused = asyncio.run(main())
    assert delivered == DeliveryResult("success", "200", {"status": 200, "body": "ok"})
    assert listener.connections == 1
    assert refused == DeliveryResult("failed", "connection_refused")


@pytest.mark.parametrize("follow_redirects", [True, False])
def test_redirects_are_not_followed_while_guarded(follow_redirects: bool) -> None:
    listener = Listener(reply=REDIRECT)

    async def main() -> DeliveryResult:
        async with listening(listener) as port:
            url = f"http://127.0.0.1:{port}/hook"
            return await publish(LOOPBACK_ONLY, url, follow_redirects=follow_redirects)

    result = asyncio.run(main())
    assert result == DeliveryResult("success", "302", {"status": 302, "body": ""})
    assert listener.requests == [b"POST /hook HTTP/1.1"]


def test_without_the_guard_redirects_are_followed() -> None:
    # The control for the test above: the same listener, unguarded, sees the second request.
    listener = Listener(reply=REDIRECT)

    async def main() -> DeliveryResult:
        async with listening(listener) as port:
            return await publish(None, f"http://127.0.0.1:{port}/hook", max_redirects=1)

    result = asyncio.run(main())
    assert (result.status, result.code) == ("failed", "redirect_error")
    assert listener.requests[:2] == [b"POST /hook HTTP/1.1", b"GET /elsewhere HTTP/1.1"]


def test_through_a_proxy_only_ip_literals_are_checked() -> None:
    # The proxy (on loopback, which the guard would refuse) is the operator's: never screened.
    # It resolves names itself, so a name goes to it; a refused literal never leaves.
    proxy = Listener()

    async def main() -> tuple[BaseException | None, int]:
        async with listening(proxy) as port:
            client = HttpClient(
                user_agent="t", proxy_url=f"http://127.0.0.1:{port}", guard=AddressGuard()
            )
            try:
                with pytest.raises(HttpTransportError) as caught:
                    await client.post("http://10.0.0.1/hook", [], b"{}", timeout=5, max_body=0)
                refused_connections = proxy.connections
                response = await client.post(
                    "http://hooks.example.com/x", [], b"{}", timeout=5, max_body=0
                )
            finally:
                await client.aclose()
        assert response.status == 200
        return caught.value, refused_connections

    error, refused_connections = asyncio.run(main())
    assert isinstance(error, HttpTransportError) and error.code == "ssrf_blocked"
    assert error.message == "delivery to 10.0.0.1 refused: a private address is not allowed"
    assert refused_connections == 0
    assert proxy.requests == [b"POST http://hooks.example.com/x HTTP/1.1"]


def _socket_fds() -> list[int]:
    fds = []
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.stat(f"/proc/self/fd/{name}").st_mode):
                fds.append(int(name))
    return fds


def test_guarded_sockets_are_not_leaked_and_stay_close_on_exec() -> None:
    closing, kept = Listener(reply=CLOSING), Listener()

    async def main() -> None:
        client = HttpClient(user_agent="t", guard=LOOPBACK_ONLY)
        try:
            async with listening(closing) as port:
                url = f"http://127.0.0.1:{port}/"
                await client.post(url, [], b"{}", timeout=5, max_body=0)  # warm-up
                before = len(os.listdir("/proc/self/fd"))
                for _ in range(50):  # a new connection each time
                    await client.post(url, [], b"{}", timeout=5, max_body=0)
                assert len(os.listdir("/proc/self/fd")) <= before
            async with listening(kept) as port:
                await client.post(f"http://127.0.0.1:{port}/", [], b"{}", timeout=5, max_body=0)
                # libcurl's connection is open now; like every socket here, it is not inherited
                assert [fd for fd in _socket_fds() if os.get_inheritable(fd)] == []
        finally:
            await client.aclose()

    asyncio.run(main())
    assert closing.connections == 51 and kept.connections == 1


def test_a_refusal_is_reported_once_per_delivery_on_a_reused_handle() -> None:
    # A pooled handle that was refused once carries nothing over to its next delivery.
    listener = Listener()

    async def main() -> None:
        guard = AddressGuard(["127.0.0.2/32"])
        client = HttpClient(user_agent="t", guard=guard)
        try:
            async with listening(listener, "127.0.0.2") as port:
                for _ in range(3):
                    with pytest.raises(HttpTransportError, match="ssrf_blocked"):
                        await client.post(
                            f"http://127.0.0.1:{port}/", [], b"{}", timeout=5, max_body=0
                        )
                    response = await client.post(
                        f"http://127.0.0.2:{port}/", [], b"{}", timeout=5, max_body=0
                    )
                    assert response.status == 200
        finally:
            await client.aclose()

    asyncio.run(main())
    assert listener.connections == 1  # kept alive across the three allowed deliveries


def test_a_refusal_costs_no_socket() -> None:
    async def main() -> None:
        client = HttpClient(user_agent="t", guard=AddressGuard())
        try:
            before = len(_socket_fds())
            with pytest.raises(HttpTransportError):
                await client.post("http://127.0.0.1:9/", [], b"{}", timeout=5, max_body=0)
            assert len(_socket_fds()) == before
        finally:
            await client.aclose()

    asyncio.run(main())


def test_unguarded_client_reports_no_guard() -> None:
    assert HttpClient(user_agent="t").guard is None
    guard = AddressGuard()
    assert HttpClient(user_agent="t", guard=guard).guard is guard


def test_provider_validation_refuses_private_ip_literals_only_when_guarded() -> None:
    guarded = WebhookProvider(WebhookSettings(), HttpClient(user_agent="t", guard=AddressGuard()))
    open_ = WebhookProvider(WebhookSettings(), HttpClient(user_agent="t"))
    refused = make_destination("http://169.254.169.254/latest/meta-data")
    assert guarded.validate(refused) == ["config.url failed ssrf validation"]
    assert open_.validate(refused) == []
    for fine in ("https://example.com/hook", "http://localhost:8080/", "http://8.8.8.8/"):
        assert guarded.validate(make_destination(fine)) == []
    # the pattern is checked first, and a bad URL is reported as a pattern failure
    assert guarded.validate(make_destination("ftp://127.0.0.1/")) == [
        "config.url failed pattern validation"
    ]
    # custom headers are judged only once the URL passes, as Outpost stops at the first group
    bad_headers = replace(refused, config={**refused.config, "custom_headers": "nope"})
    assert guarded.validate(bad_headers) == ["config.url failed ssrf validation"]
    asyncio.run(guarded.close())
    asyncio.run(open_.close())


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1./hook", "http://0x7f000001./hook", "http://%31%32%37.0.0.1/hook"],
)
def test_through_a_proxy_literals_in_any_spelling_never_leave(url: str) -> None:
    # The proxy would resolve `127.0.0.1.` (a trailing dot is the DNS root) to loopback: the
    # literal must be recognised as one here, whatever its spelling.
    proxy = Listener()

    async def main() -> BaseException:
        async with listening(proxy) as port:
            client = HttpClient(
                user_agent="t", proxy_url=f"http://127.0.0.1:{port}", guard=AddressGuard()
            )
            try:
                with pytest.raises(HttpTransportError) as caught:
                    await client.post(url, [], b"{}", timeout=5, max_body=0)
            finally:
                await client.aclose()
        return caught.value

    error = asyncio.run(main())
    assert isinstance(error, HttpTransportError) and error.code == "ssrf_blocked"
    assert (proxy.connections, proxy.requests) == (0, [])
