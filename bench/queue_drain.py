"""The delivery queue alone: fill a backlog, then drain it with batch claims and batch finishes.

Measures accept/s (one event, one task each, 64 concurrent) and drain/s (claims of 100, then one
finish of those 100) for the embedded SQLite store and PostgreSQL, so that a slow claim path on a
large backlog shows up here and not in production.

    .venv/bin/python bench/queue_drain.py --tasks 50000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
import time
from pathlib import Path

import uvloop

from waypost.core.models import Event, Outcome
from waypost.core.timefmt import now_ms
from waypost.storage.postgres.backend import PostgresBackend
from waypost.storage.protocols import Backend
from waypost.storage.sealing import Sealer
from waypost.storage.sqlite.backend import SqliteBackend

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


async def measure(backend: Backend, tasks: int) -> dict[str, float]:
    await backend.open()
    try:
        numbers = iter(range(tasks))

        async def publisher() -> None:
            for n in numbers:
                event = Event(f"e{n}", "t", "topic", now_ms(), b"{}", True, {}, "", ("d",))
                await backend.accept(event, now_ms(), 0)

        started = time.perf_counter()
        await asyncio.gather(*(publisher() for _ in range(64)))
        accepted = time.perf_counter() - started
        started = time.perf_counter()
        drained = 0
        while batch := await backend.claim(100, 60_000):
            await backend.finish([Outcome(task) for task in batch])
            drained += len(batch)
        elapsed = time.perf_counter() - started
        assert drained == tasks, (drained, tasks)
        return {"accept_per_s": tasks / accepted, "drain_per_s": tasks / elapsed}
    finally:
        await backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=50_000)
    args = parser.parse_args()
    sqlite = SqliteBackend(Path(tempfile.mkdtemp()), sealer=Sealer("bench"), synchronous="FULL")
    print(
        "sqlite:",
        json.dumps({k: round(v) for k, v in uvloop.run(measure(sqlite, args.tasks)).items()}),
    )
    name = f"outpost_bench_queue_{int(time.time())}"
    subprocess.run(["psql", ADMIN, "-qc", f'CREATE DATABASE "{name}"'], check=True)
    try:
        postgres = PostgresBackend(ADMIN.rpartition("/")[0] + "/" + name, sealer=Sealer("bench"))
        result = uvloop.run(measure(postgres, args.tasks))
        print("postgres:", json.dumps({k: round(v) for k, v in result.items()}))
    finally:
        subprocess.run(["psql", ADMIN, "-qc", f'DROP DATABASE "{name}" WITH (FORCE)'], check=True)


if __name__ == "__main__":
    main()
