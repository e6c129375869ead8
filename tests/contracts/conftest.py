"""The `backend` fixture: every contract test runs once per storage backend.

- `sqlite`: `SqliteBackend` in the test's tmp dir (a fresh database per test).
- `postgres`: `PostgresBackend(dsn)` over a database created for the test module
  (`outpost_test_<random>`, dropped WITH (FORCE) afterwards), so tests of a module share it and
  use ids of their own. Tests marked `clean_database` (the whole queue is theirs: `claim` and
  `next_visible_at` see every tenant's tasks) start from the state right after migrations: every
  table that was empty then is truncated first (a new database per test costs ~0.5 s).
  Skipped, with the reason, while `waypost/storage/postgres/backend.py` does not exist.
- `memory`: `MemoryBackend`, a new one per test. Its data lives in the instance, so another
  instance "on the same data" (as a second process would be) is that same instance, and its
  second `open()` is refused with ConfigError, just as SQLite's lock refuses a second opener:
  tests that would use a second instance share the one instead (see `_second_instance`).

The server is `OUTPOST_TEST_POSTGRES_ADMIN_DSN` (default: postgres@127.0.0.1:5432, trust auth).
An unreachable server is an error, not a skip: a skip would hide a broken setup.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest
from support.memory_store import MemoryBackend

from waypost.storage.sealing import Sealer
from waypost.storage.sqlite.backend import SqliteBackend

from ._support import Backend, MakeBackend

if TYPE_CHECKING:
    from waypost.storage.postgres.backend import PostgresBackend

ADMIN_DSN = os.environ.get(
    "OUTPOST_TEST_POSTGRES_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
POSTGRES_MODULE = "waypost.storage.postgres.backend"

T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "clean_database: on shared-server backends, start with no rows of other tests"
    )


SEALER = Sealer("contract-tests-aes-secret")  # the SQL backends seal credentials as in production


def _postgres_backend_class() -> Callable[[str], Backend]:
    try:
        module = importlib.import_module(POSTGRES_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name in (POSTGRES_MODULE, POSTGRES_MODULE.rpartition(".")[0]):
            pytest.skip(f"postgres: {POSTGRES_MODULE} does not exist yet (PostgresBackend)")
        raise  # the module exists but imports something missing: that is a failure
    return cast(Callable[[str], Backend], functools.partial(module.PostgresBackend, sealer=SEALER))


def _blocking(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` on an event loop of its own, in a thread: callable from any fixture."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


async def _admin(statement: str) -> None:
    await _execute(ADMIN_DSN, statement)


async def _execute(dsn: str, statement: str) -> None:
    conn = await _asyncpg().connect(dsn, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _asyncpg() -> Any:
    return importlib.import_module("asyncpg")  # untyped: kept out of mypy's view


_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"


async def _tables(dsn: str, *, with_rows: bool) -> set[str]:
    conn = await _asyncpg().connect(dsn, timeout=10)
    try:
        names = {r[0] for r in await conn.fetch(_TABLES)}
        if not with_rows:
            return names
        return {n for n in names if await conn.fetchval(f'SELECT EXISTS (SELECT FROM "{n}")')}
    finally:
        await conn.close()


def _database_dsn(name: str) -> str:
    base, _, _ = ADMIN_DSN.rpartition("/")
    return f"{base}/{name}"


@dataclass(frozen=True)
class PostgresDatabase:
    dsn: str
    bookkeeping: frozenset[str]  # tables with rows right after migrations: resets keep them

    def reset(self) -> None:
        """Back to the state right after migrations: truncate every other table."""

        async def truncate() -> None:
            tables = await _tables(self.dsn, with_rows=False) - self.bookkeeping
            if tables:
                names = ", ".join(f'"{t}"' for t in sorted(tables))
                await _execute(self.dsn, f"TRUNCATE {names} RESTART IDENTITY CASCADE")

        _blocking(truncate())


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[PostgresDatabase]:
    backend_class = _postgres_backend_class()
    name = f"outpost_test_{uuid.uuid4().hex[:16]}"
    _blocking(_admin(f'CREATE DATABASE "{name}"'))
    try:
        dsn = _database_dsn(name)

        async def migrate() -> frozenset[str]:
            migrated = backend_class(dsn)
            await migrated.open()
            await migrated.close()
            return frozenset(await _tables(dsn, with_rows=True))

        yield PostgresDatabase(dsn, _blocking(migrate()))
    finally:
        _drop(name)


def _drop(name: str) -> None:
    """Drop a test database, retrying for a few seconds: the server may be restarting."""
    for _ in range(9):
        try:
            _blocking(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except Exception:  # asyncpg's errors, refused connections: try again shortly
            time.sleep(0.5)
    _blocking(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def postgres_backend(
    request: pytest.FixtureRequest, postgres_database: PostgresDatabase
) -> AsyncIterator[PostgresBackend]:
    """A PostgresBackend opened on this module's migrated database, for PostgreSQL-only tests."""
    _postgres_backend_class()  # skips, with the reason, where there is no PostgreSQL backend
    from waypost.storage.postgres.backend import PostgresBackend

    if request.node.get_closest_marker("clean_database") is not None:
        postgres_database.reset()

    opened = PostgresBackend(postgres_database.dsn, sealer=SEALER)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def make_backend(request: pytest.FixtureRequest, tmp_path: Path) -> MakeBackend:
    """Builds an unopened backend of the parametrized kind; any database it needs exists."""
    if request.param == "sqlite":
        return lambda: SqliteBackend(tmp_path / "sqlite", sealer=SEALER, synchronous="NORMAL")
    if request.param == "memory":
        memory = MemoryBackend()  # the data: every instance "on it" is this one
        return lambda: memory
    backend_class = _postgres_backend_class()
    database: PostgresDatabase = request.getfixturevalue("postgres_database")
    if request.node.get_closest_marker("clean_database") is not None:
        database.reset()
    return lambda: backend_class(database.dsn)


@pytest.fixture
async def backend(make_backend: MakeBackend) -> AsyncIterator[Backend]:
    opened = make_backend()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
