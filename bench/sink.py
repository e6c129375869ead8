"""The benchmark's webhook sink: answers fast, counts what arrived, and times publish → delivery.

One process, uvloop + httptools. Paths:
- `/ok/<anything>`: 200.
- `/flaky/<anything>`: 500 for every fifth request (20 %), else 200.
- `/hang/<anything>`: never answered (the server's delivery timeout ends the request).
- `GET /stats`: JSON counters; `GET /samples`: `[arrival ns, latency ns]` of each first
  successful delivery; `POST /reset` clears them.

A delivery counts as delivered once per (path, event id) answered 200; later ones are duplicates.
The event's data carries `"sent": <publish time, ns since the epoch>`, so the sink records
arrival − sent for each first successful delivery (same machine, same clock).

    python bench/sink.py PORT
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from typing import Any

import httptools
import uvloop

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"
FAIL = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nFAIL"
SENT = re.compile(rb'"sent":(\d+)')
EVENT_ID = b"x-outpost-event-id"


class Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.failed = 0
        self.duplicates = 0
        self.seen: set[bytes] = set()
        self.latencies_ns: list[int] = []
        self.arrivals_ns: list[int] = []
        self.hung = 0
        self.first_ns = 0
        self.last_ns = 0

    def report(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ns)

        def quantile(q: float) -> float | None:
            if not ordered:
                return None
            return ordered[min(len(ordered) - 1, int(len(ordered) * q))] / 1e6

        return {
            "requests": self.requests,
            "failed": self.failed,
            "hung": self.hung,
            "delivered": len(self.seen),
            "duplicates": self.duplicates,
            "latency_p50_ms": quantile(0.50),
            "latency_p99_ms": quantile(0.99),
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
        }


STATS = Stats()


class SinkProtocol(asyncio.Protocol):
    __slots__ = ("body", "event_id", "header", "parser", "transport", "url")

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.url = b""
        self.header = b""
        self.event_id = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url, self.event_id, self.body = b"", b"", []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == EVENT_ID:
            self.event_id = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        global STATS
        url = self.url
        if url == b"/stats":
            self._answer(json.dumps(STATS.report()).encode())
            return
        if url == b"/samples":
            pairs = list(zip(STATS.arrivals_ns, STATS.latencies_ns, strict=True))
            self._answer(json.dumps(pairs).encode())
            return
        if url == b"/reset":
            STATS = Stats()
            self._answer(b"{}")
            return
        stats = STATS
        now = time.time_ns()
        stats.requests += 1
        if url.startswith(b"/hang"):
            stats.hung += 1
            return
        if url.startswith(b"/flaky") and stats.requests % 5 == 0:
            stats.failed += 1
            self.transport.write(FAIL)
            return
        self.transport.write(OK)
        key = url + b"|" + self.event_id
        if key in stats.seen:
            stats.duplicates += 1
            return
        stats.seen.add(key)
        stats.first_ns = stats.first_ns or now
        stats.last_ns = now
        sent = SENT.search(b"".join(self.body))
        if sent:
            stats.latencies_ns.append(now - int(sent.group(1)))
            stats.arrivals_ns.append(now)

    def _answer(self, body: bytes) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
        self.transport.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(SinkProtocol, "127.0.0.1", port, backlog=4096)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
