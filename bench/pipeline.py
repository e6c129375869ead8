"""End-to-end throughput on loopback: publish → durable accept → signed webhook → attempt recorded.

Starts a counting HTTP sink (uvloop + httptools, answering 200) and `outpost serve` (embedded
SQLite) as separate processes on 127.0.0.1, publishes `--events` events through
`POST /api/v1/publish` from `--concurrency` keep-alive connections, and waits until the sink has
seen every event and every attempt is recorded. Bounded by `--seconds`.

Reports, per round and as medians: events/s accepted (202s over the publishing window), events/s
delivered end to end (first publish to last delivery), publish latency p50/p99, and the server's
CPU seconds and peak RSS. The sink and the load generator share the machine with the server, so
the figures are a floor, not a ceiling.

    .venv/bin/python bench/pipeline.py                  # 3 rounds of 5,000 events
    .venv/bin/python bench/pipeline.py --events 20000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httptools
import uvloop

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"
API_KEY = "bench-key"


class _Sink(asyncio.Protocol):
    count = 0

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.url = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_message_complete(self) -> None:
        if self.url == b"/count":
            body = str(_Sink.count).encode()
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            self.transport.write(head + body)
            return
        _Sink.count += 1
        self.transport.write(RESPONSE)


async def _sink(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Sink, "127.0.0.1", port, backlog=2048)
    await server.serve_forever()


def _create_database(admin_url: str) -> tuple[str, str]:
    name = f"outpost_bench_{os.getpid()}_{int(time.time() * 1000)}"
    subprocess.run(["psql", admin_url, "-qc", f'CREATE DATABASE "{name}"'], check=True)
    return name, admin_url.rpartition("/")[0] + "/" + name


def _drop_database(admin_url: str, name: str) -> None:
    subprocess.run(["psql", admin_url, "-qc", f'DROP DATABASE "{name}" WITH (FORCE)'], check=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _proc_stats(pid: int) -> tuple[float, int]:
    """CPU seconds (user+system, children excluded) and peak RSS in bytes, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    return cpu, peak


async def _wait_http(url: str, deadline: float) -> None:
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(url)


async def _count(session: aiohttp.ClientSession, sink: str) -> int:
    async with session.get(sink + "/count") as response:
        return int(await response.text())


async def _round(args: argparse.Namespace) -> dict[str, float]:
    sink_port, api_port = _free_port(), _free_port()
    sink = subprocess.Popen([sys.executable, __file__, "--sink", str(sink_port)])
    data_dir = tempfile.mkdtemp(prefix="outpost-bench-")
    database = _create_database(args.postgres) if args.postgres else None
    env = {
        **os.environ,
        "PORT": str(api_port),
        "OUTPOST_DATA_DIR": data_dir,
        "API_KEY": API_KEY,
        "API_JWT_SECRET": "bench",
        "DESTINATIONS_ALLOWED_NETWORKS": "127.0.0.0/8",
        "LOG_LEVEL": "warn",
        **({"POSTGRES_URL": database[1], "AES_ENCRYPTION_SECRET": "bench"} if database else {}),
    }
    command = [sys.executable, "-m", "outpost", "serve"]
    if args.profile:  # py-spy samples the server only; the raw output feeds flamegraph tools
        command = ["py-spy", "record", "-r", "500", "-f", "raw", "-o", args.profile, "--", *command]
    server = subprocess.Popen(command, env=env, stdout=None if args.verbose else subprocess.DEVNULL)
    base = f"http://127.0.0.1:{api_port}/api/v1"
    sink_url = f"http://127.0.0.1:{sink_port}"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    deadline = time.monotonic() + args.seconds
    try:
        await _wait_http(base.replace("/api/v1", "/healthz"), deadline)
        await _wait_http(sink_url + "/count", deadline)
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
            await session.put(f"{base}/tenants/bench")
            await session.post(
                f"{base}/tenants/bench/destinations",
                json={"type": "webhook", "topics": ["*"], "config": {"url": sink_url + "/hook"}},
            )
            cpu_before, _ = _proc_stats(server.pid)
            latencies: list[float] = []
            pending = iter(range(args.events))

            async def publisher() -> None:
                for n in pending:
                    body = {
                        "tenant_id": "bench",
                        "topic": "order.created",
                        "data": {"n": n, "text": "x" * 200},
                    }
                    started = time.perf_counter()
                    async with session.post(f"{base}/publish", json=body) as response:
                        assert response.status == 202, await response.text()
                    latencies.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(publisher() for _ in range(args.concurrency)))
            published = time.perf_counter() - started
            while await _count(session, sink_url) < args.events:
                if time.monotonic() > deadline:
                    raise TimeoutError("deliveries did not drain in time")
                await asyncio.sleep(0.01)
            delivered = time.perf_counter() - started
            cpu_after, peak_rss = _proc_stats(server.pid)
            latencies.sort()
            return {
                "accepted_per_s": args.events / published,
                "delivered_per_s": args.events / delivered,
                "publish_p50_ms": latencies[len(latencies) // 2] * 1000,
                "publish_p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
                "server_cpu_s": cpu_after - cpu_before,
                "server_peak_rss_mb": peak_rss / 2**20,
            }
    finally:
        server.send_signal(signal.SIGINT if args.profile else signal.SIGTERM)
        sink.terminate()
        server.wait(30)
        sink.wait(30)
        if database:
            _drop_database(args.postgres, database[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=120, help="bound on one round")
    parser.add_argument(
        "--postgres",
        nargs="?",
        const="postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL mode: a fresh database is created through this admin URL",
    )
    parser.add_argument("--verbose", action="store_true", help="show the server's output")
    parser.add_argument("--profile", help="record the server with py-spy into this file")
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        uvloop.run(_sink(args.sink))
        return
    rounds = [uvloop.run(_round(args)) for _ in range(args.rounds)]
    for n, result in enumerate(rounds, 1):
        print(f"round {n}: " + json.dumps({k: round(v, 2) for k, v in result.items()}))
    medians = {k: round(statistics.median(r[k] for r in rounds), 2) for k in rounds[0]}
    print("median: " + json.dumps(medians))
    print(f"python: {sys.executable} ({sys.version.split()[0]}), cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
