"""Migration 010 on a database written before it: its attempts read back with
`request_headers` null, and attempts recorded after it keep theirs. SQLite and PostgreSQL (the
memory double has no migrations)."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from waypost.core.models import StrMap
from waypost.storage.sqlite.backend import SqliteBackend

from ._support import BASE, Backend, attempt, event, record_attempts, uid, undo_sqlite_011
from .conftest import SEALER, PostgresDatabase, _blocking, _execute

pytestmark = pytest.mark.anyio

SENT = {"Content-Type": "application/json", "X-Outpost-Topic": "t"}


async def _record(backend: Backend, headers: StrMap | None) -> str:
    stored = event(uid("evt"), uid("tnt"), topic="t", time=BASE, matched=[uid("des")])
    assert not await backend.accept(stored, BASE, BASE - 1)
    made = attempt(uid("atm"), stored, stored.matched_destination_ids[0], time=BASE)
    await record_attempts(backend, [dataclasses.replace(made, request_headers=headers)])
    return made.id


async def _reads_null_then_keeps(store: Backend, before: str) -> None:
    old = await store.get_attempt(before)
    assert old is not None and old.request_headers is None
    after = await store.get_attempt(await _record(store, SENT))
    assert after is not None and after.request_headers == SENT


async def test_sqlite_rows_before_010_read_null(tmp_path: Path) -> None:
    folder = tmp_path / "sqlite"
    store = SqliteBackend(folder, sealer=SEALER, synchronous="NORMAL")
    await store.open()
    before = await _record(store, None)
    await store.close()
    with sqlite3.connect(folder / "outpost.db") as conn:  # as a database written before 010
        conn.execute("ALTER TABLE attempts DROP COLUMN request_headers")
        undo_sqlite_011(conn)  # which comes after 010, and runs again too
        conn.execute("PRAGMA user_version = 9")
    store = SqliteBackend(folder, sealer=SEALER, synchronous="NORMAL")
    await store.open()
    try:
        await _reads_null_then_keeps(store, before)
    finally:
        await store.close()


async def test_postgres_rows_before_010_read_null(postgres_database: PostgresDatabase) -> None:
    from waypost.storage.postgres.backend import PostgresBackend

    store = PostgresBackend(postgres_database.dsn, sealer=SEALER)
    await store.open()
    before = await _record(store, None)
    await store.close()
    _blocking(
        _execute(
            postgres_database.dsn,
            "ALTER TABLE attempts DROP COLUMN request_headers; "
            "DELETE FROM outpost_migrations WHERE version = 10",
        )
    )
    store = PostgresBackend(postgres_database.dsn, sealer=SEALER)
    await store.open()
    try:
        await _reads_null_then_keeps(store, before)
    finally:
        await store.close()
