"""Hostile input the request parser and the stores would choke on: oversized heads, NUL characters.

A bound on the request head (request line + headers), answered with a clean 431.

uvicorn's httptools parser has no limit of its own on the head: it buffers a header value until
the line ends, so one endless header grows the process without bound. The protocol below counts
the bytes of each request's head as they arrive and, past the limit, answers 431 in Outpost's
error shape and closes the connection (what follows on it cannot be trusted to be a request
boundary).

Connections that hold a slot without finishing a request are ended too: a request head must be
complete within `API_HEADER_TIMEOUT_SECONDS` of the connection opening (or, on a kept-alive
connection, of the request's first byte), else the connection is closed, after a 408 if part of a
head had arrived; idle kept-alive connections are uvicorn's `timeout_keep_alive`. And at most
`API_MAX_CONNECTIONS` are open at once: one more is closed as soon as it is accepted, before any
parser or buffer is spent on it. (uvicorn's own bound, `limit_concurrency`, accepts the
connection, reads the head and answers a plain-text 503, so it would keep every idle excess
connection open until its head timed out.)

It subclasses uvicorn's protocol (pinned in requirements/runtime.lock): the parser callbacks it
hooks are `on_message_begin`, `on_headers_complete` and `on_message_complete`, and
`send_400_response`, which uvicorn calls when a callback raised; `connection_made` and
`connection_lost` for the timer and the bound (`self.connections` is the server's set of open
connections).

NUL characters (U+0000) are refused in the request target (400) and in JSON bodies (422):
PostgreSQL cannot store them in text, so without this an id or a filter value containing one
would be a 503 in PostgreSQL mode and stored in embedded mode. A NUL can only reach us escaped
(`%00`, `\u0000`): raw NUL bytes are already invalid HTTP and invalid JSON.

Request bodies must be UTF-8 (422 otherwise), as JSON must be: event `data` is kept as sent, so
invalid bytes in it would be served back inside every listing, which then is not JSON. (Escaped
lone surrogates such as `\ud800`, which no UTF-8 can carry either, are refused by the JSON
decoder.)
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from waypost.errors import InputError

_STATUS = 431
_MESSAGE = "request header fields too large"
_LINGER_SECONDS = 1.0


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a request whose head is too large."""


def _response(status: int = _STATUS, message: str = _MESSAGE) -> bytes:
    body = msgspec.json.encode({"status": status, "message": message})
    reason = "Request Header Fields Too Large" if status == _STATUS else "Request Timeout"
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "content-type: application/json; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class _HeadLimitedProtocol(HttpToolsProtocol):
    max_head_bytes = 32_768
    head_timeout = 10.0
    body_timeout = 30.0
    max_connections = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = True
        self._head_bytes = 0
        self._head_too_large = False
        self._head_timer: asyncio.TimerHandle | None = None
        # A body that trickles (or never comes) would hold the connection and the handler
        # awaiting it for as long as the client likes: one of API_MAX_CONNECTIONS per client.
        self._body_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            self._refused = True
            transport.close()
            return
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return  # never counted nor parsed
        self._disarm_head_timer()
        self._disarm_body_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:  # the first request's runs from the connection's start
            self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        self._head_too_large = True  # drop whatever else arrives
        if self._head_bytes:
            self.transport.write(_response(408, "request timeout"))
        self.transport.close()

    def _disarm_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        self._head_too_large = True  # drop whatever else arrives
        cycle = self.cycle
        if cycle is None or not cycle.response_started:
            self.transport.write(_response(408, "request timeout"))
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._head_too_large:
            return  # answered and closing: the rest of what the client sends is dropped
        if self._reading_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Still in the head after taking the whole chunk: every byte counted so far is head.
        if self._reading_head and self._head_bytes > self.max_head_bytes:
            self._reject()

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._disarm_head_timer()
        # The exact size (the chunk count above may include the start of the body).
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_head_bytes:
            self._head_too_large = True
            raise _HeadTooLarge
        super().on_headers_complete()
        self._body_timer = self.loop.call_later(self.body_timeout, self._body_timed_out)

    def on_message_complete(self) -> None:
        self._disarm_body_timer()
        super().on_message_complete()
        self._reading_head = True
        self._head_bytes = 0

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            self._reject()
        else:
            super().send_400_response(msg)

    def _reject(self) -> None:
        if self.transport.is_closing():
            return
        self._reading_head = False
        self._head_too_large = True
        self.transport.write(_response())
        # Lingering close: closing with the client's bytes still unread would reset the
        # connection and could destroy the answer in flight, so stop writing, keep reading (and
        # dropping) a moment, then close.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        asyncio.get_running_loop().call_later(_LINGER_SECONDS, self.transport.close)


def head_limited_protocol(
    max_head_bytes: int,
    *,
    head_timeout: float = 10.0,
    body_timeout: float = 30.0,
    max_connections: int = 1000,
) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, answering 431 to heads over `max_head_bytes`, closing
    connections whose head is not complete within `head_timeout` seconds or whose body is not
    complete within `body_timeout` seconds of its head, and keeping at most `max_connections`
    open."""
    settings = {
        "max_head_bytes": max_head_bytes,
        "head_timeout": head_timeout,
        "body_timeout": body_timeout,
        "max_connections": max_connections,
    }
    return type("HeadLimitedProtocol", (_HeadLimitedProtocol,), settings)


# `\u0000` preceded by an even number of backslashes (an odd number escapes the backslash itself)
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def refuse_nul_in_target(path: str, query_string: bytes) -> None:
    """`path` decoded, `query_string` as sent."""
    if "\x00" in path or b"%00" in query_string:
        raise InputError("NUL characters are not allowed in the request target")


def refuse_nul_in_body(body: bytes) -> None:
    if b"\\u0000" in body and _ESCAPED_NUL.search(body):
        raise InputError("invalid JSON", ["NUL characters (\\u0000) are not allowed"], status=422)


def refuse_invalid_utf8(body: bytes) -> None:
    if body.isascii():
        return
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("invalid JSON", ["the body must be UTF-8"], status=422) from None
