"""The HTTP server around publish: uvicorn (as shipped) against granian, the same app in each.

PostgreSQL mode, the API service alone (no delivery: only the HTTP layer differs), wrk with 32
connections at saturation, alternating servers each round; prints req/s and the API process's
CPU per request. granian is not a dependency of the project: it is installed into a folder of
its own (`--granian-dir`, default .bench-cache/granian) the first time, from the package index.

    .venv/bin/python bench/asgi_servers.py --rounds 3

granian runs `bench.asgi_servers:app` (below): the app `waypost serve --service api` builds, with
the system opened and closed in the ASGI lifespan, where the server runner does it for uvicorn.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from endtoend import (  # noqa: E402  (bench/ is not a package)
    API_KEY,
    PG_ADMIN,
    free_port,
    http,
    proc_stats,
    store_for,
    wait_http,
    with_descendants,
)

SERVERS = ("uvicorn", "granian")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


def granian_app() -> Callable[[Scope, Callable[[], Awaitable[Message]], Any], Awaitable[None]]:
    from waypost import bootstrap
    from waypost import config as settings
    from waypost.runner import server

    config, _ = settings.with_generated_secrets(settings.load(dict(os.environ), None, []))
    system = server.build(config).system
    inner = bootstrap.http_app(system)

    async def app(
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await system.backend.open()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await server.close(system)
            await send({"type": "lifespan.shutdown.complete"})
            return
        await inner(scope, receive, send)

    return app


if os.environ.get("WAYPOST_BENCH_GRANIAN") == "1":  # imported by granian
    app = granian_app()


def install_granian(folder: Path) -> None:
    if not (folder / "granian").is_dir():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--target", str(folder), "granian"],
            check=True,
        )


def one_round(server: str, args: argparse.Namespace) -> tuple[float, float]:
    """(requests/s, CPU µs per request of the API's processes) for one server."""
    port = free_port()
    with store_for("postgres") as store:
        env = {
            **os.environ,
            "SERVICE": "api",
            "PORT": str(port),
            "POSTGRES_URL": store.url(),
            "OUTPOST_DATA_DIR": store.data_dir,
            "API_KEY": API_KEY,
            "API_JWT_SECRET": "bench",
            "AES_ENCRYPTION_SECRET": "bench",
            "DESTINATIONS_ALLOWED_NETWORKS": "127.0.0.0/8",
            "LOG_LEVEL": "warn",
        }
        if server == "uvicorn":
            command = [sys.executable, "-m", "waypost", "serve", "--service", "api"]
        else:
            env |= {
                "WAYPOST_BENCH_GRANIAN": "1",
                "PYTHONPATH": os.pathsep.join([str(ROOT), str(args.granian_dir)]),
            }
            command = [
                *(sys.executable, "-m", "granian", "--interface", "asgi", "--workers", "1"),
                *("--runtime-threads", "1", "--loop", "uvloop", "--no-ws"),
                *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
                "bench.asgi_servers:app",
            ]
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(base + "/healthz", time.monotonic() + 60)
            http("PUT", base + "/api/v1/tenants/t1")
            destination = {"type": "webhook", "topics": "*", "config": {"url": base + "/x"}}
            http("POST", base + "/api/v1/tenants/t1/destinations", destination)
            wrk = ["wrk", "-t1", "-c32", "-s", str(HERE / "wrk_publish.lua")]
            subprocess.run([*wrk, "-d2s", base + "/api/v1/publish"], capture_output=True)  # warm
            pids = with_descendants([process.pid])
            before = sum(proc_stats(pid)[0] for pid in pids)
            out = subprocess.run(
                [*wrk, f"-d{args.seconds}s", base + "/api/v1/publish"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            cpu = sum(proc_stats(pid)[0] for pid in pids) - before
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
    if "Non-2xx" in out:
        raise RuntimeError(f"{server}: publishes refused:\n{out}")
    rate = float(next(line for line in out.splitlines() if "Requests/sec" in line).split()[1])
    return rate, cpu * 1e6 / (rate * args.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--granian-dir", type=Path, default=ROOT / ".bench-cache" / "granian")
    args = parser.parse_args()
    install_granian(args.granian_dir)
    results: dict[str, list[tuple[float, float]]] = {s: [] for s in SERVERS}
    for n in range(args.rounds):
        for server in SERVERS:
            rate, cpu = one_round(server, args)
            results[server].append((rate, cpu))
            print(f"round {n + 1} {server}: {rate:,.0f} publishes/s, {cpu:.0f} µs CPU each")
    print(f"\nPostgreSQL at {PG_ADMIN.rsplit('@', 1)[-1]}; medians of {args.rounds} rounds:")
    for server, rows in results.items():
        rates = sorted(r for r, _ in rows)
        cpus = sorted(c for _, c in rows)
        print(
            f"  {server}: {rates[len(rates) // 2]:,.0f} publishes/s, {cpus[len(cpus) // 2]:.0f} µs"
        )


if __name__ == "__main__":
    main()
