"""Migration 007 (events are their tenant's) on a database written by the previous schema.

Each SQL backend's database is brought to the schema before 007 by its own migration files, given
rows as the previous version wrote them (an event with an attempt, a first-attempt task, and a
pending automatic retry under the old '<event>:<destination>' key), then opened by the backend,
which migrates it. Everything reads back, the tasks are claimable, and the old pending retry is
still the one a new retry of the same pair replaces.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from waypost.core.models import Outcome
from waypost.core.timefmt import now_ms
from waypost.storage.keyset import numbered
from waypost.storage.postgres.backend import PostgresBackend
from waypost.storage.sqlite.backend import SqliteBackend

from ._support import HOUR, Backend, attempt, event, uid
from .conftest import ADMIN_DSN, SEALER, _asyncpg, _database_dsn, _drop

pytestmark = pytest.mark.anyio

BEFORE = 6  # the last migration before 007 (SQLite has no 004 nor 006)

# (sql with ? marks, parameters): the rows as the previous version wrote them
Insert = tuple[str, tuple[Any, ...]]
Seed = Callable[[list[Insert]], Awaitable[None]]


def _scripts(package: str) -> list[tuple[int, str]]:
    found = resources.files(package).iterdir()
    numbered_scripts = ((int(f.name.split("_", 1)[0]), f) for f in found if f.name.endswith(".sql"))
    return sorted((n, f.read_text()) for n, f in numbered_scripts if n <= BEFORE)


def _old_rows(tenant_id: str, event_id: str, now: int) -> list[Insert]:
    e = event(event_id, tenant_id, data=b'{"old":true}', matched=("d1",))
    return [
        (
            "INSERT INTO events (id, tenant_id, topic, time, eligible_for_retry, metadata, data, "
            "matched_destination_ids, destination_id, accepted_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (e.id, e.tenant_id, e.topic, e.time, True, "{}", e.data, '["d1"]', "", now - 10),
        ),
        (
            "INSERT INTO attempts (id, tenant_id, event_id, destination_id, destination_type, "
            "topic, status, time, attempt_number, manual, code, response_data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                f"att-{event_id}",
                tenant_id,
                event_id,
                "d1",
                "webhook",
                e.topic,
                "failed",
                now - 5,
                1,
                False,
                "500",
                None,
            ),
        ),
        (  # a manual attempt, due now
            "INSERT INTO tasks (event_id, tenant_id, destination_id, attempt_number, manual, "
            "visible_at) VALUES (?, ?, ?, ?, ?, ?)",
            (event_id, tenant_id, "d1", 2, True, now - 1),
        ),
        (  # the automatic retry it is meant to replace, due in an hour, under the old key
            "INSERT INTO tasks (event_id, tenant_id, destination_id, attempt_number, manual, "
            "visible_at, retry_key) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event_id, tenant_id, "d1", 2, False, now + HOUR, f"{event_id}:d1"),
        ),
    ]


async def _check_migrated(backend: Backend, tenant_id: str, event_id: str, now: int) -> None:
    stored = await backend.get_event(event_id)
    assert stored is not None and (stored.tenant_id, stored.data) == (tenant_id, b'{"old":true}')
    assert await backend.get_event(event_id, tenant_id) == stored
    latest = await backend.latest_attempt(event_id, "d1", tenant_id)
    assert latest is not None and latest.id == f"att-{event_id}"

    [manual] = await backend.claim(100, 60_000)
    assert (manual.event, manual.attempt_number, manual.manual) == (stored, 2, True)
    failed = attempt(uid("att"), stored, "d1", time=now_ms(), number=2, status="failed")
    await backend.finish([Outcome(manual, failed, retry_at=now_ms() - 1)])

    [retry] = await backend.claim(100, 60_000)  # the old pending retry, replaced (now due)
    assert (retry.event, retry.attempt_number, retry.manual) == (stored, 3, False)
    await backend.finish([Outcome(retry)])
    assert await backend.next_visible_at() is None, "no second retry of the pair is left"

    other = event(event_id, uid("tnt"), matched=("d1",))  # the id is free for another tenant
    assert await backend.accept(other, now_ms(), now_ms() - HOUR) is False
    assert await backend.get_event(event_id, tenant_id) == stored


async def test_sqlite_keeps_rows_written_before_007(tmp_path: Path) -> None:
    folder = tmp_path / "sqlite"
    folder.mkdir()
    conn = sqlite3.connect(folder / "outpost.db", isolation_level=None)
    for number, script in _scripts("waypost.storage.sqlite"):
        conn.executescript(f"BEGIN;{script};PRAGMA user_version={number};COMMIT;")
    tenant_id, event_id, now = uid("tnt"), uid("evt"), now_ms()
    for sql, params in _old_rows(tenant_id, event_id, now):
        conn.execute(sql, params)
    conn.close()

    backend = SqliteBackend(folder, sealer=SEALER, synchronous="NORMAL")
    await backend.open()
    try:
        await _check_migrated(backend, tenant_id, event_id, now)
    finally:
        await backend.close()


@pytest.fixture
async def old_postgres() -> AsyncIterator[str]:
    """A database of its own, at the schema before 007 (as `migrate` would have left it)."""
    asyncpg = _asyncpg()
    name = f"outpost_test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        dsn = _database_dsn(name)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "CREATE TABLE outpost_migrations "
                "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            for number, script in _scripts("waypost.storage.postgres"):
                await conn.execute(script)
                await conn.execute("INSERT INTO outpost_migrations (version) VALUES ($1)", number)
        finally:
            await conn.close()
        yield dsn
    finally:
        await asyncio.to_thread(_drop, name)


async def test_postgres_keeps_rows_written_before_007(old_postgres: str) -> None:
    tenant_id, event_id, now = uid("tnt"), uid("evt"), now_ms()
    conn = await _asyncpg().connect(old_postgres)
    try:
        for sql, params in _old_rows(tenant_id, event_id, now):
            await conn.execute(numbered(sql), *params)
    finally:
        await conn.close()

    backend = PostgresBackend(old_postgres, sealer=SEALER)
    await backend.open()
    try:
        await _check_migrated(backend, tenant_id, event_id, now)
    finally:
        await backend.close()
