"""The embedded store's group commit: one failing write spares the others in its commit.

Writes are first run together without savepoints; when one fails, the transaction starts over
with each write in its own savepoint. Callers must not be able to tell: each gets its own result
or its own error, and a failed write leaves nothing behind.

With `synchronous="FULL"` a caller hears of its write only once the write-ahead log is on disk,
synced after the writer lock is let go (the other process's writer need not wait for the disk).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from waypost.errors import StoreError
from waypost.storage.sqlite.database import Database

pytestmark = pytest.mark.anyio
Write = Callable[[sqlite3.Connection], object]


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path / "outpost.db", synchronous="NORMAL")
    database.open()
    await database.write(lambda c: c.execute("CREATE TABLE notes (id TEXT PRIMARY KEY)"))
    yield database
    await database.close()


def insert(note: str, then_fail: BaseException | None = None) -> Write:
    def op(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO notes VALUES (?)", (note,))
        if then_fail is not None:
            raise then_fail
        return note

    return op


async def in_one_commit(db: Database, *ops: Write) -> list[object]:
    """Run `ops` in the same group commit: the writer is held until all are queued."""
    held, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        held.set()
        release.wait(10)

    holding = asyncio.ensure_future(db.write(hold))
    await asyncio.to_thread(held.wait, 10)
    writes = [asyncio.ensure_future(db.write(op)) for op in ops]
    await asyncio.sleep(0)  # queued
    release.set()
    await holding
    return list(await asyncio.gather(*writes, return_exceptions=True))


async def notes(db: Database) -> list[str]:
    return await db.read(lambda c: [r[0] for r in c.execute("SELECT id FROM notes ORDER BY id")])


async def test_a_failing_write_leaves_nothing_and_spares_the_rest(db: Database) -> None:
    results = await in_one_commit(
        db, insert("a"), insert("b", then_fail=ValueError("no")), insert("c")
    )
    assert results[0] == "a" and results[2] == "c"
    assert isinstance(results[1], ValueError)
    assert await notes(db) == ["a", "c"]


async def test_a_write_the_database_refuses_is_a_store_error_for_its_caller_only(
    db: Database,
) -> None:
    await db.write(insert("taken"))
    results = await in_one_commit(db, insert("x"), insert("taken"), insert("y"))
    assert results[0] == "x" and results[2] == "y"
    assert isinstance(results[1], StoreError)
    assert await notes(db) == ["taken", "x", "y"]


async def full_db(path: Path) -> Database:
    database = Database(path / "outpost.db", synchronous="FULL", shared=True)
    database.open()
    await database.write(lambda c: c.execute("CREATE TABLE notes (id TEXT PRIMARY KEY)"))
    return database


async def test_full_answers_only_after_syncing_the_log_outside_the_writer_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = await full_db(tmp_path)
    real_sync = os.fdatasync
    seen: list[tuple[bool, bool]] = []  # per sync: (writer lock free, write already answered)
    lock_file = os.open(tmp_path / "outpost.db.writer", os.O_RDONLY)
    writing: asyncio.Future[object] | None = None

    def watched_sync(fd: int) -> None:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(lock_file, fcntl.LOCK_UN)
            free = True
        except BlockingIOError:
            free = False
        seen.append((free, writing is not None and writing.done()))
        real_sync(fd)

    monkeypatch.setattr(os, "fdatasync", watched_sync)
    try:
        writing = asyncio.ensure_future(db.write(insert("durable")))
        assert await writing == "durable"
        assert seen == [(True, False)]
    finally:
        os.close(lock_file)
        await db.close()


async def test_full_fails_the_writes_of_a_commit_whose_log_cannot_be_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = await full_db(tmp_path)

    def failing_sync(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "fdatasync", failing_sync)
    try:
        with pytest.raises(StoreError, match="not durable"):
            await db.write(insert("lost?"))
        monkeypatch.undo()
        assert await db.write(insert("next")) == "next"  # the writer carries on
    finally:
        await db.close()
