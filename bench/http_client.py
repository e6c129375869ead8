"""Loopback benchmark of the delivery HTTP client: CPU µs per POST and requests/s.

A minimal keep-alive HTTP sink (uvloop + httptools, answering 200) runs in its own process on
127.0.0.1; each client run is a fresh process that sends a warm-up, then `--requests` POSTs of a
typical webhook (≈300-byte JSON body, seven headers) at `--concurrency`, bounded by
`--seconds`. CPU is the client process's own user+system time, so the sink's work is excluded.

    .venv/bin/python bench/http_client.py                 # 3 rounds, medians, both clients
    .venv/bin/python bench/http_client.py --rounds 5 --requests 50000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httptools
import uvloop

BODY = json.dumps({"id": "evt_123", "type": "order.created", "data": {"n": "x" * 200}}).encode()
HEADERS = [
    ("Content-Type", "application/json"),
    ("X-Outpost-Event-Id", "evt_123"),
    ("X-Outpost-Topic", "order.created"),
    ("X-Outpost-Timestamp", "2024-06-01T08:23:36Z"),
    ("X-Outpost-Source", "bench"),
    ("X-Outpost-Signature", "v0=" + "ab" * 32),
]
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nOK"
WARMUP = 500
Post = Callable[[str], Awaitable[None]]


class _Sink(asyncio.Protocol):
    """Answers every request with 200 as soon as its body has been read."""

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.transport.write(RESPONSE)


async def _serve_sink() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Sink, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # runs until the parent closes stdin


async def _pycurl_post() -> tuple[Post, Callable[[], Awaitable[None]]]:
    from waypost.transport.http import HttpClient

    client = HttpClient(user_agent="Outpost/bench", max_connections=100)

    async def post(url: str) -> None:
        response = await client.post(url, HEADERS, BODY, timeout=5.0, max_body=131072)
        assert response.status == 200

    return post, client.aclose


async def _aiohttp_post() -> tuple[Post, Callable[[], Awaitable[None]]]:
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100),
        headers={"User-Agent": "Outpost/bench"},
        timeout=aiohttp.ClientTimeout(total=5.0),
    )

    async def post(url: str) -> None:
        async with session.post(url, data=BODY, headers=HEADERS) as response:
            await response.content.read(131073)
            assert response.status == 200

    return post, session.close


async def _measure(
    client: str, port: int, requests: int, concurrency: int, seconds: float
) -> dict[str, float]:
    post, close = await (_pycurl_post() if client == "pycurl" else _aiohttp_post())
    url = f"http://127.0.0.1:{port}/webhook"
    await asyncio.gather(*(post(url) for _ in range(WARMUP)))
    remaining = requests
    deadline = time.monotonic() + seconds

    async def worker() -> int:
        nonlocal remaining
        done = 0
        while remaining > 0 and time.monotonic() < deadline:
            remaining -= 1
            await post(url)
            done += 1
        return done

    cpu, wall = time.process_time(), time.perf_counter()
    done = sum(await asyncio.gather(*(worker() for _ in range(concurrency))))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await close()
    return {"requests": done, "cpu_us_per_post": cpu / done * 1e6, "req_per_s": done / wall}


def _run_client(args: argparse.Namespace, client: str, loop: str, port: int) -> dict[str, float]:
    command = [
        sys.executable,
        __file__,
        "--client",
        client,
        "--loop",
        loop,
        "--port",
        str(port),
        "--requests",
        str(args.requests),
        "--concurrency",
        str(args.concurrency),
        "--seconds",
        str(args.seconds),
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(output)
    return result


def _report(args: argparse.Namespace) -> None:
    sink = subprocess.Popen(
        [sys.executable, __file__, "--sink"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sink.stdout is not None and sink.stdin is not None
    port = int(sink.stdout.readline())
    cases = [
        ("pycurl", "uvloop"),
        ("pycurl", "asyncio"),
        ("aiohttp", "uvloop"),
        ("aiohttp", "asyncio"),
    ]
    try:
        rows = {
            case: [_run_client(args, *case, port) for _ in range(args.rounds)] for case in cases
        }
    finally:
        sink.stdin.close()
        sink.wait(timeout=10)
    print(
        f"python {sys.version.split()[0]} ({sys.executable}), {args.requests} POSTs/round, "
        f"concurrency {args.concurrency}, medians of {args.rounds} rounds"
    )
    for (client, loop), results in rows.items():
        cpu = statistics.median(r["cpu_us_per_post"] for r in results)
        rps = statistics.median(r["req_per_s"] for r in results)
        print(f"  {client:8} {loop:8} {cpu:8.1f} µs CPU/POST {rps:10.0f} req/s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=30.0, help="time bound per run")
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=["pycurl", "aiohttp"], help=argparse.SUPPRESS)
    parser.add_argument(
        "--loop", choices=["uvloop", "asyncio"], default="uvloop", help=argparse.SUPPRESS
    )
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        uvloop.run(_serve_sink())
    elif args.client:
        run = uvloop.run if args.loop == "uvloop" else asyncio.run
        measured = _measure(args.client, args.port, args.requests, args.concurrency, args.seconds)
        print(json.dumps(run(measured)))
    else:
        _report(args)


if __name__ == "__main__":
    main()
