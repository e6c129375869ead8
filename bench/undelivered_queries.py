"""Undelivered-event queries and a recovery dry run on 1,000,000 events (SQLite and PostgreSQL).

    flock /tmp/bench.lock .venv/bin/python bench/undelivered_queries.py
    .venv/bin/python bench/undelivered_queries.py --events 100000 --backends sqlite --runs 3

One tenant owns every event (the worst case: every query walks that tenant's slice), spread
over 30 days, about 2.6 s apart. Each event went to destination d1 (topics `*`, one attempt)
and the one in five of topic `order.paid` to d2 (topics `order.*`) too. Deliveries to d1
succeeded except during one hour (its receiver was down: those attempts failed) and 0.5 %
failing at random; 0.5 % of events were published while d1 was disabled (no attempt). The store
is opened as the server opens it (migrations, so 011's `attempts_by_event` with status), bulk-loaded
and analysed; each case is timed through `waypost.recovery.Recovery` as the API calls it: the
median of `--runs` runs after a warm-up.
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
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg

from waypost.core.models import Destination
from waypost.core.paging import PageRequest, TimeRange
from waypost.core.recovery import JobSpec
from waypost.recovery import Filter, Recovery
from waypost.storage.postgres.backend import PostgresBackend
from waypost.storage.protocols import Backend
from waypost.storage.sqlite.backend import SqliteBackend

HOUR = 3_600_000
DAY = 24 * HOUR
END = 1_772_323_200_000  # 2026-03-01T00:00:00Z: the log spans the 30 days before it
START = END - 30 * DAY
OUTAGE = (END - 3 * DAY, END - 3 * DAY + HOUR)  # d1's receiver was down for this hour
TENANT = "tenant_big"
EVENT_COLUMNS = [
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
]
ATTEMPT_COLUMNS = [
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
]


def generate(events: int, seed: int = 1) -> Iterator[tuple[tuple[Any, ...], list[Any]]]:
    rng = random.Random(seed)
    spacing = 30 * DAY / events
    made = 0
    for n in range(events):
        at = START + int(n * spacing)
        event_id = f"evt_{n:09d}"
        disabled = rng.random() < 0.005
        topic = "order.paid" if rng.random() < 0.2 else "user.created"
        matched = [] if disabled else ["d1"] + (["d2"] if topic == "order.paid" else [])
        event = (
            event_id, TENANT, topic, at, True, "{}", b'{"n":1}', json.dumps(matched),
            "", at,
        )  # fmt: skip
        rows = []
        for destination in matched:
            down = destination == "d1" and OUTAGE[0] <= at < OUTAGE[1]
            failed = down or rng.random() < 0.005
            made += 1
            rows.append((
                f"atm_{made:09d}", TENANT, event_id, destination, "webhook", topic,
                "failed" if failed else "success", at + 1000, 1, False,
                "503" if failed else "200", None, 20,
            ))  # fmt: skip
        yield event, rows


def _insert(table: str, columns: list[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def load_sqlite(path: Path, events: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    batch_events, batch_rows = [], []
    for event, rows in generate(events):
        batch_events.append(event)
        batch_rows.extend(rows)
        if len(batch_events) >= 50_000:
            conn.executemany(_insert("events", EVENT_COLUMNS), batch_events)
            conn.executemany(_insert("attempts", ATTEMPT_COLUMNS), batch_rows)
            batch_events, batch_rows = [], []
    conn.executemany(_insert("events", EVENT_COLUMNS), batch_events)
    conn.executemany(_insert("attempts", ATTEMPT_COLUMNS), batch_rows)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


async def load_postgres(dsn: str, events: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        batch_events, batch_rows = [], []
        for event, rows in generate(events):
            batch_events.append(event)
            batch_rows.extend(rows)
            if len(batch_events) >= 50_000:
                await _copy(conn, batch_events, batch_rows)
                batch_events, batch_rows = [], []
        await _copy(conn, batch_events, batch_rows)
        await conn.execute("VACUUM ANALYZE events")
        await conn.execute("VACUUM ANALYZE attempts")
    finally:
        await conn.close()


async def _copy(conn: Any, events: list[Any], rows: list[Any]) -> None:
    await conn.copy_records_to_table("events", records=events, columns=EVENT_COLUMNS)
    await conn.copy_records_to_table("attempts", records=rows, columns=ATTEMPT_COLUMNS)


async def add_destinations(backend: Backend) -> None:
    await backend.upsert_tenant(TENANT, None, START)
    for destination_id, topics in (("d1", ("*",)), ("d2", ("order.*",))):
        await backend.create_destination(
            Destination(
                destination_id, TENANT, "webhook", topics, {"url": "https://example.com/"},
                {"secret": "s"}, START, START,
            ),
            100,
        )  # fmt: skip


Case = tuple[str, Callable[[Recovery], Awaitable[int]]]
WHOLE = TimeRange()
OUTAGE_RANGE = TimeRange(gte=OUTAGE[0], lt=OUTAGE[1])


def _page(destination: str | None, time: TimeRange, status: str = "all") -> Any:
    async def run(recovery: Recovery) -> int:
        wanted = Filter(destination, (), time, status)  # type: ignore[arg-type]
        page = await recovery.undelivered(TENANT, wanted, PageRequest(limit=100))
        return len(page.items)

    return run


def _count(destination: str | None, time: TimeRange, status: str) -> Any:
    async def run(recovery: Recovery) -> int:
        spec = JobSpec(destination, (), time.gte, time.lt or END, status)  # type: ignore[arg-type]
        return await recovery.count(TENANT, spec)

    return run


CASES: list[Case] = [
    ("page of 100, d1, the outage hour", _page("d1", OUTAGE_RANGE)),
    ("page of 100, d1, whole log (newest first)", _page("d1", WHOLE)),
    ("page of 100, d1 failed only, whole log", _page("d1", WHOLE, "failed")),
    ("page of 100, every destination, whole log", _page(None, WHOLE)),
    ("page of 100, d2 (nothing undelivered but 0.5 %), whole log", _page("d2", WHOLE)),
    ("dry run: d1, the outage hour (count)", _count("d1", OUTAGE_RANGE, "all")),
    ("dry run: d1 failed, whole log (count)", _count("d1", WHOLE, "failed")),
]


async def time_cases(backend: Backend, runs: int) -> dict[str, tuple[float, int]]:
    recovery = Recovery(tenants=backend, store=backend)
    results = {}
    for name, case in CASES:
        timings, found = [], 0
        for run in range(runs + 1):
            started = time.perf_counter()
            found = await case(recovery)
            if run:  # the first run warms the caches
                timings.append((time.perf_counter() - started) * 1000)
        results[name] = (statistics.median(timings), found)
        print(f"  {name}: {results[name][0]:.0f} ms ({found})", flush=True)
    return results


async def bench_sqlite(events: int, runs: int) -> dict[str, tuple[float, int]]:
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        backend = SqliteBackend(data, sealer=None, synchronous="OFF")
        await backend.open()
        await add_destinations(backend)
        await backend.close()  # migrated; load beside it, then open again
        started = time.perf_counter()
        load_sqlite(data / "outpost.db", events)
        print(f"sqlite: loaded in {time.perf_counter() - started:.0f} s", flush=True)
        backend = SqliteBackend(data, sealer=None)
        await backend.open()
        try:
            return await time_cases(backend, runs)
        finally:
            await backend.close()


async def bench_postgres(admin_dsn: str, events: int, runs: int) -> dict[str, tuple[float, int]]:
    name = f"outpost_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = admin_dsn.rsplit("/", 1)[0] + "/" + name
    try:
        backend = PostgresBackend(dsn, sealer=None, timeout=60)
        await backend.open()
        try:
            await add_destinations(backend)
            started = time.perf_counter()
            await load_postgres(dsn, events)
            print(f"postgres: loaded in {time.perf_counter() - started:.0f} s", flush=True)
            return await time_cases(backend, runs)
        finally:
            await backend.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    table: dict[str, dict[str, tuple[float, int]]] = {}
    for backend in args.backends.split(","):
        if backend == "sqlite":
            table[backend] = asyncio.run(bench_sqlite(args.events, args.runs))
        else:
            table[backend] = asyncio.run(bench_postgres(args.postgres, args.events, args.runs))
    names = list(table)
    print(f"\n| query ({args.events:,} events) | found | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for name, _ in CASES:
        cells = [f"{table[n][name][0]:.0f} ms" for n in names]
        print(f"| {name} | {table[names[0]][name][1]:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
