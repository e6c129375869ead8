"""Metrics API query times on a store with 1,000,000 attempts (SQLite and PostgreSQL).

    .venv/bin/python bench/metrics_queries.py                     # both backends, 1M attempts
    .venv/bin/python bench/metrics_queries.py --attempts 200000 --backends sqlite --runs 3

Builds the store the way the server would open it (migrations included), then bulk-loads a
generated log straight into the tables (SQLite: one executemany transaction; PostgreSQL: COPY),
30 days of events and attempts over 50 tenants with 4 destinations each, and `ANALYZE`s it. Then
times typical dashboard queries through the backend's `metrics_tallies` plus the shaping the API
does (`waypost.core.metrics.answer`): the median of `--runs` runs each, after one warm-up run.
The PostgreSQL database is created for the run and dropped after it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from waypost.core.metrics import Kind, answer, build_query
from waypost.storage.postgres.backend import PostgresBackend
from waypost.storage.protocols import MetricsStore
from waypost.storage.sqlite.backend import SqliteBackend

DAY = 86_400_000
END = 1_772_323_200_000  # 2026-03-01T00:00:00Z: the log spans the 30 days before it
START = END - 30 * DAY
TENANTS = [f"tenant_{i:02d}" for i in range(50)]
TOPICS = ["user.created", "user.updated", "user.deleted", "order.paid", "order.refunded"]
EVENT_COLUMNS = (
    "id",
    "tenant_id",
    "topic",
    "time",
    "eligible_for_retry",
    "metadata",
    "data",
    "matched_destination_ids",
    "destination_id",
    "accepted_at",
)
ATTEMPT_COLUMNS = (
    "id",
    "tenant_id",
    "event_id",
    "destination_id",
    "destination_type",
    "topic",
    "status",
    "time",
    "attempt_number",
    "manual",
    "code",
    "response_data",
    "latency_ms",
)


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


@dataclass(frozen=True)
class Case:
    name: str
    kind: Kind
    days: int  # the range: the last `days` days of the log
    measures: tuple[str, ...]
    granularity: str | None = None
    dimensions: tuple[str, ...] = ()
    one_tenant: bool = False  # a tenant's portal (its JWT forces filters[tenant_id])

    def query(self) -> dict[str, Any]:
        return {
            "start": _iso(END - self.days * DAY),
            "end": _iso(END),
            "measures": self.measures,
            "granularity": self.granularity,
            "dimensions": self.dimensions,
            "filters": {"tenant_id": (TENANTS[7],)} if self.one_tenant else {},
        }


DASHBOARD = ("count", "successful_count", "failed_count", "error_rate")
ONE_TENANT = True  # the query of a tenant's portal
CASES = [
    Case("attempts 24h by 1h, all tenants", "attempts", 1, DASHBOARD, "1h"),
    Case(
        "attempts 7d by 1d × destination, one tenant",
        "attempts", 7, DASHBOARD, "1d", ("destination_id",), ONE_TENANT,
    ),
    Case(
        "attempts 30d by 1h, one tenant",
        "attempts", 30, ("count", "error_rate"), "1h", (), ONE_TENANT,
    ),
    Case(
        "attempts 30d × status × code, all tenants",
        "attempts", 30, ("count",), None, ("status", "code"),
    ),
    Case(
        "attempts 30d by 1d × tenant, all measures",
        "attempts", 30, (
            "count", "successful_count", "failed_count", "error_rate", "first_attempt_count",
            "retry_count", "manual_retry_count", "avg_attempt_number", "rate",
        ), "1d", ("tenant_id",),
    ),
    Case(
        "attempts 24h by 1h, latency p50/p95/p99 + avg",
        "attempts", 1, ("avg_latency", "p50_latency", "p95_latency", "p99_latency"), "1h",
    ),
    Case(
        "attempts 7d by 1d × destination, latency, one tenant",
        "attempts", 7, ("count", "p95_latency", "p99_latency"), "1d", ("destination_id",),
        ONE_TENANT,
    ),
    Case(
        "events 24h by 1h × topic, all tenants",
        "events", 1, ("count", "rate"), "1h", ("topic",),
    ),
    Case(
        "events 7d × destination, one tenant",
        "events", 7, ("count",), None, ("destination_id",), ONE_TENANT,
    ),
    Case("events 30d by 1d, all tenants", "events", 30, ("count",), "1d"),
]  # fmt: skip


def generate(
    attempts: int, seed: int = 1
) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    """(event row, its attempt rows) until `attempts` attempts exist; times spread over 30 days."""
    rng = random.Random(seed)
    made = 0
    n = 0
    # In time order, as a log grows (and so that loading appends to the time indexes): about
    # 1.73 attempts per event, so this spacing spreads the events over the 30 days.
    spacing = 30 * DAY * 1.73 / attempts
    while made < attempts:
        n += 1
        tenant = rng.choice(TENANTS)
        topic = rng.choice(TOPICS)
        at = min(START + int(n * spacing) + rng.randrange(1000), END - 3 * 60_000)
        matched = rng.sample([f"{tenant}_d{i}" for i in range(4)], rng.choice((1, 1, 2)))
        event_id = f"evt_{n:09d}"
        event = (
            event_id, tenant, topic, at, True, "{}", b'{"n":1}', json.dumps(matched), "", at,
        )  # fmt: skip
        rows = []
        for destination in matched:
            tries = 1 if rng.random() < 0.85 else rng.randrange(2, 5)
            for number in range(1, tries + 1):
                failed = number < tries or rng.random() < 0.05
                made += 1
                rows.append((
                    f"atm_{made:09d}", tenant, event_id, destination, "webhook", topic,
                    "failed" if failed else "success", at + number * 30_000, number,
                    number > 1 and rng.random() < 0.1, "500" if failed else "200", None,
                    int(rng.lognormvariate(4, 1)),  # ms: a long tail, as real destinations have
                ))  # fmt: skip
        yield event, rows


def load_sqlite(path: Path, attempts: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    event_sql = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * 10)})"
    attempt_sql = (
        f"INSERT INTO attempts ({', '.join(ATTEMPT_COLUMNS)}) VALUES ({', '.join('?' * 13)})"
    )
    events, rows = [], []
    for event, attempt_rows in generate(attempts):
        events.append(event)
        rows.extend(attempt_rows)
        if len(rows) >= 50_000:
            conn.executemany(event_sql, events)
            conn.executemany(attempt_sql, rows)
            events, rows = [], []
    conn.executemany(event_sql, events)
    conn.executemany(attempt_sql, rows)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


async def load_postgres(dsn: str, attempts: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        events, rows = [], []
        for event, attempt_rows in generate(attempts):
            events.append(event)
            rows.extend(attempt_rows)
            if len(rows) >= 50_000:
                await _copy(conn, events, rows)
                events, rows = [], []
        await _copy(conn, events, rows)
        await conn.execute("VACUUM ANALYZE events")
        await conn.execute("VACUUM ANALYZE attempts")
    finally:
        await conn.close()


async def _copy(conn: Any, events: list[Any], rows: list[Any]) -> None:
    await conn.copy_records_to_table("events", records=events, columns=EVENT_COLUMNS)
    await conn.copy_records_to_table("attempts", records=rows, columns=ATTEMPT_COLUMNS)


async def time_cases(store: MetricsStore, runs: int) -> dict[str, tuple[float, int]]:
    """Case name → (median ms, rows answered)."""
    results = {}
    for case in CASES:
        query = build_query(case.kind, **case.query())
        timings = []
        rows = 0
        for run in range(runs + 1):
            started = time.perf_counter()
            body = answer(query, await store.metrics_tallies(query), 0)
            elapsed = (time.perf_counter() - started) * 1000
            rows = len(body["data"])
            if run:  # the first run warms the caches
                timings.append(elapsed)
        results[case.name] = (statistics.median(timings), rows)
    return results


async def bench_sqlite(attempts: int, runs: int) -> dict[str, tuple[float, int]]:
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        backend = SqliteBackend(data, sealer=None, synchronous="OFF")
        await backend.open()
        await backend.close()  # migrated; load beside it, then open again
        started = time.perf_counter()
        load_sqlite(data / "outpost.db", attempts)
        print(f"sqlite: loaded in {time.perf_counter() - started:.0f} s", flush=True)
        backend = SqliteBackend(data, sealer=None)
        await backend.open()
        try:
            return await time_cases(backend, runs)
        finally:
            await backend.close()


async def bench_postgres(admin_dsn: str, attempts: int, runs: int) -> dict[str, tuple[float, int]]:
    name = f"outpost_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = admin_dsn.rsplit("/", 1)[0] + "/" + name
    try:
        backend = PostgresBackend(dsn, sealer=None, timeout=60)
        await backend.open()
        try:
            started = time.perf_counter()
            await load_postgres(dsn, attempts)
            print(f"postgres: loaded in {time.perf_counter() - started:.0f} s", flush=True)
            return await time_cases(backend, runs)
        finally:
            await backend.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attempts", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    table: dict[str, dict[str, tuple[float, int]]] = {}
    for backend in args.backends.split(","):
        if backend == "sqlite":
            table[backend] = asyncio.run(bench_sqlite(args.attempts, args.runs))
        else:
            table[backend] = asyncio.run(bench_postgres(args.postgres, args.attempts, args.runs))
    names = list(table)
    print(f"\n| query ({args.attempts:,} attempts) | rows | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for case in CASES:
        cells = [f"{table[n][case.name][0]:.0f} ms" for n in names]
        rows = table[names[0]][case.name][1]
        print(f"| {case.name} | {rows} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
