"""The end-to-end benchmark: publish → durable accept → signed webhook → attempt recorded.

Everything runs on 127.0.0.1 of this machine: the sink (bench/sink.py), the server in the chosen
mode, and the load generator (bench/loadgen.py, in this process). Each round starts fresh
processes and a fresh store, runs one scenario, waits until every accepted event is delivered
(nothing left behind means nothing lost), counts the attempts in the store, and stops.

Scenarios:
- `saturation`: publish `--events` as fast as 64 connections allow.
- `rate1000`: 1,000 events/s offered for `--seconds-at-rate` seconds (latency at a fixed load).
- `fanout10`: each event to 10 destinations.
- `retries20`: the sink fails 20 % of requests; failed deliveries retry after 1 s.
- `noisy` (not in the default set): 50 tenants × 1 webhook destination, 500 events/s spread
  evenly for `--noisy-seconds`; once with all 50 healthy (the baseline), then with 5 whose
  endpoint never answers (each request ends at the delivery timeout). Reports the healthy
  destinations' delivery latency and delivered/s per 10 s, and what the hanging ones got.

The loopback limit (wrk straight at the sink, and this generator straight at the sink) is
measured in the same run, and throughputs are also given as a ratio to wrk's figure, because
absolute numbers drift on a shared machine.

    .venv/bin/python bench/endtoend.py --mode sqlite
    .venv/bin/python bench/endtoend.py --mode postgres --scenarios saturation,rate1000
    .venv/bin/python bench/endtoend.py --mode all --rounds 3 --json /tmp/bench.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).parent))
import loadgen

HERE = Path(__file__).parent
API_KEY = "bench-key"
TENANT = "bench"
PG_ADMIN = os.environ.get("OUTPOST_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
RABBIT_URL = os.environ.get("OUTPOST_BENCH_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/")
MODES = ("sqlite", "postgres", "postgres+rabbitmq")
SCENARIOS = ("saturation", "rate1000", "fanout10", "retries20")
NOISY_TENANTS, NOISY_HANGING, NOISY_RATE, BUCKET_S = 50, 5, 500, 10
CONNECTIONS = 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def proc_stats(pid: int) -> tuple[float, int]:
    """CPU seconds (user + system) and peak RSS in bytes of one process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    peak = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) * 1024
    return cpu, peak


def with_descendants(pids: list[int]) -> list[int]:
    """The processes and every process they started (embedded mode's delivery process; the
    server under py-spy when profiling)."""
    found, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        found.append(pid)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return found


def role(pid: int) -> str:
    """What a server process does, for the CPU split: `api` (the embedded server too, which also
    owns the database), `delivery`, or `other` (py-spy, when profiling)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "other"
    if b"waypost.runner.delivery_process" in command or b"delivery\0" in command:
        return "delivery"
    return "api" if b"waypost\0serve" in command else "other"


def cpu_by_role(pids: list[int]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            totals[role(pid)] = totals.get(role(pid), 0.0) + proc_stats(pid)[0]
    return totals


def postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL process now alive (backends of this round's server
    included; they live as long as its pool)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def http(method: str, url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {API_KEY}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read()
    return json.loads(text) if text else None


def wait_http(url: str, deadline: float) -> None:
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(url) from None
            time.sleep(0.05)


@dataclass
class Store:
    """Where the round's server keeps its data, and how to count attempts there."""

    data_dir: str
    pg_name: str = ""

    def url(self) -> str:
        return PG_ADMIN.rpartition("/")[0] + "/" + self.pg_name

    def count_attempts(self) -> int:
        if self.pg_name:
            out = subprocess.run(
                ["psql", self.url(), "-tAc", "SELECT count(*) FROM attempts"],
                check=True,
                capture_output=True,
                text=True,
            )
            return int(out.stdout.strip())
        for path in Path(self.data_dir).iterdir():
            if path.suffix in (".db", ".sqlite", ".sqlite3"):
                with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                    return int(db.execute("SELECT count(*) FROM attempts").fetchone()[0])
        raise FileNotFoundError(f"no SQLite database in {self.data_dir}")


@contextlib.contextmanager
def store_for(mode: str) -> Iterator[Store]:
    data_dir = tempfile.mkdtemp(prefix="outpost-bench-")
    store = Store(data_dir)
    if mode != "sqlite":
        store.pg_name = f"outpost_bench_{os.getpid()}_{time.time_ns()}"
        subprocess.run(["psql", PG_ADMIN, "-qc", f'CREATE DATABASE "{store.pg_name}"'], check=True)
    try:
        yield store
    finally:
        if store.pg_name:
            subprocess.run(
                ["psql", PG_ADMIN, "-qc", f'DROP DATABASE "{store.pg_name}" WITH (FORCE)'],
                check=False,
            )
        shutil.rmtree(data_dir, ignore_errors=True)


def server_env(mode: str, store: Store, port: int, scenario: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PORT": str(port),
        "OUTPOST_DATA_DIR": store.data_dir,
        "API_KEY": API_KEY,
        "API_JWT_SECRET": "bench",
        "DESTINATIONS_ALLOWED_NETWORKS": "127.0.0.0/8",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "warn"),
        "RETRY_SCHEDULE": "1,1,1,1,1,1,1,1,1,1",
        "RETRY_POLL_BACKOFF_MS": "50",
    }
    if mode != "sqlite":
        env |= {"POSTGRES_URL": store.url(), "AES_ENCRYPTION_SECRET": "bench"}
    if mode == "postgres+rabbitmq":
        name = f"bench-{os.getpid()}-{time.time_ns()}"
        env |= {
            "RABBITMQ_SERVER_URL": RABBIT_URL,
            "RABBITMQ_EXCHANGE": f"{name}-x",
            "RABBITMQ_DELIVERY_QUEUE": f"{name}-q",
        }
    return env


def start_servers(
    mode: str, env: dict[str, str], profile: str | None, delivery_processes: int = 1
) -> list[subprocess.Popen[bytes]]:
    """Embedded mode is one process; the PostgreSQL modes run API and delivery apart, one per
    core, as a deployment would (`delivery_processes`: how many delivery services). With
    `profile`, py-spy records each process (raw stacks, one file per service) — CPU/event
    figures from such a run are not comparable."""
    base = [sys.executable, "-m", "waypost", "serve"]
    services = (
        [("all", env)]
        if mode == "sqlite"
        else [
            ("api", env),
            *(("delivery", {**env, "PORT": str(free_port())}) for _ in range(delivery_processes)),
        ]
    )
    started = []
    for n, (service, service_env) in enumerate(services):
        command = [*base, "--service", service]
        if profile:
            output = f"{profile}-{service}{n if n > 1 else ''}.txt"
            command = [
                shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy",
                "record",
                "--gil",
                "--subprocesses",
                "-r",
                "200",
                "-f",
                "raw",
                "-o",
                output,
                "--",
                *command,
            ]
        started.append(subprocess.Popen(command, env=service_env, stdout=subprocess.DEVNULL))
    return started


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:  # SIGINT: py-spy, when profiling, then writes its file
            process.send_signal(signal.SIGINT)
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def sink_stats(sink_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(sink_url + "/stats", timeout=10) as response:
        stats: dict[str, Any] = json.loads(response.read())
        return stats


def run_round(mode: str, scenario: str, args: argparse.Namespace) -> dict[str, float]:
    sink_port, api_port = free_port(), free_port()
    sink = subprocess.Popen([sys.executable, str(HERE / "sink.py"), str(sink_port)])
    sink_url = f"http://127.0.0.1:{sink_port}"
    deadline = time.monotonic() + args.timeout
    with store_for(mode) as store:
        profile = f"{args.profile}/{mode}-{scenario}" if args.profile else None
        servers = start_servers(
            mode, server_env(mode, store, api_port, scenario), profile, args.delivery_processes
        )
        try:
            base = f"http://127.0.0.1:{api_port}"
            wait_http(base + "/healthz", deadline)
            wait_http(sink_url + "/stats", deadline)
            fanout = 10 if scenario == "fanout10" else 1
            path = "/flaky" if scenario == "retries20" else "/ok"
            http("PUT", f"{base}/api/v1/tenants/{TENANT}")
            for k in range(fanout):
                destination = {
                    "type": "webhook",
                    "topics": ["*"],
                    "config": {"url": f"{sink_url}{path}/{k}"},
                }
                http("POST", f"{base}/api/v1/tenants/{TENANT}/destinations", destination)
            cpu_before = sum(proc_stats(p)[0] for p in with_descendants([s.pid for s in servers]))
            roles_before = cpu_by_role(with_descendants([s.pid for s in servers]))
            pg_before = postgres_cpu()
            payload = loadgen.publisher("/api/v1/publish", TENANT, API_KEY)
            if scenario == "rate1000":
                load = uvloop.run(
                    loadgen.fixed_rate(api_port, payload, 1000, args.seconds_at_rate, CONNECTIONS)
                )
            else:
                events = args.events // fanout
                load = uvloop.run(loadgen.saturate(api_port, payload, events, CONNECTIONS))
            expected = load.accepted * fanout
            while (stats := sink_stats(sink_url))["delivered"] < expected:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{stats['delivered']} of {expected} delivered in time")
                time.sleep(0.05)
            drained_at = time.time_ns()
            attempts = store.count_attempts()
            while attempts < stats["requests"] and time.monotonic() < deadline:
                time.sleep(0.05)  # the last attempts may still be on their way to the store
                attempts = store.count_attempts()
            pg_after = postgres_cpu()
            roles_after = cpu_by_role(with_descendants([s.pid for s in servers]))
            cpu_after, peak = 0.0, 0
            for pid in with_descendants([s.pid for s in servers]):
                cpu, rss = proc_stats(pid)
                cpu_after, peak = cpu_after + cpu, peak + rss
        finally:
            stop(servers)
            sink.terminate()
            sink.wait(30)
    window_s = (drained_at - stats["first_ns"]) / 1e9 if stats["first_ns"] else float("nan")
    span_s = max(load.elapsed_s, window_s)
    return {
        "accepted_per_s": load.accepted / load.elapsed_s,
        "delivered_per_s": stats["delivered"] / span_s,
        "attempts_per_s": attempts / span_s,
        "rejected": load.rejected,
        "lost": expected - stats["delivered"],
        "duplicates": stats["duplicates"],
        "publish_p50_ms": load.quantile_ms(0.50),
        "publish_p99_ms": load.quantile_ms(0.99),
        "delivery_p50_ms": stats["latency_p50_ms"] or 0.0,
        "delivery_p99_ms": stats["latency_p99_ms"] or 0.0,
        "server_cpu_us_per_event": (cpu_after - cpu_before) / max(load.accepted, 1) * 1e6,
        "api_cpu_us_per_event": per_event(roles_after, roles_before, "api", load.accepted),
        "delivery_cpu_us_per_event": per_event(
            roles_after, roles_before, "delivery", load.accepted
        ),
        "postgres_cpu_us_per_event": (pg_after - pg_before) / max(load.accepted, 1) * 1e6
        if mode != "sqlite"
        else 0.0,
        "server_peak_rss_mb": peak / 2**20,
    }


def sql_count(store: Store, query: str) -> int:
    if store.pg_name:
        out = subprocess.run(
            ["psql", store.url(), "-tAc", query], check=True, capture_output=True, text=True
        )
        return int(out.stdout.strip())
    path = next(p for p in Path(store.data_dir).iterdir() if p.suffix == ".db")
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return int(db.execute(query).fetchone()[0])


def noisy_round(mode: str, hanging: int, args: argparse.Namespace) -> dict[str, Any]:
    """One `noisy` round: NOISY_TENANTS tenants, the first `hanging` of them never answered."""
    sink_port, api_port = free_port(), free_port()
    sink = subprocess.Popen([sys.executable, str(HERE / "sink.py"), str(sink_port)])
    sink_url = f"http://127.0.0.1:{sink_port}"
    deadline = time.monotonic() + args.timeout + args.noisy_seconds
    tenants = [f"t{k:02d}" for k in range(NOISY_TENANTS)]
    with store_for(mode) as store:
        servers = start_servers(mode, server_env(mode, store, api_port, "noisy"), None)
        try:
            base = f"http://127.0.0.1:{api_port}"
            wait_http(base + "/healthz", deadline)
            wait_http(sink_url + "/stats", deadline)
            for k, tenant in enumerate(tenants):
                path = "hang" if k < hanging else "ok"
                http("PUT", f"{base}/api/v1/tenants/{tenant}")
                destination = {
                    "type": "webhook",
                    "topics": ["*"],
                    "config": {"url": f"{sink_url}/{path}/{k}"},
                }
                http("POST", f"{base}/api/v1/tenants/{tenant}/destinations", destination)

            def payload(n: int, sent_ns: int) -> bytes:
                body = loadgen.publish_body(tenants[n % NOISY_TENANTS], n, sent_ns)
                return loadgen.request_bytes("/api/v1/publish", body, API_KEY)

            began_ns = time.time_ns()
            load = uvloop.run(
                loadgen.fixed_rate(api_port, payload, NOISY_RATE, args.noisy_seconds, CONNECTIONS)
            )
            # Event n goes to tenant n % 50: count the healthy ones among those sent.
            healthy = sum(1 for n in range(load.sent) if n % NOISY_TENANTS >= hanging)
            expected = healthy - load.rejected  # rejections are not expected (reported below)
            while (stats := sink_stats(sink_url))["delivered"] < expected:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            with urllib.request.urlopen(sink_url + "/samples", timeout=30) as response:
                samples: list[list[int]] = json.loads(response.read())
            bad = ", ".join(f"'{k}'" for k in tenants[:hanging]) or "''"
            hanging_attempts = sql_count(
                store, f"SELECT count(*) FROM attempts WHERE tenant_id IN ({bad})"
            )
            # Every event of a hanging destination has had an attempt or still has a task.
            covered = sql_count(
                store,
                "SELECT count(*) FROM (SELECT event_id FROM attempts WHERE tenant_id IN "
                f"({bad}) UNION SELECT event_id FROM tasks WHERE tenant_id IN ({bad})) AS x",
            )
            first_attempts = sql_count(
                store,
                f"SELECT count(*) FROM attempts WHERE tenant_id IN ({bad}) AND attempt_number = 1",
            )
            wrong_numbers = sql_count(  # attempt n recorded without attempt n - 1 before it
                store,
                "SELECT count(*) FROM attempts a WHERE a.attempt_number > 1 AND NOT EXISTS "
                "(SELECT 1 FROM attempts b WHERE b.event_id = a.event_id AND "
                "b.destination_id = a.destination_id AND b.attempt_number = a.attempt_number - 1)",
            )
        finally:
            stop(servers)
            sink.terminate()
            sink.wait(30)
    latencies = sorted(latency / 1e6 for _, latency in samples)
    # Per 10 s from the start of the load, on past its end while a backlog drains.
    offsets = [max(0, int((arrived - began_ns) / 1e9 // BUCKET_S)) for arrived, _ in samples]
    buckets = [0] * (max(offsets, default=0) + 1)
    for at in offsets:
        buckets[at] += 1

    def quantile(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * q))] if latencies else 0.0

    return {
        "hanging": hanging,
        "accepted": load.accepted,
        "rejected": load.rejected,
        "healthy_expected": expected,
        "healthy_delivered": stats["delivered"],
        "lost": expected - stats["delivered"],
        "duplicates": stats["duplicates"],
        "p50_ms": quantile(0.50),
        "p99_ms": quantile(0.99),
        "max_ms": latencies[-1] if latencies else 0.0,
        "per_s_by_10s": [round(count / BUCKET_S) for count in buckets],
        "hanging_events": load.sent - healthy,
        "hanging_requests": stats["hung"],
        "hanging_attempts": hanging_attempts,
        "hanging_first_attempts": first_attempts,
        "hanging_events_covered": covered,
        "attempt_number_gaps": wrong_numbers,
    }


def noisy_table(results: dict[str, dict[str, Any]]) -> str:
    head = (
        "| mode · run | healthy p50 / p99 / max | healthy delivered/s per 10 s | lost "
        "| hanging: events · requests · attempts (first) · covered |\n|---|---|---|---|---|"
    )
    rows = [
        f"| {name} | {r['p50_ms']:,.1f} / {r['p99_ms']:,.1f} / {r['max_ms']:,.0f} ms "
        f"| {' · '.join(str(x) for x in r['per_s_by_10s'])} | {r['lost']} "
        f"| {r['hanging_events']} · {r['hanging_requests']} · {r['hanging_attempts']} "
        f"({r['hanging_first_attempts']}) · {r['hanging_events_covered']} |"
        for name, r in results.items()
    ]
    return "\n".join([head, *rows])


def per_event(after: dict[str, float], before: dict[str, float], key: str, events: int) -> float:
    return (after.get(key, 0.0) - before.get(key, 0.0)) / max(events, 1) * 1e6


def loopback_limit(seconds: float) -> dict[str, float]:
    """Requests/s straight at the sink: wrk (the machine's loopback ceiling for this sink) and
    this load generator (so we know it is not the bottleneck)."""
    port = free_port()
    sink = subprocess.Popen([sys.executable, str(HERE / "sink.py"), str(port)])
    try:
        wait_http(f"http://127.0.0.1:{port}/stats", time.monotonic() + 30)
        limits: dict[str, float] = {}
        wrk = shutil.which("wrk")
        if wrk:
            script = HERE / "wrk_post.lua"
            out = subprocess.run(
                [
                    wrk,
                    "-t1",
                    f"-c{CONNECTIONS}",
                    f"-d{seconds:.0f}s",
                    "-s",
                    str(script),
                    f"http://127.0.0.1:{port}/ok/wrk",
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            rate = next(line for line in out.splitlines() if line.startswith("Requests/sec"))
            limits["wrk_to_sink_per_s"] = float(rate.split()[1])
        payload = loadgen.publisher("/ok/loadgen", TENANT, API_KEY)
        load = uvloop.run(loadgen.saturate(port, payload, int(seconds * 8000), CONNECTIONS))
        limits["loadgen_to_sink_per_s"] = load.sent / load.elapsed_s
        return limits
    finally:
        sink.terminate()
        sink.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", default="sqlite", choices=[*MODES, "all"])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--seconds-at-rate", type=float, default=10.0)
    parser.add_argument("--noisy-seconds", type=float, default=60.0)
    parser.add_argument("--timeout", type=float, default=300.0, help="bound on one round, seconds")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--profile", help="record the servers with py-spy into this folder")
    parser.add_argument(
        "--delivery-processes",
        type=int,
        default=1,
        help="delivery services beside the API service (PostgreSQL modes; embedded runs one)",
    )
    args = parser.parse_args()
    if args.delivery_processes < 1:
        parser.error("--delivery-processes: at least 1")
    modes = MODES if args.mode == "all" else (args.mode,)
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(scenarios) - {*SCENARIOS, "noisy"}
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")

    if "noisy" in scenarios:
        noisy: dict[str, dict[str, Any]] = {}
        for mode in modes:
            for hanging in (0, NOISY_HANGING):
                name = f"{mode} {'all healthy' if not hanging else f'{hanging} hanging'}"
                noisy[name] = noisy_round(mode, hanging, args)
                print(f"{name}: {json.dumps(noisy[name])}", flush=True)
        print()
        print(noisy_table(noisy))
        if args.json:
            Path(args.json).write_text(json.dumps({"noisy": noisy}, indent=2))
        scenarios.remove("noisy")
        if not scenarios:
            return
    limits = [loopback_limit(5) for _ in range(args.rounds)]
    limit = {k: statistics.median(x[k] for x in limits) for k in limits[0]}
    print("loopback: " + json.dumps({k: round(v) for k, v in limit.items()}), flush=True)
    reference = limit.get("wrk_to_sink_per_s") or limit["loadgen_to_sink_per_s"]
    results: dict[str, dict[str, float]] = {}
    for mode in modes:
        for scenario in scenarios:
            rounds = []
            for n in range(args.rounds):
                result = run_round(mode, scenario, args)
                print(
                    f"{mode} {scenario} round {n + 1}: "
                    + json.dumps({k: round(v, 1) for k, v in result.items()}),
                    flush=True,
                )
                rounds.append(result)
            median = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
            median["delivered_ratio_to_loopback"] = median["delivered_per_s"] / reference
            results[f"{mode} {scenario}"] = median
    print()
    print(table(results, limit))
    print(
        f"\n{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, python {sys.version.split()[0]}, "
        f"{args.rounds} rounds, medians"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"loopback": limit, "results": results}, indent=2))


def _postgres(name: str, r: dict[str, float]) -> str:
    return "–" if name.startswith("sqlite") else f"{r['postgres_cpu_us_per_event']:,.0f}"


def table(results: dict[str, dict[str, float]], limit: dict[str, float]) -> str:
    columns = (
        "mode · scenario",
        "accepted/s",
        "delivered/s",
        "× loopback",
        "attempts/s",
        "publish p50 / p99",
        "delivery p50 / p99",
        "CPU µs/event (api + delivery)",
        "PostgreSQL µs/event",
        "peak RSS (sum)",
        "lost",
    )
    head = "| " + " | ".join(columns) + " |\n" + "|---" * len(columns) + "|"
    rows = [
        f"| {name} | {r['accepted_per_s']:,.0f} | {r['delivered_per_s']:,.0f} "
        f"| {r['delivered_ratio_to_loopback']:.2f} | {r['attempts_per_s']:,.0f} "
        f"| {r['publish_p50_ms']:.1f} / {r['publish_p99_ms']:.1f} ms "
        f"| {r['delivery_p50_ms']:.1f} / {r['delivery_p99_ms']:.1f} ms "
        f"| {r['server_cpu_us_per_event']:,.0f} ({r['api_cpu_us_per_event']:,.0f} + "
        f"{r['delivery_cpu_us_per_event']:,.0f}) "
        f"| {_postgres(name, r)} | {r['server_peak_rss_mb']:.0f} MB | {r['lost']:.0f} |"
        for name, r in results.items()
    ]
    loop = ", ".join(f"{k} {v:,.0f}" for k, v in limit.items())
    return "\n".join([f"loopback: {loop}", "", head, *rows])


if __name__ == "__main__":
    main()
