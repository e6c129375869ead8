"""The benchmark's load generator: `POST /api/v1/publish` over raw keep-alive connections.

A minimal HTTP/1.1 client on asyncio protocols (one request in flight per connection), so that
the generator costs far less CPU than the server it measures; `endtoend.py` measures its own
ceiling against the sink in the same run. Two ways to drive it:

- `saturate`: every connection sends its next request as soon as the last one is answered.
- `fixed_rate`: open loop; request i is due at start + i / rate, and its latency counts from that
  due time, so a stalled server shows up in the tail instead of slowing the offered load.

Each event's data carries `"sent": <due time in ns>` for the sink's publish → delivery latency.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

PAD = "x" * 200  # event data of a few hundred bytes, like a typical webhook


@dataclass
class LoadResult:
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    elapsed_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)

    def quantile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000 if ordered else 0.0


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: Any = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        length = 0
        at = head.find(b"content-length:")
        if at >= 0:
            stop = head.find(b"\r\n", at)
            length = int(head[at + 15 : stop if stop >= 0 else len(head)])
        if len(self.buffer) < end + 4 + length:
            return
        status = int(self.buffer[9:12])
        del self.buffer[: end + 4 + length]
        if self.waiter and not self.waiter.done():
            self.waiter.set_result(status)

    async def request(self, payload: bytes) -> int:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return await self.waiter


def request_bytes(path: str, body: bytes, api_key: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {api_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def publish_body(tenant: str, n: int, sent_ns: int) -> bytes:
    return (
        f'{{"tenant_id":"{tenant}","topic":"order.created",'
        f'"data":{{"n":{n},"sent":{sent_ns},"text":"{PAD}"}}}}'
    ).encode()


Payload = Callable[[int, int], bytes]  # (n, due time ns) -> request bytes


def publisher(path: str, tenant: str, api_key: str) -> Payload:
    return lambda n, sent_ns: request_bytes(path, publish_body(tenant, n, sent_ns), api_key)


async def _connections(port: int, count: int) -> list[_Connection]:
    loop = asyncio.get_running_loop()
    opened = [await loop.create_connection(_Connection, "127.0.0.1", port) for _ in range(count)]
    return [protocol for _, protocol in opened]


async def saturate(port: int, payload: Payload, total: int, connections: int) -> LoadResult:
    result = LoadResult()
    conns = await _connections(port, connections)
    numbers: Iterator[int] = iter(range(total))

    async def drive(conn: _Connection) -> None:
        for n in numbers:
            started = time.perf_counter()
            status = await conn.request(payload(n, time.time_ns()))
            result.latencies_s.append(time.perf_counter() - started)
            result.sent += 1
            if 200 <= status < 300:
                result.accepted += 1
            else:
                result.rejected += 1

    began = time.perf_counter()
    await asyncio.gather(*(drive(c) for c in conns))
    result.elapsed_s = time.perf_counter() - began
    for conn in conns:
        conn.transport.close()
    return result


async def fixed_rate(
    port: int, payload: Payload, rate: float, seconds: float, connections: int
) -> LoadResult:
    result = LoadResult()
    conns = await _connections(port, connections)
    total = int(rate * seconds)
    numbers = itertools.count()
    began_perf = time.perf_counter()
    began_wall_ns = time.time_ns()

    async def drive(conn: _Connection) -> None:
        for n in numbers:
            if n >= total:
                return
            due = n / rate
            delay = due - (time.perf_counter() - began_perf)
            if delay > 0:
                await asyncio.sleep(delay)
            status = await conn.request(payload(n, began_wall_ns + int(due * 1e9)))
            result.latencies_s.append(time.perf_counter() - began_perf - due)
            result.sent += 1
            if 200 <= status < 300:
                result.accepted += 1
            else:
                result.rejected += 1

    await asyncio.gather(*(drive(c) for c in conns))
    result.elapsed_s = time.perf_counter() - began_perf
    for conn in conns:
        conn.transport.close()
    return result
