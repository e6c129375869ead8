"""The `backend` fixture: every contract test runs once per storage backend.

- `sqlite`: `SqliteBackend` in the test's tmp dir (a fresh database per test).
- `postgres`: `PostgresBackend(dsn)` over a database created for the test module
  (`outpost_test_<random>`, dropped WITH (FORCE) afterwards), so tests of a module share it and
  use ids of their own. Tests marked `own_database` (the whole queue is theirs: `claim` and
  `next_visible_at` see every tenant's tasks) get a database of their own. Skipped, with the
  reason, while `outpost/storage/postgres/backend.py` does not exist.

The server is `OUTPOST_TEST_POSTGRES_ADMIN_DSN` (default: postgres@127.0.0.1:5432, trust auth).
An unreachable server is an error, not a skip: a skip would hide a broken setup.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import pytest

from outpost.storage.sqlite.backend import SqliteBackend

from ._support import Backend

ADMIN_DSN = os.environ.get(
    "OUTPOST_TEST_POSTGRES_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
POSTGRES_MODULE = "outpost.storage.postgres.backend"

MakeBackend = Callable[[], Backend]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "own_database: on shared-server backends, a database for this test alone"
    )


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def _postgres_backend_class() -> Callable[[str], Backend]:
    try:
        module = importlib.import_module(POSTGRES_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name in (POSTGRES_MODULE, POSTGRES_MODULE.rpartition(".")[0]):
            pytest.skip(f"postgres: {POSTGRES_MODULE} does not exist yet (PostgresBackend)")
        raise  # the module exists but imports something missing: that is a failure
    return cast(Callable[[str], Backend], module.PostgresBackend)


def _blocking(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` on an event loop of its own, in a thread: callable from any fixture."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, work).result()


async def _admin(statement: str) -> None:
    asyncpg: Any = importlib.import_module("asyncpg")  # untyped: kept out of mypy's view
    conn = await asyncpg.connect(ADMIN_DSN, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _database_dsn(name: str) -> str:
    base, _, _ = ADMIN_DSN.rpartition("/")
    return f"{base}/{name}"


def _create_database() -> tuple[str, Callable[[], None]]:
    name = f"outpost_test_{uuid.uuid4().hex[:16]}"
    _blocking(_admin(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        _blocking(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return _database_dsn(name), drop


@pytest.fixture(scope="module")
def postgres_module_dsn() -> Iterator[str]:
    _postgres_backend_class()
    dsn, drop = _create_database()
    try:
        yield dsn
    finally:
        drop()


@pytest.fixture(params=["sqlite", "postgres"])
def make_backend(request: pytest.FixtureRequest, tmp_path: Path) -> MakeBackend:
    """Builds an unopened backend of the parametrized kind; any database it needs exists."""
    if request.param == "sqlite":
        return lambda: SqliteBackend(tmp_path / "sqlite", synchronous="NORMAL")
    backend_class = _postgres_backend_class()
    if request.node.get_closest_marker("own_database") is not None:
        dsn, drop = _create_database()
        request.addfinalizer(drop)
    else:
        dsn = request.getfixturevalue("postgres_module_dsn")
    return lambda: backend_class(dsn)


@pytest.fixture
async def backend(make_backend: MakeBackend) -> AsyncIterator[Backend]:
    opened = make_backend()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
