"""Migration 008 on a database written before it: its attempts read back with `latency_ms` null,
and attempts recorded after it keep theirs. SQLite and PostgreSQL (the memory double has no
migrations)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from waypost.storage.sqlite.backend import SqliteBackend

from ._support import BASE, Backend, attempt, event, record_attempts, uid, undo_sqlite_011
from .conftest import SEALER, PostgresDatabase, _blocking, _execute

pytestmark = pytest.mark.anyio


async def _record(backend: Backend, latency: int | None) -> str:
    stored = event(uid("evt"), uid("tnt"), topic="t", time=BASE, matched=[uid("des")])
    assert not await backend.accept(stored, BASE, BASE - 1)
    made = attempt(
        uid("atm"), stored, stored.matched_destination_ids[0], time=BASE, latency_ms=latency
    )
    await record_attempts(backend, [made])
    return made.id


async def test_sqlite_rows_before_008_read_null(tmp_path: Path) -> None:
    folder = tmp_path / "sqlite"
    store = SqliteBackend(folder, sealer=SEALER, synchronous="NORMAL")
    await store.open()
    before = await _record(store, 12)
    await store.close()
    with sqlite3.connect(folder / "outpost.db") as conn:  # as a database written before 008
        conn.execute("DROP INDEX attempts_by_time")  # 008 widened them with latency_ms
        conn.execute("DROP INDEX attempts_by_tenant_time")
        conn.execute("ALTER TABLE attempts DROP COLUMN latency_ms")
        conn.execute("CREATE INDEX attempts_by_time ON attempts (time, id)")
        conn.execute("CREATE INDEX attempts_by_tenant_time ON attempts (tenant_id, time, id)")
        for undone in ("TABLE recoveries", "TABLE recovery_tasks"):
            conn.execute(f"DROP {undone}")  # 009, which comes after 008, runs again too
        conn.execute("ALTER TABLE attempts DROP COLUMN request_headers")  # and 010
        undo_sqlite_011(conn)  # and 011
        conn.execute("DROP INDEX attempts_delivered")  # which 009 makes
        conn.execute("PRAGMA user_version = 7")
    store = SqliteBackend(folder, sealer=SEALER, synchronous="NORMAL")
    await store.open()
    try:
        old = await store.get_attempt(before)
        assert old is not None and old.latency_ms is None
        after = await store.get_attempt(await _record(store, 34))
        assert after is not None and after.latency_ms == 34
    finally:
        await store.close()


async def test_postgres_rows_before_008_read_null(postgres_database: PostgresDatabase) -> None:
    from waypost.storage.postgres.backend import PostgresBackend

    store = PostgresBackend(postgres_database.dsn, sealer=SEALER)
    await store.open()
    before = await _record(store, 12)
    await store.close()
    _blocking(
        _execute(
            postgres_database.dsn,
            "ALTER TABLE attempts DROP COLUMN latency_ms; "
            "DELETE FROM outpost_migrations WHERE version = 8",
        )
    )
    store = PostgresBackend(postgres_database.dsn, sealer=SEALER)
    await store.open()
    try:
        old = await store.get_attempt(before)
        assert old is not None and old.latency_ms is None
        after = await store.get_attempt(await _record(store, 34))
        assert after is not None and after.latency_ms == 34
    finally:
        await store.close()
