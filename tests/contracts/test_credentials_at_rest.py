"""Destination credentials are sealed at rest in both SQL backends: the raw database never holds
a webhook secret, reads open it, legacy plaintext rows still read, rotation rewrites on write."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
from support.postgres import create_database, drop_database

from waypost.core.models import Destination
from waypost.errors import ConfigError
from waypost.storage.postgres.backend import PostgresBackend
from waypost.storage.sealing import Sealer
from waypost.storage.sqlite.backend import SqliteBackend

pytestmark = pytest.mark.anyio

SECRET = "whsec_known-secret-0123456789abcdef"
OTHER = "x-api-key-value-fedcba9876543210"
OLD, NEW = "old-aes-secret", "new-aes-secret"


def webhook(credentials: dict[str, str]) -> Destination:
    return Destination(
        "des_1", "t1", "webhook", ("*",), {"url": "https://example.test/hook"}, credentials, 1, 1
    )


# -- SQLite: the whole file, as `iterdump()` and as bytes ----------------------------------------


def sqlite_dump(data_dir: Path) -> str:
    conn = sqlite3.connect(data_dir / "outpost.db")
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def raw_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in data_dir.iterdir() if p.is_file())


async def sqlite_backend(data_dir: Path, sealer: Sealer) -> SqliteBackend:
    backend = SqliteBackend(data_dir, sealer=sealer, synchronous="NORMAL")
    await backend.open()
    return backend


async def test_sqlite_file_never_holds_the_secret(tmp_path: Path) -> None:
    backend = await sqlite_backend(tmp_path, Sealer(NEW))
    await backend.upsert_tenant("t1", None, 1)
    await backend.create_destination(webhook({"secret": SECRET, "key": OTHER}), limit=20)
    await backend.close()

    dump = sqlite_dump(tmp_path)
    assert "des_1" in dump and "https://example.test/hook" in dump  # the dump is the real one
    assert SECRET not in dump and OTHER not in dump
    assert SECRET.encode() not in raw_bytes(tmp_path)  # nor the WAL, nor free pages

    backend = await sqlite_backend(tmp_path, Sealer(NEW))
    try:
        found = await backend.get_destination("t1", "des_1")
        assert found is not None and found.credentials == {"secret": SECRET, "key": OTHER}
    finally:
        await backend.close()


async def test_sqlite_wrong_key_refuses_the_open_naming_the_setting(tmp_path: Path) -> None:
    backend = await sqlite_backend(tmp_path, Sealer(OLD))
    await backend.upsert_tenant("t1", None, 1)
    await backend.create_destination(webhook({"secret": SECRET}), limit=20)
    await backend.close()

    with pytest.raises(ConfigError, match="set AES_ENCRYPTION_SECRET to the secret they were"):
        await sqlite_backend(tmp_path, Sealer(NEW))
    backend = await sqlite_backend(tmp_path, Sealer(NEW, previous=(OLD,)))  # the folder is free
    await backend.close()


async def test_sqlite_legacy_plaintext_rows_read_and_are_sealed_at_open(tmp_path: Path) -> None:
    backend = await sqlite_backend(tmp_path, Sealer(NEW))
    await backend.upsert_tenant("t1", None, 1)
    await backend.create_destination(webhook({"secret": SECRET}), limit=20)
    await backend.close()
    conn = sqlite3.connect(tmp_path / "outpost.db")  # as a database from before sealing
    with conn:
        conn.execute("UPDATE destinations SET credentials = ?", (f'{{"secret":"{SECRET}"}}',))
    conn.close()
    assert SECRET in sqlite_dump(tmp_path)

    backend = await sqlite_backend(tmp_path, Sealer(NEW))
    try:
        assert SECRET not in sqlite_dump(tmp_path)  # resealed as the store opened
        found = await backend.get_destination("t1", "des_1")
        assert found is not None and found.credentials == {"secret": SECRET}
    finally:
        await backend.close()


async def test_sqlite_rotation_reseals_old_rows_at_open(tmp_path: Path) -> None:
    backend = await sqlite_backend(tmp_path, Sealer(OLD))
    await backend.upsert_tenant("t1", None, 1)
    await backend.create_destination(webhook({"secret": SECRET}), limit=20)
    await backend.close()

    backend = await sqlite_backend(tmp_path, Sealer(NEW, previous=(OLD,)))
    try:
        assert Sealer(NEW).prefix in sqlite_dump(tmp_path)
        assert Sealer(OLD).prefix not in sqlite_dump(tmp_path)
        found = await backend.get_destination("t1", "des_1")
        assert found is not None and found.credentials == {"secret": SECRET}
        assert await backend.update_destination(replace(found, updated_at=2))
    finally:
        await backend.close()

    backend = await sqlite_backend(tmp_path, Sealer(NEW))  # the previous key no longer needed
    try:
        found = await backend.get_destination("t1", "des_1")
        assert found is not None and found.credentials == {"secret": SECRET}
    finally:
        await backend.close()


# -- PostgreSQL: every text, json and bytea column of every table -------------------------------


@pytest.fixture
def postgres_url() -> Iterator[str]:
    try:
        name, url = create_database("outpost_test_sealed")
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: {exc}")
    try:
        yield url
    finally:
        drop_database(name)


@pytest.fixture
async def postgres(postgres_url: str) -> AsyncIterator[PostgresBackend]:
    backend = PostgresBackend(postgres_url, sealer=Sealer(OLD))
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


async def postgres_dump(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        columns = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' "
            "AND data_type IN ('text', 'character varying', 'json', 'jsonb', 'bytea')"
        )
        values: list[str] = []
        for table, column in columns:
            found = await conn.fetch(f'SELECT "{column}"::text FROM "{table}"')
            values.extend(str(r[0]) for r in found if r[0] is not None)
        assert any(table == "destinations" for table, _ in columns)
        return "\n".join(values)
    finally:
        await conn.close()


async def test_postgres_tables_never_hold_the_secret(
    postgres: PostgresBackend, postgres_url: str
) -> None:
    await postgres.upsert_tenant("t1", None, 1)
    await postgres.create_destination(webhook({"secret": SECRET, "key": OTHER}), limit=20)

    dump = await postgres_dump(postgres_url)
    assert "des_1" in dump and "https://example.test/hook" in dump
    assert SECRET not in dump and OTHER not in dump
    found = await postgres.get_destination("t1", "des_1")
    assert found is not None and found.credentials == {"secret": SECRET, "key": OTHER}


async def test_postgres_legacy_rows_wrong_keys_and_rotation(
    postgres: PostgresBackend, postgres_url: str
) -> None:
    await postgres.upsert_tenant("t1", None, 1)
    await postgres.create_destination(webhook({"secret": SECRET}), limit=20)

    wrong = PostgresBackend(postgres_url, sealer=Sealer(NEW), migrate=False)
    with pytest.raises(ConfigError, match="set AES_ENCRYPTION_SECRET to the secret they were"):
        await wrong.open()

    rotated = PostgresBackend(postgres_url, sealer=Sealer(NEW, previous=(OLD,)), migrate=False)
    await rotated.open()
    try:
        found = await rotated.get_destination("t1", "des_1")
        assert found is not None and found.credentials == {"secret": SECRET}
        assert await rotated.update_destination(replace(found, updated_at=2))
        assert Sealer(NEW).prefix in await postgres_dump(postgres_url)

        conn = await asyncpg.connect(postgres_url)  # as a row from before sealing
        try:
            await conn.execute(
                "UPDATE destinations SET credentials = $1", f'{{"secret":"{SECRET}"}}'
            )
        finally:
            await conn.close()
        legacy = PostgresBackend(postgres_url, sealer=Sealer(NEW), migrate=False)
        await legacy.open()
        try:
            found = await legacy.get_destination("t1", "des_1")
            assert found is not None and found.credentials == {"secret": SECRET}
            assert await legacy.update_destination(replace(found, updated_at=3))
        finally:
            await legacy.close()
        assert SECRET not in await postgres_dump(postgres_url)
    finally:
        await rotated.close()


async def test_postgres_processes_that_migrate_reseal_at_open(
    postgres: PostgresBackend, postgres_url: str
) -> None:
    await postgres.upsert_tenant("t1", None, 1)
    await postgres.create_destination(webhook({"secret": SECRET}), limit=20)
    await postgres.create_destination(replace(webhook({"secret": OTHER}), id="des_2"), limit=20)
    conn = await asyncpg.connect(postgres_url)  # one row from before sealing, one under OLD
    try:
        await conn.execute(
            "UPDATE destinations SET credentials = $1 WHERE id = 'des_2'", f'{{"secret":"{OTHER}"}}'
        )
    finally:
        await conn.close()

    rotated = PostgresBackend(postgres_url, sealer=Sealer(NEW, previous=(OLD,)))
    await rotated.open()
    await rotated.close()
    dump = await postgres_dump(postgres_url)
    assert OTHER not in dump and Sealer(OLD).prefix not in dump
    assert dump.count(Sealer(NEW).prefix) == 2

    after = PostgresBackend(postgres_url, sealer=Sealer(NEW), migrate=False)
    await after.open()
    try:
        found = await after.list_destinations("t1")
        assert [d.credentials for d in found] == [{"secret": SECRET}, {"secret": OTHER}]
    finally:
        await after.close()
