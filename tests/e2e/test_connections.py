"""Connections that never complete a request end, and only so many are open at once.

Raw sockets against `waypost serve`: a connection that sends nothing, or only part of a request
head (one byte at a time included), is closed once `API_HEADER_TIMEOUT_SECONDS` have passed (408
first when part of a head came); a kept-alive connection that stays idle is closed after
`API_KEEPALIVE_TIMEOUT_SECONDS`; a request whose body does not all arrive within
`API_BODY_TIMEOUT_SECONDS` of its head is answered 408 and closed; past `API_MAX_CONNECTIONS` a
new connection is closed at once, and one is accepted again when a slot frees.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable, Iterator

import pytest
from support.server import ServerProcess

# The HTTP server's connection handling comes before any store: once is enough.
pytestmark = [pytest.mark.e2e, pytest.mark.backends("sqlite"), pytest.mark.timeout(120)]

HEALTH = b"GET /healthz HTTP/1.1\r\nHost: outpost\r\n\r\n"


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def _connect(server: ServerProcess, opened: list[socket.socket], count: int) -> list[socket.socket]:
    new = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(count)]
    opened.extend(new)
    return new


def _read_until_closed(socks: list[socket.socket], deadline: float) -> dict[socket.socket, bytes]:
    """What each socket received until the server closed it; raises if one is open at deadline."""
    received = {sock: b"" for sock in socks}
    open_ = set(socks)
    while open_:
        left = deadline - time.monotonic()
        assert left > 0, f"{len(open_)} of {len(socks)} connections still open"
        readable, _, _ = select.select(list(open_), [], [], min(left, 0.5))
        for sock in readable:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if chunk:
                received[sock] += chunk
            else:
                open_.discard(sock)
    return received


def _still_open(socks: list[socket.socket]) -> int:
    readable, _, _ = select.select(socks, [], [], 0)
    return len(socks) - len(readable)


def test_connections_without_a_complete_head_are_closed(
    make_server: Callable[..., ServerProcess], sockets: list[socket.socket]
) -> None:
    server = make_server({"API_HEADER_TIMEOUT_SECONDS": "1", "API_KEEPALIVE_TIMEOUT_SECONDS": "1"})
    silent = _connect(server, sockets, 100)
    partial = _connect(server, sockets, 20)
    for sock in partial:
        sock.sendall(HEALTH[:30])
    trickle = _connect(server, sockets, 5)
    kept_alive = _connect(server, sockets, 5)
    for sock in kept_alive:
        sock.sendall(HEALTH)

    deadline = time.monotonic() + 20
    sent = 0
    while _still_open(trickle) and time.monotonic() < deadline and sent < len(HEALTH) - 1:
        for sock in trickle:  # one byte every 0.2 s never finishes within the bound
            sock.sendall(HEALTH[sent : sent + 1])
        sent += 1
        time.sleep(0.2)

    received = _read_until_closed(silent + partial + trickle + kept_alive, deadline)
    assert all(received[sock] == b"" for sock in silent)
    for sock in partial + trickle:
        head, _, body = received[sock].partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), received[sock]
        assert body == b'{"status":408,"message":"request timeout"}'
    for sock in kept_alive:  # answered, then closed once idle
        assert received[sock].startswith(b"HTTP/1.1 200 "), received[sock]

    with server.http() as client:  # the server still serves
        assert client.get("/healthz").status_code == 200


def test_a_body_that_never_completes_is_closed(
    make_server: Callable[..., ServerProcess], sockets: list[socket.socket]
) -> None:
    server = make_server({"API_BODY_TIMEOUT_SECONDS": "1", "API_HEADER_TIMEOUT_SECONDS": "60"})
    head = (
        b"POST /api/v1/publish HTTP/1.1\r\nHost: outpost\r\n"
        + f"Authorization: Bearer {server.api_key}\r\n".encode()
        + b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    stalled = _connect(server, sockets, 10)
    for sock in stalled:
        sock.sendall(head + b'{"tenant_id":')  # then nothing: the handler waits for the rest
    trickle = _connect(server, sockets, 3)
    for sock in trickle:
        sock.sendall(head)

    deadline = time.monotonic() + 20
    for _ in range(15):  # a byte every 0.2 s: 1,000 bytes would take minutes
        if not _still_open(trickle) or time.monotonic() > deadline:
            break
        for sock in trickle:
            sock.sendall(b" ")
        time.sleep(0.2)

    received = _read_until_closed(stalled + trickle, deadline)
    for sock in stalled + trickle:
        head_in, _, body = received[sock].partition(b"\r\n\r\n")
        assert head_in.startswith(b"HTTP/1.1 408 "), received[sock]
        assert body == b'{"status":408,"message":"request timeout"}'
    with server.http() as client:  # the server still serves
        assert client.get("/healthz").status_code == 200
    assert "unhandled error" not in server.log_text()  # a client gone is not a server fault


def test_past_the_bound_new_connections_are_closed(
    make_server: Callable[..., ServerProcess], sockets: list[socket.socket]
) -> None:
    server = make_server({"API_MAX_CONNECTIONS": "20", "API_HEADER_TIMEOUT_SECONDS": "60"})
    holding = _connect(server, sockets, 20)
    # The server accepts in its own time: until it has taken all twenty, an extra one may still
    # be accepted in place of one of them, so wait until extras are refused.
    deadline = time.monotonic() + 20
    while True:
        [extra] = _connect(server, sockets, 1)
        try:
            _read_until_closed([extra], time.monotonic() + 1)
            break
        except AssertionError:
            assert time.monotonic() < deadline, "connections past the bound were kept"
    extras = _connect(server, sockets, 30)
    _read_until_closed(extras, time.monotonic() + 20)
    assert _still_open(holding) >= 19

    for sock in holding[:5]:
        sock.close()
    deadline = time.monotonic() + 20
    while True:  # a slot frees once the server has seen the close
        [fresh] = _connect(server, sockets, 1)
        fresh.sendall(HEALTH)
        answer = _read_first(fresh, time.monotonic() + 2)
        if answer.startswith(b"HTTP/1.1 200 "):
            break
        assert time.monotonic() < deadline, answer


def _read_first(sock: socket.socket, deadline: float) -> bytes:
    readable, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
    if not readable:
        return b""
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""
